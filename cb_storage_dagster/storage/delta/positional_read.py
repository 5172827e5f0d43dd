"""One instrument's rows of a memory-mapped data file taken by position: its run of rows in
each row group, cut to the read's time range, each column's values sliced from the file's
pages (:mod:`.column_slices`) instead of decoding whole row groups.

What a warm read of one instrument then costs is finding the rows and copying them: one
instrument x 30 exchange-days of 2,000 coins reads 43,200 rows, where decoding the row
groups that hold them meant 30 x 1-2 x 64 Ki rows.

A file is read so only when every column the read needs can be (:class:`.column_slices.
RowGroupSlices`), the instrument's rows form one run in each row group and their times are
in order; otherwise :func:`read_by_position` returns ``None`` and the caller decodes the
file with pyarrow (:mod:`.row_groups`), with the same result.

>>> import datetime as dt, pyarrow as pa, pyarrow.parquet as pq, tempfile, os
>>> from cb_storage_dagster.storage.delta.mapped_file import MappedFile
>>> path = os.path.join(tempfile.mkdtemp(), "f.parquet")
>>> times = pa.array([0, 60_000_000, 0, 60_000_000], pa.timestamp("us", "UTC"))
>>> table = pa.table({"coin": ["BTC", "BTC", "ETH", "ETH"], "timestamp": times, "close": [1.0, 2.0, 3.0, 4.0]})
>>> pq.write_table(table, path, compression="NONE", use_dictionary=["coin"])
>>> kept = MappedFile(path, pq.ParquetFile(path).metadata, {"exchange": "binance"})
>>> window = RowWindow(coin="ETH", start_us=60_000_000, end_us=120_000_000)
>>> rows, values, exact = read_by_position(kept, [0], window, ["coin", "timestamp", "close"], every_row=False)
>>> rows.table().column("close").to_pylist(), values["coin"]
([4.0], 'ETH')
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from cb_storage_dagster.storage.delta.column_slices import RowGroupSlices
from cb_storage_dagster.storage.delta.mapped_file import MappedFile
from cb_storage_dagster.storage.delta.row_group_index import RowGroupIndex
from cb_storage_dagster.storage.delta.row_window import RowWindow

POSITIONAL_READS = True
"""Whether reads of one instrument take rows by position where they can (off: pyarrow
decodes every file; for comparisons)."""
POSITIONAL_MAX_COINS = 64
"""A read of up to this many coins of one exchange takes each coin's rows by position, coin
after coin (:func:`reads_coins_by_position`); a read of more decodes the row groups that hold
them. Five instruments x 30 exchange-days of 2,000 coins, warm: ~265 ms decoded and filtered
(their rows are ~1/11 of each 16 Ki-row group), ~25 ms by position (session 19)."""

_EPOCH_DAY = dt.date(1970, 1, 1)


def reads_coins_by_position(window: RowWindow) -> bool:
    """Whether a read of ``window`` takes rows by position: one coin, or a few
    (:data:`POSITIONAL_MAX_COINS`), each read as its own window (:meth:`RowWindow.for_coin`).

    >>> reads_coins_by_position(RowWindow(coin="BTC")), reads_coins_by_position(RowWindow(coins=("BTC", "ETH")))
    (True, True)
    >>> reads_coins_by_position(RowWindow()), reads_coins_by_position(RowWindow(coins=tuple(map(str, range(65)))))
    (False, False)
    """
    return POSITIONAL_READS and (window.coin is not None or (
        window.coins is not None and len(window.coins) <= POSITIONAL_MAX_COINS))


def read_by_position(
    mapped: MappedFile, groups: list[int], window: RowWindow, stored: list[str], *, every_row: bool,
    index: RowGroupIndex | None = None,
) -> tuple[PositionalRows, dict[str, object], bool] | None:
    """The rows of ``window``'s instrument in row groups ``groups`` of ``mapped``: its
    ``stored`` columns other than ``coin`` (the file's own types), the file's partition
    values with the instrument's ``coin``, and whether the rows are exactly the window's
    (as :func:`.row_groups.read_file` means it). ``every_row``: the file holds only rows the
    read selects (nothing to cut). ``index``: the file's row groups, whose statistics spare
    the groups lying inside the window (:meth:`RowGroupIndex.inside`, a day file of a
    month's read) the cut to the time range and the check of their dates; the read's rows
    are put in time order afterwards in any case. ``None``: read the file otherwise."""
    if not POSITIONAL_READS or window.coin is None:
        return None
    coin_stored = mapped.stores_coin
    if coin_stored and every_row:
        return None  # every row of a file of several coins: its coin column is wanted as stored
    output = tuple(name for name in stored if name != "coin")
    timed = not every_row and (window.start_us is not None or window.end_us is not None)
    if timed and not mapped.times_in_micros:
        return None
    columns: tuple[list[np.ndarray], ...] = tuple([] for _ in output)
    count = 0
    every_group_inside = timed and index is not None
    for group in groups:
        inside = timed and index is not None and index.inside(group, window)
        every_group_inside = every_group_inside and inside
        found = _group_rows(mapped.slices(group), window, output, coin_stored=coin_stored, timed=timed and not inside)
        if found is None:
            return None
        count += found[0]
        for pieces, values in zip(columns, found[1]):
            pieces.append(values)
    rows = PositionalRows(mapped.schema_of(output), columns, count)
    values = dict(mapped.partition_values)
    if coin_stored:
        values["coin"] = window.coin
    exact = (timed and window.exact and values.get("exchange") == window.exchange
             and values.get("coin") == window.coin
             and (every_group_inside or _dates_within(columns[output.index("date")] if "date" in output else None, rows, window)))
    return rows, values, exact


def _group_rows(slices: RowGroupSlices, window: RowWindow, output: tuple[str, ...], *, coin_stored: bool,
                timed: bool) -> tuple[int, list[np.ndarray]] | None:
    """How many of the window's rows one row group (``slices``) holds, and per output column
    their values (none may be wanted: a read of partition columns only still counts rows)."""
    columns = slices.readable(output)
    if columns is None:
        return None  # a column pyarrow decodes, or strings
    first, end = 0, slices.rows
    if coin_stored:
        run = slices.coin_run(window.coin or "")
        if run is None:
            return None
        first, end = run
    if timed and end > first:
        times_column = slices.columns.get("timestamp")
        if times_column is None:
            return None
        times = times_column.take(first, end)
        if len(times) > 1 and not bool((times[1:] >= times[:-1]).all()):
            return None
        low = 0 if window.start_us is None else int(times.searchsorted(window.start_us, "left"))
        high = len(times) if window.end_us is None else int(times.searchsorted(window.end_us, "left"))
        first, end = first + low, first + max(high, low)
    return end - first, [column.take(first, end) for column in columns]


@dataclass(frozen=True)
class PositionalRows:
    """Rows of one file taken by position, not yet Arrow arrays: per field of ``schema``, its
    values in pieces (one per row group). Files read so are joined with one copy per column
    for the whole read (:meth:`join`), not one table per file."""

    schema: pa.Schema
    columns: tuple[list[np.ndarray], ...]
    num_rows: int

    def table(self) -> pa.Table:
        """The rows as a table."""
        return PositionalRows.join([self])

    @staticmethod
    def join(parts: list[PositionalRows]) -> pa.Table:
        """The rows of ``parts`` (of one schema), in order, as one table."""
        schema = parts[0].schema
        arrays = []
        for i, field in enumerate(schema):
            pieces = [piece for part in parts for piece in part.columns[i] if len(piece)]
            if not pieces:
                arrays.append(pa.array([], field.type))
                continue
            arrays.append(pa.Array.from_buffers(field.type, sum(len(piece) for piece in pieces), [None, _joined(pieces)]))
        if not arrays:  # no stored column wanted: the rows still count
            return pa.table({"_": pa.nulls(sum(part.num_rows for part in parts))}).drop_columns(["_"])
        return pa.Table.from_arrays(arrays, schema=schema)


def _joined(pieces: list[np.ndarray]) -> pa.Buffer:
    """The pieces' values one after another in a buffer of pyarrow's memory pool, which keeps
    freed memory for the next read: a new numpy array of each read's size is fresh pages the
    kernel maps and zeroes (43,200 rows x 7 columns: ~0.5 against ~0.1 ms)."""
    joined = pa.allocate_buffer(sum(piece.nbytes for piece in pieces))
    np.concatenate(pieces, out=np.frombuffer(joined, pieces[0].dtype))
    return joined


def _dates_within(pieces: list[np.ndarray] | None, rows: PositionalRows, window: RowWindow) -> bool:
    """Whether every row's ``date`` (days since the epoch) lies in the window's days."""
    if pieces is None or not pa.types.is_date32(rows.schema.field("date").type):
        return False
    if not rows.num_rows:
        return True
    lowest = min(int(piece.min()) for piece in pieces if len(piece))
    highest = max(int(piece.max()) for piece in pieces if len(piece))
    return window.first_day <= _EPOCH_DAY + dt.timedelta(days=lowest) and \
        _EPOCH_DAY + dt.timedelta(days=highest) <= window.last_day


__all__ = ["POSITIONAL_MAX_COINS", "POSITIONAL_READS", "PositionalRows", "read_by_position", "reads_coins_by_position"]
