"""A read of data files on an object store: each file fetched by a thread of the bounded pool
(:data:`.fetch_pool.MAX_CONCURRENT_FETCHES`), so a read costs one or two round trips however
many files it touches. A small file is fetched whole in one request and, for reads of the
latest version, kept (:mod:`.small_files`: a warm read of it costs no request); of a large
one, the needed column chunks are coalesced into one ranged request (the fragment's format
pre-buffers), after one request for its footer the first time.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.dataset as ds

from cb_storage_dagster.storage.delta.fetch_pool import map_concurrently
from cb_storage_dagster.storage.delta.fragment_read import read_fragment
from cb_storage_dagster.storage.delta.small_files import SmallFiles

FileKey = tuple[str, str, int]
"""(table URI, path in the table, size in bytes): a data file, which never changes."""


def read_remote(
    keys: Sequence[FileKey],
    fragments: Sequence[ds.ParquetFileFragment],
    fresh: Sequence[bool],
    whole: Sequence[bool] | None,
    *,
    schema: pa.Schema,
    row_filter: ds.Expression | None,
    columns: list[str] | None,
    small_files: SmallFiles | None,
) -> pa.Table:
    """Rows of the files ``keys`` (their ``fragments``; ``fresh``: footer not read yet) that
    match ``row_filter``, projected, in order. ``whole``: per file, whether every row of it
    matches. ``small_files``: where small files are kept (``None``: fetched, not kept)."""

    def read_one(item: tuple[FileKey, ds.ParquetFileFragment, bool, bool]) -> pa.Table:
        key, fragment, new, every_row = item
        if SmallFiles.fetched_whole(key[2]):  # one request, or none once kept
            data = (small_files.get_or_fetch(key, lambda: _whole(fragment)) if small_files is not None
                    else _whole(fragment))
            fragment = fragment.format.make_fragment(data, partition_expression=fragment.partition_expression)
        elif new:
            fragment.ensure_complete_metadata()  # the footer: one request, then cached
        return read_fragment(fragment, schema, None if every_row else row_filter, columns)

    every = whole if whole is not None else [False] * len(keys)
    return pa.concat_tables(map_concurrently(read_one, list(zip(keys, fragments, fresh, every))))


def _whole(fragment: ds.ParquetFileFragment) -> pa.Buffer:
    """All bytes of the fragment's file (one ranged GET: the filesystem knows its size)."""
    with fragment.filesystem.open_input_file(fragment.path) as stream:
        return stream.read_buffer()


__all__ = ["FileKey", "read_remote"]
