r"""Replaying Delta JSON commits onto a table of add actions (the columns of delta-rs'
flattened ``get_add_actions``): ``remove`` drops a file, ``add`` appends one with its partition
values and min/max statistics parsed from the action's ``stats``.

Only commits that change nothing but the set of files are replayed; anything else (a
``metaData`` or ``protocol`` action, a deletion vector, an action this module does not know)
raises :class:`Unreplayable`, and the caller opens the table through delta-rs instead.

>>> actions = pa.table({"path": ["a.parquet"], "size_bytes": [10]})
>>> commit = b'{"remove":{"path":"a.parquet"}}\n{"add":{"path":"b.parquet","size":20,"partitionValues":{}}}'
>>> replay(actions, [commit]).to_pylist()
[{'path': 'b.parquet', 'size_bytes': 20}]
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["REPLAYED_ACTIONS", "Unreplayable", "replay"]

REPLAYED_ACTIONS = frozenset({"add", "remove", "commitInfo", "txn", "cdc", "domainMetadata"})
"""Commit actions a replay understands: ``add``/``remove`` change the files; the others do not
change what a read sees (``cdc`` files are change data, never read as table data)."""


class Unreplayable(Exception):
    """A commit the replay does not implement: the caller opens the table through delta-rs."""


def replay(actions: pa.Table, commits: Iterable[bytes]) -> pa.Table:
    """``actions`` after the ``add``/``remove`` actions of ``commits`` (in version order)."""
    for raw in commits:
        adds: list[dict[str, Any]] = []
        gone: set[str] = set()
        for line in raw.decode().splitlines():
            if not line.strip():
                continue
            action = json.loads(line)
            kinds = set(action) - REPLAYED_ACTIONS
            if kinds:
                raise Unreplayable(f"a commit has {sorted(kinds)}")
            if "add" in action:
                add = action["add"]
                if add.get("deletionVector"):
                    raise Unreplayable("a commit adds a file with a deletion vector")
                adds.append(add)
                gone.add(unquote(add["path"]))  # a re-added path replaces its older entry
            elif "remove" in action:
                gone.add(unquote(action["remove"]["path"]))
        if gone:
            removed = pc.is_in(_unquoted(actions.column("path")), value_set=pa.array(sorted(gone), pa.string()))
            actions = actions.filter(pc.invert(removed))
        if adds:
            actions = pa.concat_tables([actions, _rows_of(adds, actions.schema)])
    return actions


def _unquoted(paths: pa.ChunkedArray) -> pa.ChunkedArray:
    values = paths.to_pylist()
    if not any("%" in p for p in values):
        return paths
    return pa.chunked_array([pa.array([unquote(p) for p in values], pa.string())])


def _rows_of(adds: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Index rows of JSON ``add`` actions, typed like ``schema`` (a missing statistic is null)."""
    stats = [json.loads(a["stats"]) if a.get("stats") else {} for a in adds]
    columns: dict[str, list[Any]] = {}
    for field in schema:
        name = field.name
        if name == "path":
            values: list[Any] = [a["path"] for a in adds]
        elif name == "size_bytes":
            values = [int(a["size"]) for a in adds]
        elif name == "num_records":
            values = [s.get("numRecords") for s in stats]
        elif name.startswith("partition."):
            column = name.removeprefix("partition.")
            values = [(a.get("partitionValues") or {}).get(column) for a in adds]
        elif name.startswith(("min.", "max.")):
            bound, column = name.split(".", 1)
            key = "minValues" if bound == "min" else "maxValues"
            values = [_statistic((s.get(key) or {}).get(column), field.type) for s in stats]
        else:
            values = [None] * len(adds)
        columns[name] = values
    return pa.table({name: pa.array(columns[name], schema.field(name).type) for name in schema.names}, schema=schema)


def _statistic(value: Any, typ: pa.DataType) -> Any:
    """A JSON min/max statistic as a value of ``typ`` (``None`` if absent)."""
    if value is None:
        return None
    if pa.types.is_timestamp(typ):
        parsed = dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.timezone.utc)
    if pa.types.is_date(typ):
        return dt.date.fromisoformat(value)
    return value
