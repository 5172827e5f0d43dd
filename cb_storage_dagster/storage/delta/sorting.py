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
    ordered: pa.ChunkedArray | None = None  # rows i, i+1 in order on the keys seen so far
    tied: pa.ChunkedArray | None = None  # rows i, i+1 equal on the keys seen so far
    for position, name in enumerate(present):
        column = table.column(name)
        if column.null_count:
            return False
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

__all__ = ["INSTRUMENT_COLUMNS", "is_sorted", "sort_rows"]
