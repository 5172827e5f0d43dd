"""Local data files read below pyarrow's dataset scanner: only the row groups a read needs,
their bytes in one read, and rows cut out by the file's sort order.

pyarrow's dataset scan adds 0.15-0.4 ms per file to the decode (its asynchronous scanner,
an expression bound per file and row group: 20 one-day files of one instrument, 5.6 ms
scanned against 2.9 ms decoded from memory) and decodes ``coin`` into strings before
comparing it (a third of the decode of an exchange-day row group). For the reads market data is made of (one
instrument, a time range) the decode itself is the floor, so a local read here:

1. picks the row groups from :class:`RowGroupIndex`, built once per file from its parsed
   footer (coin and timestamp statistics and byte ranges as numpy arrays: a vectorized
   comparison per read, no Python loop over row groups);
2. reads the bytes of those row groups in one ``readinto`` and decodes them from memory,
   ``coin`` as a dictionary;
3. when the rows of the file are in (coin, timestamp) order, which the product's writers
   guarantee and the code checks on the rows it has, cuts out the instrument's time window
   by position (:class:`.row_window.RowWindow`) before any expression is evaluated;
4. evaluates the read's full row filter on what is left (unless the log proves every row
   of the file selected), adds the partition columns the file does not store, and casts to
   the table's schema.

Step 3 only narrows: the row filter of step 4 decides, so a file in another order (a foreign
writer) is read correctly, only less narrowly.

>>> index = RowGroupIndex.of(_one_group_file())
>>> index.rows.tolist(), index.select(RowWindow(coin="ETH")), index.select(RowWindow(coin="BTC"))
([2], [], [0])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from cb_storage_dagster.storage.delta.row_window import RowWindow

_PER_UNIT = {"milliseconds": 1_000, "microseconds": 1, "nanoseconds": None}


@dataclass(frozen=True)
class RowGroupIndex:
    """Per row group of one file: rows and, where the footer has them, the coin and timestamp
    (microseconds) ranges. Built once per file (:meth:`of`); the byte range of a group is
    worked out when a read first needs it (:meth:`span`: a new process reading one coin
    of a file of 600 groups pays for the groups it reads, not for all of them)."""

    metadata: pq.FileMetaData
    rows: np.ndarray
    coin_min: np.ndarray | None
    coin_max: np.ndarray | None
    time_min: np.ndarray | None
    time_max: np.ndarray | None
    columns: tuple[str, ...]
    _spans: dict[int, tuple[int, int]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, metadata: pq.FileMetaData) -> RowGroupIndex:
        names = tuple(metadata.schema.column(i).path for i in range(metadata.num_columns))
        groups = [metadata.row_group(r) for r in range(metadata.num_row_groups)]
        coin = _string_ranges(groups, names.index("coin")) if "coin" in names else None
        time = _time_ranges(metadata, groups, names.index("timestamp")) if "timestamp" in names else None
        return cls(metadata, np.array([group.num_rows for group in groups], np.int64),
                   *(coin or (None, None)), *(time or (None, None)), names)

    def span(self, groups: list[int]) -> tuple[int, int]:
        """The first byte and the end of the bytes of row groups ``groups``."""
        spans = [self._spans.get(g) or self._spans.setdefault(g, _group_span(self.metadata.row_group(g)))
                 for g in groups]
        return min(first for first, _ in spans), max(end for _, end in spans)

    def select(self, window: RowWindow) -> list[int]:
        """The row groups that may hold rows of ``window``."""
        keep = np.ones(len(self.rows), bool)
        if window.coin is not None and self.coin_min is not None and self.coin_max is not None:
            keep &= (self.coin_min <= window.coin) & (self.coin_max >= window.coin)
        if self.time_min is not None and self.time_max is not None:
            if window.start_us is not None:
                keep &= self.time_max >= window.start_us
            if window.end_us is not None:
                keep &= self.time_min < window.end_us
        return np.flatnonzero(keep).tolist()


def _group_span(group: pq.RowGroupMetaData) -> tuple[int, int]:
    starts, ends = [], []
    for j in range(group.num_columns):
        chunk = group.column(j)
        start = chunk.data_page_offset
        if chunk.has_dictionary_page and chunk.dictionary_page_offset:
            start = min(start, chunk.dictionary_page_offset)
        starts.append(start)
        ends.append(start + chunk.total_compressed_size)
    return (min(starts), max(ends)) if starts else (0, 0)


def _string_ranges(groups: list[pq.RowGroupMetaData], column: int) -> tuple[np.ndarray, np.ndarray] | None:
    lows, highs = [], []
    for group in groups:
        stats = group.column(column).statistics
        if stats is None or not stats.has_min_max or not isinstance(stats.min, str):
            return None
        lows.append(stats.min)
        highs.append(stats.max)
    return np.array(lows, dtype=object), np.array(highs, dtype=object)


def _time_ranges(
    metadata: pq.FileMetaData, groups: list[pq.RowGroupMetaData], column: int
) -> tuple[np.ndarray, np.ndarray] | None:
    logical = json.loads(metadata.schema.column(column).logical_type.to_json() or "{}")
    per_unit = _PER_UNIT.get(logical.get("timeUnit", "")) if logical.get("Type") == "Timestamp" else None
    if per_unit is None:
        return None
    lows, highs = [], []
    for group in groups:
        stats = group.column(column).statistics
        if stats is None or not stats.has_min_max or stats.physical_type != "INT64":
            return None
        lows.append(stats.min_raw * per_unit)
        highs.append(stats.max_raw * per_unit)
    return np.array(lows, np.int64), np.array(highs, np.int64)


@dataclass(frozen=True)
class FileRows:
    """The rows one file gave a read. ``complete``: already in the table's schema and
    filtered; otherwise its stored columns as decoded (``coin`` a dictionary), the
    partition columns still to add from ``partition_values`` (:func:`assemble`)."""

    rows: pa.Table
    partition_values: dict[str, object]
    complete: bool


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
) -> FileRows:
    """The rows of row groups ``groups`` (:meth:`RowGroupIndex.select`) of one local file
    that match ``row_filter`` (``None``: every row of the file is selected).
    ``own_filter``: the part of ``row_filter`` that is the caller's filters (not the scope
    and time range), all that is left to evaluate where the window was cut out exactly."""
    wanted = schema.names if row_filter is not None or columns is None else columns
    stored = [name for name in wanted if name in index.columns]
    partition_values = ds.get_partition_keys(fragment.partition_expression)
    if not groups:
        return FileRows(schema.empty_table(), partition_values, True)
    dictionary = ["coin"] if "coin" in stored else None
    data = _span(fragment, *index.span(groups))
    rows = pq.ParquetFile(pa.BufferReader(data), metadata=fragment.metadata, read_dictionary=dictionary) \
        .read_row_groups(groups, columns=stored, use_threads=False)
    if row_filter is not None:
        rows, exact = _narrowed(rows, window, partition_values)
        row_filter = own_filter if exact else row_filter
    if row_filter is None:
        return FileRows(rows, partition_values, False)
    rows = _in_schema([FileRows(rows, partition_values, False)], schema, schema.names)
    return FileRows(rows.filter(row_filter), partition_values, True)


def assemble(parts: list[FileRows], schema: pa.Schema, columns: list[str] | None) -> pa.Table:
    """The files' rows in order as one table of ``schema``, projected to ``columns``.

    Consecutive files decoded alike are joined first and their partition columns added once
    (a constant per file), so a read of many small files pays that per read, not per file."""
    names = columns if columns is not None else schema.names
    tables: list[pa.Table] = []
    run: list[FileRows] = []
    for part in parts:
        if part.complete or (run and run[0].rows.schema != part.rows.schema):
            if run:
                tables.append(_in_schema(run, schema, names))
            run = []
        if part.complete:
            tables.append(part.rows.select(names))
        else:
            run.append(part)
    if run:
        tables.append(_in_schema(run, schema, names))
    if not tables:
        return pa.schema([schema.field(name) for name in names]).empty_table()
    return pa.concat_tables(tables)


def _span(fragment: ds.ParquetFileFragment, first: int, end: int) -> pa.Buffer:
    """Bytes ``[first, end)`` of the fragment's file, through its filesystem, at the same
    offsets of a buffer (what lies before ``first`` is never read by the decoder, which is
    given the parsed footer; the allocator maps those pages without touching them)."""
    data = pa.allocate_buffer(end, resizable=False)
    view = memoryview(data)[first:end]
    with fragment.filesystem.open_input_file(fragment.path) as stream:
        stream.seek(first)
        if stream.readinto(view) != end - first:
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
    if not bool(np.all(times[1:] >= times[:-1])):
        return rows, False
    first = 0 if window.start_us is None else int(np.searchsorted(times, window.start_us, "left"))
    end = len(times) if window.end_us is None else int(np.searchsorted(times, window.end_us, "left"))
    rows = rows.slice(first, max(end - first, 0))
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


def _in_schema(run: list[FileRows], schema: pa.Schema, names: list[str]) -> pa.Table:
    """The rows of ``run`` (files decoded alike) as fields ``names`` of ``schema``: stored
    columns cast, partition columns from each file's values, nulls for the rest."""
    rows = pa.concat_tables([part.rows for part in run]) if len(run) > 1 else run[0].rows
    arrays: list[pa.Array | pa.ChunkedArray] = []
    for name in names:
        field = schema.field(name)
        if name in rows.column_names:
            column = rows.column(name)
            arrays.append(column if column.type == field.type else column.cast(field.type))
            continue
        values = [part.partition_values.get(name) for part in run]
        if all(value == values[0] for value in values):
            arrays.append(pa.repeat(pa.scalar(values[0], field.type), rows.num_rows))
        else:
            owner = np.repeat(np.arange(len(run)), [part.rows.num_rows for part in run])
            arrays.append(pa.array(values, field.type).take(pa.array(owner)))
    return pa.Table.from_arrays(arrays, schema=pa.schema([schema.field(name) for name in names]))


def _one_group_file() -> pq.FileMetaData:
    """The footer of a two-row file of BTC (for the module's example)."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"coin": ["BTC", "BTC"], "timestamp": pa.array([0, 60_000_000], pa.timestamp("us"))}), sink)
    return pq.ParquetFile(pa.BufferReader(sink.getvalue())).metadata


__all__ = ["FileRows", "RowGroupIndex", "assemble", "read_file"]
