r"""Replaying Delta JSON commits onto a table of add actions (the columns of delta-rs'
flattened ``get_add_actions``): ``remove`` drops a file, ``add`` appends one with its partition
values and min/max statistics parsed from the action's ``stats`` (:mod:`.commit_actions`).

Only commits that change nothing but the set of files are replayed; anything else (a
``metaData`` or ``protocol`` action, a deletion vector, an action the replay does not know)
raises :class:`Unreplayable`, and the caller opens the table through delta-rs instead.

>>> actions = pa.table({"path": ["a.parquet"], "size_bytes": [10]})
>>> commit = b'{"remove":{"path":"a.parquet"}}\n{"add":{"path":"b.parquet","size":20,"partitionValues":{}}}'
>>> replay(actions, [commit]).to_pylist()
[{'path': 'b.parquet', 'size_bytes': 20}]
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cb_storage_dagster.storage.delta.commit_actions import REPLAYED_ACTIONS, Unreplayable, parse_commit
from cb_storage_dagster.storage.delta.fetch_pool import map_concurrently

__all__ = ["REPLAYED_ACTIONS", "Unreplayable", "replay"]


def replay(actions: pa.Table, commits: Iterable[bytes]) -> pa.Table:
    """``actions`` after the ``add``/``remove`` actions of ``commits`` (in version order).

    The commits are parsed concurrently; the rows of each are appended in order and those a
    later commit removes (or adds anew) are marked; one filter at the end drops them all."""
    tables, keys = [actions], [_unquoted(actions.column("path"))]
    alive = np.ones(actions.num_rows, bool)
    parsed = map_concurrently(lambda raw: parse_commit(raw, actions.schema), list(commits), on_processor=True)  # C++ parses, GIL free
    for adds, gone in parsed:
        if gone:
            present = pc.is_in(pa.chunked_array([c for k in keys for c in k.chunks], pa.string()), value_set=pa.array(sorted(gone), pa.string()))
            alive &= ~present.to_numpy(zero_copy_only=False)
        if adds.num_rows:
            tables.append(adds)
            keys.append(_unquoted(adds.column("path")))
            alive = np.concatenate([alive, np.ones(adds.num_rows, bool)])
    replayed = pa.concat_tables(tables) if len(tables) > 1 else actions
    return replayed if alive.all() else replayed.filter(pa.array(alive))


def _unquoted(paths: pa.ChunkedArray) -> pa.ChunkedArray:
    if not pc.any(pc.match_substring(paths, "%")).as_py():
        return paths
    return pa.chunked_array([pa.array([unquote(p) for p in paths.to_pylist()], pa.string())])
