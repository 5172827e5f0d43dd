"""Row-level pyarrow helpers of the data rules: sortedness, repeated keys, rows of chosen groups.

Example:
    >>> import pyarrow as pa
    >>> table = pa.table({"coin": ["BTC", "ETH", "BTC"], "level": [0, 0, 0]})
    >>> repeated_rows(table, ["coin", "level"]), strictly_increasing([table.column("coin")])
    (1, False)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROW_INDEX = "__row"


def repeated_rows(table: pa.Table, key: Sequence[str]) -> int:
    """How many rows of ``table`` repeat a ``key`` seen on an earlier row."""
    if not table.num_rows:
        return 0
    return table.num_rows - table.select(list(key)).group_by(list(key)).aggregate([]).num_rows


def rows_of_groups(
    table: pa.Table,
    key: list[str],
    aggregations: list[tuple],
    selected: Callable[[pa.Table], pa.Array],
) -> pa.Array:
    """``True`` on every row of the groups (by ``key``) for which ``selected`` holds, given
    the groups with their ``aggregations``. The groups' rows are only listed when one is
    selected (the usual answer is none)."""
    n = table.num_rows
    columns = table.select(list(dict.fromkeys([*key, *(a[0] for a in aggregations if a[0])])))
    groups = columns.group_by(key, use_threads=False).aggregate(aggregations)
    if not pc.any(selected(groups)).as_py():
        return no_rows(n)
    grouped = (
        columns.append_column(ROW_INDEX, pa.array(np.arange(n, dtype=np.int64)))
        .group_by(key, use_threads=False)
        .aggregate([*aggregations, (ROW_INDEX, "list")])
    )
    hit = pc.list_flatten(grouped.filter(selected(grouped))[f"{ROW_INDEX}_list"])
    mask = np.zeros(n, dtype=bool)
    mask[hit.to_numpy()] = True
    return pa.array(mask)


def rows_sharing_a_key(table: pa.Table, key: Sequence[str]) -> pa.Array:
    """``True`` on every row whose ``key`` another row repeats (nulls equal to nulls, like
    pandas' ``duplicated(keep=False)``): one sort, then a comparison of neighbours."""
    n = table.num_rows
    if n < 2:
        return no_rows(n)
    order = pc.sort_indices(table.select(list(key)), sort_keys=[(k, "ascending") for k in key])
    same: pa.Array | None = None  # sorted row i equals sorted row i+1 on the columns so far
    for name in key:
        column = pc.take(table.column(name), order)
        before, after = column.slice(0, n - 1), column.slice(1)
        equal = pc.or_(
            pc.fill_null(pc.equal(before, after), False), pc.and_(pc.is_null(before), pc.is_null(after))
        )
        same = equal if same is None else pc.and_(same, equal)
    pairs = same.to_numpy()
    repeated = np.zeros(n, dtype=bool)
    repeated[:-1] |= pairs
    repeated[1:] |= pairs
    mask = np.zeros(n, dtype=bool)
    mask[order.to_numpy()] = repeated
    return pa.array(mask)


def strictly_increasing(columns: list[pa.ChunkedArray]) -> bool:
    """Whether each row is lexicographically greater than the row before it on ``columns``
    (no nulls). Vectorized over adjacent rows: ``(a1 < b1) or (a1 == b1 and (a2 < b2 ...))``."""
    n = len(columns[0])
    if n < 2:
        return True
    if any(column.null_count for column in columns):
        return False
    increasing: pa.ChunkedArray | None = None  # row i+1 > row i on the columns seen so far
    tied: pa.ChunkedArray | None = None  # rows i, i+1 equal on the columns seen so far
    for column in columns:
        before, after = column.slice(0, n - 1), column.slice(1)
        less = pc.less(before, after)
        if increasing is None:
            increasing = less
        else:
            increasing = pc.or_(increasing, pc.and_(tied, less))
        tied = pc.equal(before, after) if tied is None else pc.and_(tied, pc.equal(before, after))
        if pc.all(increasing).as_py():
            return True
    return False


def no_rows(n: int) -> pa.Array:
    """A mask of ``n`` rows, none marked."""
    return pa.array(np.zeros(n, dtype=bool))


def true_where(condition: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """``condition`` with nulls as ``False``."""
    return pc.fill_null(condition, False)


def any_true(masks: Iterable[pa.ChunkedArray | pa.Array]) -> pa.ChunkedArray | pa.Array:
    """Row-wise OR of ``masks`` (a null counts as ``False``)."""
    result = None
    for mask in masks:
        mask = true_where(mask)
        result = mask if result is None else pc.or_(result, mask)
    return result


def all_true(masks: Iterable[pa.ChunkedArray | pa.Array]) -> pa.ChunkedArray | pa.Array:
    """Row-wise AND of ``masks``."""
    result = None
    for mask in masks:
        result = mask if result is None else pc.and_(result, mask)
    return result
