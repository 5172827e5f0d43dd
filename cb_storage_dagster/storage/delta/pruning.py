"""Pruning: which files of a Delta snapshot may hold rows of a scope, and what each one holds.

Three vectorized answers computed from a snapshot's add actions (partition values and
per-file min/max statistics), never from the data:

* :func:`scope_mask` -- the files a read of a :class:`WriteScope` must open;
* :func:`file_guarantees` -- per file, its partition values and value ranges as a pyarrow
  expression, so the reader skips the row filter where a whole file matches;
* :func:`scope_range_expression` -- the scope's rows as equalities and day ranges, the form
  pyarrow can prove true from such a guarantee.

A missing statistic always keeps a file: pruning may read too much, never too little.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from cb_storage_dagster.domain.keys import PartitionSlot
from cb_storage_dagster.domain.schemas import DATE_COLUMN, MONTH_COLUMN
from cb_storage_dagster.domain.scope import WriteScope

_STATS_SLACK = dt.timedelta(milliseconds=1)
"""Delta statistics store timestamps with millisecond precision (the max is truncated)."""
_MAX_RANGE_TERMS = 64
"""Above this many contiguous day runs, prune files by the overall first/last day only."""
STRING_STATS_TRUSTED_LENGTH = 32
"""delta-rs truncates long string statistics: a coin min/max this long or longer is ignored."""


def scope_mask(actions: pa.Table, scope: WriteScope | None) -> pa.ChunkedArray | None:
    """Add actions that may hold rows of ``scope`` (vectorized; null statistics keep a file)."""
    if scope is None or scope.whole_table:
        return None
    names = actions.column_names
    has_month = f"partition.{MONTH_COLUMN}" in names
    has_dates = f"min.{DATE_COLUMN}" in names and f"max.{DATE_COLUMN}" in names
    exchange = actions.column("partition.exchange")
    mask = pa.chunked_array([pa.array([False] * actions.num_rows, pa.bool_())])

    def day_terms(days: Iterable[dt.date]) -> pa.ChunkedArray:
        days = sorted(set(days))
        out = pa.chunked_array([pa.array([True] * actions.num_rows, pa.bool_())])
        if has_month:
            months = pa.array(sorted({d.strftime("%Y-%m") for d in days}), pa.string())
            out = pc.is_in(actions.column(f"partition.{MONTH_COLUMN}"), value_set=months)
        if has_dates:
            runs = _day_runs(days)
            if len(runs) > _MAX_RANGE_TERMS:
                runs = [(days[0], days[-1])]
            overlap = None
            lo, hi = actions.column(f"min.{DATE_COLUMN}"), actions.column(f"max.{DATE_COLUMN}")
            for first, last in runs:
                term = pc.and_kleene(
                    pc.less_equal(lo, pa.scalar(last, pa.date32())),
                    pc.greater_equal(hi, pa.scalar(first, pa.date32())),
                )
                overlap = term if overlap is None else pc.or_kleene(overlap, term)
            out = pc.and_(out, pc.fill_null(overlap, True))
        return out

    by_instrument: dict[tuple[str, str], list[dt.date]] = {}
    for slot in scope.slots:
        by_instrument.setdefault((slot.exchange, slot.coin), []).append(slot.date)
    for (e, c), days in by_instrument.items():
        term = pc.and_(pc.and_(pc.equal(exchange, e), coin_mask(actions, c)), day_terms(days))
        mask = pc.or_(mask, term)
    day_groups: dict[str | None, list[dt.date]] = {}
    for day in scope.days:
        day_groups.setdefault(day.exchange, []).append(day.date)
    for e, days in day_groups.items():
        term = day_terms(days)
        mask = pc.or_(mask, term if e is None else pc.and_(pc.equal(exchange, e), term))
    for e, c in scope.instruments:
        mask = pc.or_(mask, pc.and_(pc.equal(exchange, e), coin_mask(actions, c)))
    return mask


def coin_statistics(actions: pa.Table) -> tuple[pa.ChunkedArray, pa.ChunkedArray] | None:
    """Per-file ``coin`` min/max of an exchange-layout table (``None`` where a statistic is
    missing or may be truncated), or ``None`` when ``coin`` is a partition column."""
    if "partition.coin" in actions.column_names or "min.coin" not in actions.column_names:
        return None

    def trusted(column: pa.ChunkedArray) -> pa.ChunkedArray:
        short = pc.less(pc.utf8_length(column), STRING_STATS_TRUSTED_LENGTH)
        return pc.if_else(pc.fill_null(short, False), column, pa.scalar(None, column.type))

    return trusted(actions.column("min.coin")), trusted(actions.column("max.coin"))


def coin_mask(actions: pa.Table, coin: str) -> pa.ChunkedArray:
    """Files that may hold rows of ``coin``: its partition value, or (exchange layout) its
    min/max statistics (a file without them is kept)."""
    if "partition.coin" in actions.column_names:
        return pc.equal(actions.column("partition.coin"), coin)
    stats = coin_statistics(actions)
    if stats is None:  # no statistics at all: every file may hold the coin
        return pa.chunked_array([pa.array([True] * actions.num_rows, pa.bool_())])
    lo, hi = stats
    inside = pc.and_kleene(pc.less_equal(lo, coin), pc.greater_equal(hi, coin))
    return pc.fill_null(inside, True)


def _day_runs(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Sorted distinct days as contiguous ``(first, last)`` runs."""
    runs: list[tuple[dt.date, dt.date]] = []
    for day in days:
        if runs and day - runs[-1][1] == dt.timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def scope_range_expression(scope: WriteScope | None) -> ds.Expression | None:
    """The rows of ``scope`` as an expression of equalities and day ranges.

    Equivalent to an ``isin`` over the scope's days, but made of comparisons that pyarrow
    can prove true for a whole file from its guarantee (then it skips the row filter).
    """
    if scope is None or scope.whole_table:
        return None
    date = ds.field(DATE_COLUMN)

    def days_expr(days: Iterable[dt.date]) -> ds.Expression:
        terms = []
        for first, last in _day_runs(sorted(set(days))):
            if first == last:
                terms.append(date == pa.scalar(first, pa.date32()))
            else:
                terms.append((date >= pa.scalar(first, pa.date32())) & (date <= pa.scalar(last, pa.date32())))
        return _or_all(terms)

    by_instrument: dict[tuple[str, str], list[dt.date]] = {}
    for slot in scope.slots:
        by_instrument.setdefault((slot.exchange, slot.coin), []).append(slot.date)
    terms = [
        (ds.field("exchange") == e) & (ds.field("coin") == c) & days_expr(days)
        for (e, c), days in sorted(by_instrument.items())
    ]
    day_groups: dict[str | None, list[dt.date]] = {}
    for day in scope.days:
        day_groups.setdefault(day.exchange, []).append(day.date)
    for e, days in sorted(day_groups.items(), key=lambda item: item[0] or ""):
        term = days_expr(days)
        terms.append(term if e is None else (ds.field("exchange") == e) & term)
    for e, c in sorted(scope.instruments):
        terms.append((ds.field("exchange") == e) & (ds.field("coin") == c))
    return _or_all(terms)


def _or_all(terms: list[ds.Expression]) -> ds.Expression:
    # A balanced tree keeps expression depth logarithmic for long unions.
    while len(terms) > 1:
        terms = [terms[i] | terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


def file_guarantees(actions: pa.Table, schema: pa.Schema, partition_columns: tuple[str, ...]) -> list[ds.Expression]:
    """Per file: its partition values and its ``timestamp``/``date`` ranges as one expression."""
    n = actions.num_rows
    if n == 0:
        return []
    columns: list[tuple[str, pa.DataType, list[Any]]] = []
    for name in partition_columns:
        typ = schema.field(name).type if name in schema.names else pa.string()
        column = actions.column(f"partition.{name}")
        if column.type != typ:
            column = pc.cast(column, typ)
        columns.append((name, typ, column.to_pylist()))
    ranges: list[tuple[str, pa.DataType, list[Any], list[Any]]] = []
    coin_stats = coin_statistics(actions)
    if coin_stats is not None and "coin" in schema.names:
        ranges.append(("coin", schema.field("coin").type, coin_stats[0].to_pylist(), coin_stats[1].to_pylist()))
    for name, slack in (("timestamp", _STATS_SLACK), (DATE_COLUMN, None)):
        if f"min.{name}" in actions.column_names and name in schema.names:
            lo = actions.column(f"min.{name}").to_pylist()
            hi = actions.column(f"max.{name}").to_pylist()
            if slack is not None:
                hi = [None if v is None else v + slack for v in hi]
            ranges.append((name, schema.field(name).type, lo, hi))
    out: list[ds.Expression] = []
    for i in range(n):
        expr: ds.Expression | None = None
        for name, typ, values in columns:
            value = values[i]
            term = ds.field(name).is_null() if value is None else ds.field(name) == pa.scalar(value, typ)
            expr = term if expr is None else expr & term
        for name, typ, lo, hi in ranges:
            if lo[i] is not None and hi[i] is not None:
                term = (ds.field(name) >= pa.scalar(lo[i], typ)) & (ds.field(name) <= pa.scalar(hi[i], typ))
                expr = term if expr is None else expr & term
        out.append(expr if expr is not None else ds.scalar(True))
    return out

def wholly_selected(
    actions: pa.Table, scope: WriteScope | None, time_range: tuple[dt.datetime, dt.datetime] | None
) -> list[bool]:
    """Per file: whether every row it holds is selected by ``scope`` and ``time_range``
    (``start <= timestamp < end``), proven by its partition values and statistics alone: one
    instrument (its partition values), every day from its first to its last in the scope,
    its first and last timestamp inside the range. Such a file is read without the row filter.
    A file without those statistics, or holding several coins (exchange layout), is not."""
    names = actions.column_names
    needed = ["partition.exchange", "partition.coin"] + [f"{b}.{c}" for b in ("min", "max") for c in (DATE_COLUMN, "timestamp")]
    if any(c not in names for c in needed):
        return [False] * actions.num_rows
    exchange, coin, first_day, last_day, first, last = (actions.column(c).to_pylist() for c in needed[:2] + [
        f"min.{DATE_COLUMN}", f"max.{DATE_COLUMN}", "min.timestamp", "max.timestamp"])
    out = []
    for e, c, day, last_date, lo, hi in zip(exchange, coin, first_day, last_day, first, last):
        if None in (e, c, day, last_date, lo, hi) or (last_date - day).days > 366:
            out.append(False)
            continue
        # Statistics keep milliseconds: the true last timestamp is below ``hi`` + 1 ms.
        inside = time_range is None or (lo >= time_range[0] and hi + _STATS_SLACK <= time_range[1])
        while inside and scope is not None and day <= last_date:
            inside = scope.covers(PartitionSlot(e, c, day))
            day += dt.timedelta(days=1)
        out.append(inside)
    return out


__all__ = ["STRING_STATS_TRUSTED_LENGTH", "coin_mask", "coin_statistics", "file_guarantees", "scope_mask", "scope_range_expression", "wholly_selected"]
