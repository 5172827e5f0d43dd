"""Row order of market-data batches: is a table sorted, and sort it cheaply when it is not.

Writers (Delta, Parquet, JSON) and the manager's reads want rows in ``exchange, coin,
timestamp`` order. Sources and the fast reader usually deliver that order already, so
:func:`sort_rows` checks first (:func:`is_sorted`, one vectorized pass) and sorts only what
is not.

>>> import pyarrow as pa
>>> rows = pa.table({"coin": ["BTC", "BTC", "ETH"], "timestamp": [2, 1, 1]})
>>> is_sorted(rows, ["coin", "timestamp"], single_instrument=False)
False
>>> sort_rows(rows, ["coin", "timestamp"], single_instrument=False).column("timestamp").to_pylist()
[1, 2, 1]
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

INSTRUMENT_COLUMNS = ("exchange", "coin")
"""The columns that name an instrument (constant within a one-instrument table)."""


def sort_rows(table: pa.Table, keys: list[str], *, single_instrument: bool) -> pa.Table:
    """``table`` in ascending order of ``keys``, without a full multi-key sort when possible.

    Reads come out sorted unless a file was compacted without sorting (delta-rs'
    ``compact`` concatenates the day files of a month in log order): then the rows are a
    few sorted runs. A stable argsort of the timestamps (timsort: near linear on runs)
    yields the order, applied as zero-copy slices of those runs. The result is checked,
    and anything else falls back to a full sort.
    """
    if is_sorted(table, keys, single_instrument=single_instrument):
        return table
    n = table.num_rows
    if single_instrument and "timestamp" in table.column_names and table.column("timestamp").null_count == 0:
        import numpy as np

        values = pc.cast(table.column("timestamp"), pa.int64()).to_numpy()
        order = np.argsort(values, kind="stable")
        cuts = np.flatnonzero(np.diff(order) != 1) + 1
        if len(cuts) < 4096:
            starts = np.concatenate(([0], cuts))
            ends = np.concatenate((cuts, [n]))
            arranged = pa.concat_tables(
                [table.slice(int(order[a]), int(b - a)) for a, b in zip(starts, ends)]
            )
        else:
            arranged = table.take(pa.array(order))
        if is_sorted(arranged, keys, single_instrument=True):
            return arranged
    return table.sort_by([(k, "ascending") for k in keys if k in table.column_names])


def is_sorted(table: pa.Table, keys: list[str], *, single_instrument: bool) -> bool:
    """Whether ``table`` is already in ascending lexicographic order of ``keys``.

    One vectorized pass over adjacent rows, far cheaper than a multi-key sort. When the
    table holds one instrument, the exchange/coin keys are constant and skipped.
    """
    n = table.num_rows
    if n < 2:
        return True
    present = [k for k in keys if k in table.column_names]
    if single_instrument:
        present = [k for k in present if k not in INSTRUMENT_COLUMNS]
    if not present:
        return True
    if any(table.column(name).null_count for name in present):
        return False
    if len(present) == 1:
        ascending = _ascending(table.column(present[0]))
        if ascending is not None:
            return ascending
    if _by_instrument_runs(table, present):
        return _sorted_by_instrument_runs(table, present)
    ordered: pa.ChunkedArray | None = None  # rows i, i+1 in order on the keys seen so far
    tied: pa.ChunkedArray | None = None  # rows i, i+1 equal on the keys seen so far
    for position, name in enumerate(present):
        column = table.column(name)
        before, after = column.slice(0, n - 1), column.slice(1)
        last = position == len(present) - 1
        less = pc.less_equal(before, after) if last else pc.less(before, after)
        if ordered is None:
            ordered, tied = less, (None if last else pc.equal(before, after))
        else:
            ordered = pc.or_(ordered, pc.and_(tied, less))
            if not last:
                tied = pc.and_(tied, pc.equal(before, after))
        if tied is not None and not last and not pc.any(tied).as_py():
            break  # no ties: later keys cannot matter
    return bool(pc.all(ordered).as_py())


def _ascending(column: pa.ChunkedArray) -> bool | None:
    """Whether one chunk of int64-like values without nulls never falls, compared in numpy on
    its buffer (a read of one instrument: its times; ~25 against ~65 us for 43,200 rows);
    ``None`` for other columns.

    >>> _ascending(pa.chunked_array([pa.array([1, 2, 2], pa.int64())])), _ascending(pa.chunked_array([["a"]]))
    (True, None)
    """
    typ = column.type
    if column.num_chunks != 1 or not (pa.types.is_int64(typ) or pa.types.is_timestamp(typ)):
        return None
    values = column.chunk(0)
    times = np.frombuffer(values.buffers()[1], np.int64, len(values), values.offset * 8)
    return bool((times[1:] >= times[:-1]).all())


RUN_CHECK_MAX_CHANGES = 65536
"""Instrument changes a table may have for :func:`_sorted_by_instrument_runs` (compared in Python)."""


def _by_instrument_runs(table: pa.Table, keys: list[str]) -> bool:
    """Whether ``keys`` are strings (the instrument) then one integer or timestamp key: the
    shape :func:`_sorted_by_instrument_runs` checks."""
    *leading, last = [table.schema.field(name).type for name in keys]
    return bool(leading) and all(pa.types.is_string(typ) for typ in leading) and (
        pa.types.is_timestamp(last) or pa.types.is_int64(last))


def _sorted_by_instrument_runs(table: pa.Table, keys: list[str]) -> bool:
    """:func:`is_sorted` for string keys then an int64-like one, in two cheap passes: where the
    string keys change (one comparison per column), and where the last key falls (numpy).
    The rows are in order if the string keys strictly increase at each change and the last
    key falls nowhere else. Every instrument x 1 day of 2,000 coins (2.9 M rows in 2,000
    chunks): 33-40 ms against 43-50 ms for the generic pass, whose multi-key string comparisons
    dominate it."""
    import numpy as np

    n = table.num_rows
    changes = np.zeros(n - 1, bool)
    for name in keys[:-1]:
        column = table.column(name)
        changes |= pc.not_equal(column.slice(0, n - 1), column.slice(1)).to_numpy()
    positions = np.flatnonzero(changes)
    if len(positions) > RUN_CHECK_MAX_CHANGES:
        return is_sorted(table.select(keys[:-1]), keys[:-1], single_instrument=False) and \
            _falls_only_at(table.column(keys[-1]), changes)
    heads = table.select(keys[:-1])
    before = heads.take(pa.array(positions)).to_pylist()
    after = heads.take(pa.array(positions + 1)).to_pylist()
    increasing = all(tuple(a.values()) < tuple(b.values()) for a, b in zip(before, after))
    return increasing and _falls_only_at(table.column(keys[-1]), changes)


def _falls_only_at(column: pa.ChunkedArray, allowed: object) -> bool:
    """Whether ``column`` (int64-like, no nulls) decreases only between rows where ``allowed``
    (a boolean array over adjacent pairs) is true."""
    import numpy as np

    values = pc.cast(column, pa.int64()).combine_chunks().to_numpy()
    falls = np.flatnonzero(values[1:] < values[:-1])
    return bool(np.all(allowed[falls]))  # type: ignore[index]


__all__ = ["INSTRUMENT_COLUMNS", "is_sorted", "sort_rows"]
