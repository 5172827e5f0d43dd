"""Local data files read below pyarrow's dataset scanner: only the row groups a read needs,
their bytes in one read, and rows cut out by the file's sort order.

pyarrow's dataset scan adds 0.15-0.4 ms per file to the decode (its asynchronous scanner,
an expression bound per file and row group: 20 one-day files of one instrument, 5.6 ms
scanned against 2.9 ms decoded from memory), decodes ``coin`` into strings before comparing
it (a third of the decode of an exchange-day row group) and evaluates the scope's filter row
by row. For the reads market data is made of (instruments over a time range) the decode
itself is the floor, so a local read here:

1. picks the row groups from :class:`.row_group_index.RowGroupIndex`, built once per file
   from its parsed footer (a vectorized comparison per read);
2. reads their bytes in one ``readinto`` (deep in a large file: from a memory map) and
   decodes them from memory, :data:`GROUPS_PER_DECODE` at a time, ``coin`` as a dictionary;
3. cuts out the read's window (:class:`.row_window.RowWindow`): the instrument's run of
   rows, then its time range by position where the rows are in time order (the product's
   writers sort them; the code checks), else by a mask on the timestamps;
4. where that cut is the whole of the scope (one instrument or one exchange over
   consecutive days, the file's ``date`` values inside them), evaluates only the caller's
   own filters; otherwise the read's full row filter, on what is left. The partition
   columns the file does not store are added once per run of files (:func:`assemble`).

Step 3 only narrows unless step 4 proves it exact, so a file in another order (a foreign
writer) is read correctly, only less narrowly.

A file of one instrument read so, and whose columns :mod:`.column_slices` can locate, is
not decoded at all: its rows are taken by position (:mod:`.positional_read`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from cb_storage_dagster.storage.delta.fetch_pool import map_in_runs
from cb_storage_dagster.storage.delta.file_rows import FileRows, assemble, in_schema
from cb_storage_dagster.storage.delta.mapped_file import MappedFile
from cb_storage_dagster.storage.delta.positional_read import (
    PositionalRows,
    read_by_position,
    reads_coins_by_position,
)
from cb_storage_dagster.storage.delta.row_group_index import RowGroupIndex
from cb_storage_dagster.storage.delta.row_window import RowWindow

GROUPS_PER_DECODE = 16
"""Row groups of one file decoded together (~256 Ki rows of the writers' groups)."""
MAP_FILES_FROM_BYTES = 8 << 20
"""Spans ending further into a file than this are read from a memory map of it."""


def read_file(
    fragment: ds.ParquetFileFragment,
    index: RowGroupIndex,
    groups: list[int],
    window: RowWindow,
    *,
    schema: pa.Schema,
    row_filter: ds.Expression | None,
    own_filter: ds.Expression | None,
    columns: list[str] | None,
    mapped: MappedFile | None = None,
) -> list[FileRows]:
    """The rows of row groups ``groups`` (:meth:`RowGroupIndex.select`) of one local file
    that match ``row_filter`` (``None``: every row of the file is selected), decoded at most
    :data:`GROUPS_PER_DECODE` groups at a time (a large read never holds the groups it
    filters out). ``own_filter``: the part of ``row_filter`` that is the caller's filters (not
    the scope and time range), all that is left to evaluate where the window was cut exactly.
    ``mapped``: the file kept open by the caller (no read, no new mapping, a kept reader)."""
    wanted = schema.names if row_filter is not None or columns is None else columns
    stored = [name for name in wanted if name in index.columns]
    partition_values = (mapped.partition_values if mapped is not None
                        else ds.get_partition_keys(fragment.partition_expression))
    if not groups:
        return [FileRows(schema.empty_table(), partition_values, True)]
    if mapped is not None:
        window = _of_the_file(window, mapped)
        by_position = read_by_position(mapped, groups, window, stored, every_row=row_filter is None, index=index)
        if by_position is not None:
            rows, values, exact = by_position
            return [_filtered(rows, values, row_filter if row_filter is None or not exact else own_filter, schema)]
        if window.coins is not None and row_filter is not None and reads_coins_by_position(window) and mapped.stores_coin:
            by_coins = _coins_by_position(mapped, index, groups, window, stored, row_filter, own_filter, schema)
            if by_coins is not None:
                return by_coins
    parts = []
    for start in range(0, len(groups), GROUPS_PER_DECODE):
        batch = groups[start:start + GROUPS_PER_DECODE]
        use_threads = int(index.rows[batch].sum()) > 1 << 16
        if mapped is not None:
            with mapped.reader(dictionary="coin" in stored) as reader:
                rows = reader.read_row_groups(batch, columns=stored, use_threads=use_threads)
        else:
            reader = pq.ParquetFile(pa.BufferReader(_span(fragment, *index.span(batch))), metadata=fragment.metadata,
                                    read_dictionary=["coin"] if "coin" in stored else None)
            rows = reader.read_row_groups(batch, columns=stored, use_threads=use_threads)
        remaining = row_filter
        if row_filter is not None:
            rows, exact = _narrowed(rows, window, partition_values)
            remaining = own_filter if exact else row_filter
        parts.append(_filtered(rows, partition_values, remaining, schema))
    return parts


def _of_the_file(window: RowWindow, mapped: MappedFile) -> RowWindow:
    """``window``, narrowed to the one instrument of a file that stores no ``coin`` (the
    instrument layout's) for a read of every instrument or of several: its rows can then be
    taken by position like those of a read of that instrument."""
    coin = mapped.partition_values.get("coin")
    if window.coin is not None or mapped.stores_coin or not isinstance(coin, str):
        return window
    if window.coins is not None:
        return window.for_coin(coin) if coin in window.coins else window
    return replace(window, coin=coin)


def _coins_by_position(
    mapped: MappedFile, index: RowGroupIndex, groups: list[int], window: RowWindow, stored: list[str],
    row_filter: ds.Expression, own_filter: ds.Expression | None, schema: pa.Schema,
) -> list[FileRows] | None:
    """The rows of a read of a few coins (:func:`.positional_read.reads_coins_by_position`)
    from a file of many, each coin's taken by position from the row groups of ``groups``
    that may hold it; ``None`` where one coin's cannot be (the caller decodes the file).
    A coin's rows need only the caller's own filters where its window is exact."""
    wanted, parts = set(groups), []
    for coin in window.coins or ():
        one = window.for_coin(coin)
        coin_groups = [group for group in index.select(one) if group in wanted]
        if not coin_groups:
            continue
        by_position = read_by_position(mapped, coin_groups, one, stored, every_row=False, index=index)
        if by_position is None:
            return None
        rows, values, exact = by_position
        if rows.num_rows:
            parts.append(_filtered(rows, values, own_filter if exact else row_filter, schema))
    return parts or [FileRows(schema.empty_table(), mapped.partition_values, True)]


def _filtered(rows: pa.Table | PositionalRows, partition_values: dict[str, object], remaining: ds.Expression | None,
              schema: pa.Schema) -> FileRows:
    """A file's decoded ``rows`` with ``remaining`` (``None``: nothing left to evaluate) applied."""
    if remaining is None:
        return FileRows(rows, partition_values, False)
    rows = in_schema([FileRows(rows, partition_values, False)], schema, schema.names)
    return FileRows(rows.filter(remaining), partition_values, True)


def read_files(
    files: list[tuple[ds.ParquetFileFragment, RowGroupIndex, list[int], MappedFile | None, bool]],
    window: RowWindow,
    *,
    schema: pa.Schema,
    row_filter: ds.Expression | None,
    own_filter: ds.Expression | None,
    columns: list[str] | None,
    min_run: int,
    cores: int | None,
) -> pa.Table:
    """The rows of ``files`` (each: fragment, index, groups to read, the file kept open or
    ``None``, whether every row of it is selected), in order, as one table of ``schema``
    projected to ``columns``: :func:`read_file` of each, in one run of files per core
    (``cores``, default the machine's) where the runs would each read ``min_run`` row groups
    or more; pyarrow decodes without the GIL, so one run's Python overlaps another's decoding."""

    def read_run(run: list[tuple[ds.ParquetFileFragment, RowGroupIndex, list[int], MappedFile | None, bool]],
                 ) -> list[FileRows]:
        return [part
                for fragment, index, groups, mapped, every_row in run
                for part in read_file(fragment, index, groups, window, schema=schema, own_filter=own_filter,
                                      columns=columns, mapped=mapped, row_filter=None if every_row else row_filter)]

    parts = map_in_runs(read_run, files, min_run=min_run, cores=cores, weigh=lambda file: len(file[2]))
    return assemble(_by_instrument(parts) if window.coins is not None else parts, schema, columns)


def _by_instrument(parts: list[FileRows]) -> list[FileRows]:
    """The parts of a read of several coins, each one coin's rows of one file (taken by
    position), put instrument after instrument; files come in time order, so the read comes
    out sorted as the caller sorts it (a check instead of a sort: 5 coins x 30 exchange-days,
    ~30 ms). Parts of several coins (decoded) stay as they are."""
    keys = [(part.partition_values.get("exchange"), part.partition_values.get("coin")) for part in parts]
    if len(parts) < 2 or not all(isinstance(exchange, str) and isinstance(coin, str) for exchange, coin in keys):
        return parts
    order = sorted(range(len(parts)), key=keys.__getitem__)  # (stable: a coin's files stay in order)
    return [parts[i] for i in order]


def _span(fragment: ds.ParquetFileFragment, first: int, end: int) -> pa.Buffer:
    """Bytes ``[first, end)`` of the fragment's file at their offsets in a buffer: read through
    the file's filesystem into a new buffer (what lies before ``first`` is never touched: the
    decoder has the parsed footer), or, for a span deep in a large file, memory-mapped (a
    buffer the size of the file would cost more to map and unmap than the read itself)."""
    if end > MAP_FILES_FROM_BYTES:
        return pa.memory_map(fragment.path).read_buffer()
    data = pa.allocate_buffer(end, resizable=False)
    with fragment.filesystem.open_input_file(fragment.path) as stream:
        stream.seek(first)
        if stream.readinto(memoryview(data)[first:end]) != end - first:
            raise OSError(f"{fragment.path}: file shorter than its footer says ({end} bytes)")
    return data


def _narrowed(rows: pa.Table, window: RowWindow, partition_values: dict[str, object]) -> tuple[pa.Table, bool]:
    """``rows`` cut down by position to ``window`` where they are in (coin, timestamp) order,
    and whether what is left is exactly the window's rows (then the scope needs no filter)."""
    exact = window.exact and partition_values.get("exchange") == window.exchange
    if window.coin is not None:
        if "coin" in rows.column_names:
            rows, found = _coin_run(rows, window.coin)
            exact = exact and found
        else:
            exact = exact and partition_values.get("coin") == window.coin
    if window.start_us is None and window.end_us is None:
        return rows, False
    column = rows.column("timestamp") if "timestamp" in rows.column_names else None
    if column is None or not pa.types.is_timestamp(column.type) or column.type.unit != "us" or column.null_count:
        return rows, False
    times = _int64_values(column)
    lowest = np.iinfo(np.int64).min if window.start_us is None else window.start_us
    beyond = np.iinfo(np.int64).max if window.end_us is None else window.end_us
    if bool(np.all(times[1:] >= times[:-1])):
        first, end = np.searchsorted(times, lowest, "left"), np.searchsorted(times, beyond, "left")
        rows = rows.slice(int(first), max(int(end - first), 0))
    else:  # several coins, or rows out of order: keep those inside the window
        inside = (times >= lowest) & (times < beyond)
        rows = rows if bool(inside.all()) else rows.filter(pa.array(inside))
    return rows, exact and _dates_within(rows, window)


def _dates_within(rows: pa.Table, window: RowWindow) -> bool:
    """Whether every row's ``date`` lies in the window's days (it does for rows the product
    wrote, whose ``date`` is their timestamp's day)."""
    column = rows.column("date") if "date" in rows.column_names else None
    if column is None or not pa.types.is_date32(column.type) or column.null_count:
        return False
    first, last = (value.as_py() for value in pc.min_max(column).values())
    return not rows.num_rows or (window.first_day <= first and last <= window.last_day)


def _int64_values(column: pa.ChunkedArray) -> np.ndarray:
    """The values of a null-free timestamp column as int64 (no copy for one chunk)."""
    array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return np.frombuffer(array.buffers()[1], np.int64, len(array), array.offset * 8) if len(array) else np.empty(0, np.int64)


def _coin_run(rows: pa.Table, coin: str) -> tuple[pa.Table, bool]:
    """The rows of ``coin`` and ``True`` when they form one run; ``rows`` and ``False`` otherwise."""
    column = rows.column("coin")
    if not pa.types.is_dictionary(column.type) or column.null_count:
        return rows, False
    matches, offset = [], 0
    for chunk in column.chunks:
        codes = np.flatnonzero(chunk.dictionary.to_numpy(zero_copy_only=False) == coin)
        if len(codes):
            indices = chunk.indices.to_numpy()
            hits = indices == codes[0] if len(codes) == 1 else np.isin(indices, codes)
            matches.append(np.flatnonzero(hits) + offset)
        offset += len(chunk)
    found = np.concatenate(matches) if matches else np.empty(0, np.int64)
    if not len(found):
        return rows.slice(0, 0), True
    first, last = int(found[0]), int(found[-1])
    if last - first + 1 != len(found):
        return rows, False
    return rows.slice(first, len(found)), True


__all__ = ["read_file", "read_files"]
