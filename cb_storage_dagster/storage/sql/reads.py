"""The predicates of reads: user filters validated and turned into a pyarrow expression (the
product's reader, pushed down to Parquet statistics) or SQL terms (delta-rs' DataFusion reader,
meaning the same), time ranges and coin sets, and a scope as SQL for tables of other engines.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from cb_storage_dagster.domain.errors import InvalidKeyError
from cb_storage_dagster.domain.keys import validate_name
from cb_storage_dagster.domain.schemas import DATE_COLUMN
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.storage.sql.literals import (
    date_list,
    day_start,
    quote_identifier,
    sql_literal,
    validate_column,
)
from cb_storage_dagster.storage.times import utc

_OPS = {"=", "==", "!=", "<", "<=", ">", ">=", "in", "not in"}


def validate_filters(filters: Sequence[tuple[str, str, Any]] | None) -> list[tuple[str, str, Any]]:
    out: list[tuple[str, str, Any]] = []
    for item in filters or ():
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise InvalidKeyError(f"Filter {item!r} must be a (column, op, value) tuple.")
        column, op, value = item
        validate_column(column)
        op = str(op).lower().strip()
        if op not in _OPS:
            raise InvalidKeyError(f"Unsupported filter operator {op!r}; use one of {sorted(_OPS)}.")
        if op in ("in", "not in"):
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise InvalidKeyError(f"Filter {item!r}: {op!r} needs a list of values.")
            value = list(value)
        out.append((column, "=" if op == "==" else op, value))
    return out


def _arrow_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return pa.scalar(utc(value, "filter value"), pa.timestamp("us", tz="UTC"))
    return value


def filters_expression(filters: Sequence[tuple[str, str, Any]]) -> ds.Expression | None:
    """AND of the filters as a pyarrow dataset expression (pushed down to Parquet stats)."""
    expr: ds.Expression | None = None
    for column, op, value in filters:
        field = ds.field(column)
        if op == "in":
            term = field.isin([_arrow_value(v) for v in value])
        elif op == "not in":
            term = ~field.isin([_arrow_value(v) for v in value])
        else:
            v = _arrow_value(value)
            term = {
                "=": field == v, "!=": field != v, "<": field < v,
                "<=": field <= v, ">": field > v, ">=": field >= v,
            }[op]
        expr = term if expr is None else expr & term
    return expr


def filters_sql(filters: Sequence[tuple[str, str, Any]]) -> list[str]:
    """The (validated) filters as SQL terms, meaning what :func:`filters_expression` means.

    >>> print(" AND ".join(filters_sql([("close", ">", 1.5), ("side", "in", ["buy"])])))
    "close" > 1.5 AND "side" IN ('buy')
    """
    terms: list[str] = []
    for column, op, value in validate_filters(filters):
        name = quote_identifier(column)
        if op in ("in", "not in"):
            if not value:  # pyarrow's isin([]) matches nothing; SQL has no empty IN list
                terms.append("FALSE" if op == "in" else "TRUE")
                continue
            listed = ", ".join(sql_literal(v) for v in value)
            terms.append(f"{name} {'IN' if op == 'in' else 'NOT IN'} ({listed})")
        else:
            terms.append(f"{name} {op} {sql_literal(value)}")
    return terms


def time_range_sql(start: dt.datetime, end: dt.datetime) -> str:
    """``start <= timestamp < end`` as SQL (UTC ISO literals, which DataFusion casts).

    >>> UTC = dt.timezone.utc
    >>> print(time_range_sql(dt.datetime(2024, 1, 2, tzinfo=UTC), dt.datetime(2024, 1, 3, tzinfo=UTC)))
    "timestamp" >= '2024-01-02T00:00:00+00:00' AND "timestamp" < '2024-01-03T00:00:00+00:00'
    """
    return f'"timestamp" >= {sql_literal(start)} AND "timestamp" < {sql_literal(end)}'


def scope_read_sql(scope: WriteScope | None, columns: Collection[str]) -> str | None:
    """The rows of ``scope`` as a SQL predicate over a table with ``columns``, for readers
    that are not this product's own (delta-rs' DataFusion reader of any Delta table).

    Unlike :func:`delta_predicate` it assumes only ``exchange``, ``coin`` and
    ``timestamp``: days become ``date IN (...)`` when ``columns`` names a ``date`` column
    (the caller passes it only if it holds UTC days as ``date32``; partition pruning when it
    is a partition column), else UTC timestamp ranges. A foreign table's ``month`` may mean
    anything (``1``..``12``, ``'2024-01'``), so it is never used. ``None``: no restriction.

    >>> from cb_storage_dagster.domain.keys import PartitionSlot
    >>> scope = WriteScope.of_slots([PartitionSlot("binance", "BTC", dt.date(2024, 1, 2))])
    >>> print(scope_read_sql(scope, ["exchange", "coin", "timestamp", "date"]))
    ("exchange" = 'binance' AND "coin" = 'BTC' AND "date" IN ('2024-01-02'))
    """
    if scope is None or scope.whole_table:
        return None
    if scope.is_empty:
        return "FALSE"

    def days_sql(days: Iterable[dt.date]) -> str:
        days = sorted(set(days))
        terms: list[str] = []
        if DATE_COLUMN in columns:
            terms.append(f"{quote_identifier(DATE_COLUMN)} IN ({date_list(days)})")
        else:
            runs: list[list[dt.date]] = []
            for day in days:
                if runs and (day - runs[-1][-1]).days == 1:
                    runs[-1].append(day)
                else:
                    runs.append([day])
            terms.append("(" + " OR ".join(
                f"({time_range_sql(day_start(run[0]), day_start(run[-1] + dt.timedelta(days=1)))})"
                for run in runs
            ) + ")")
        return " AND ".join(terms)

    def instrument_sql(exchange: str, coin: str) -> str:
        return (f"{quote_identifier('exchange')} = {sql_literal(validate_name(exchange, 'exchange'))} AND "
                f"{quote_identifier('coin')} = {sql_literal(validate_name(coin, 'coin'))}")

    clauses: list[str] = []
    by_instrument: dict[tuple[str, str], list[dt.date]] = defaultdict(list)
    for slot in scope.slots:
        by_instrument[(slot.exchange, slot.coin)].append(slot.date)
    for (exchange, coin), days in sorted(by_instrument.items()):
        clauses.append(f"({instrument_sql(exchange, coin)} AND {days_sql(days)})")
    by_exchange: dict[str | None, list[dt.date]] = defaultdict(list)
    for day in scope.days:
        by_exchange[day.exchange].append(day.date)
    for exchange, days in sorted(by_exchange.items(), key=lambda item: item[0] or ""):
        exchange_term = (
            "" if exchange is None
            else f"{quote_identifier('exchange')} = {sql_literal(validate_name(exchange, 'exchange'))} AND "
        )
        clauses.append(f"({exchange_term}{days_sql(days)})")
    for exchange, coin in sorted(scope.instruments):
        clauses.append(f"({instrument_sql(exchange, coin)})")
    return " OR ".join(clauses)


def time_range_expression(start: dt.datetime, end: dt.datetime) -> ds.Expression:
    ts = ds.field("timestamp")
    typ = pa.timestamp("us", tz="UTC")
    return (ts >= pa.scalar(start, typ)) & (ts < pa.scalar(end, typ))


def coins_expression(coins: Collection[str | None]) -> ds.Expression | None:
    """Rows whose ``coin`` is one of ``coins`` (``None`` in it: a null coin) as a pyarrow
    expression; ``None`` when ``coins`` is empty.

    >>> coins_expression([]) is None
    True
    >>> import pyarrow as pa
    >>> pa.table({"coin": ["BTC", "ETH", None]}).filter(coins_expression(["BTC", None])).num_rows
    2
    """
    wanted = [c for c in coins if c is not None]
    expr = ds.field("coin").isin(wanted) if wanted else None
    if None in coins:
        expr = ds.field("coin").is_null() if expr is None else expr | ds.field("coin").is_null()
    return expr


def coin_filter(coins: Iterable[str]) -> tuple[str, str, list[str]]:
    """Rows of any of ``coins`` (validated names) as a ``(column, op, value)`` read filter.

    >>> coin_filter(["ETH", "BTC", "ETH"])
    ('coin', 'in', ['BTC', 'ETH'])
    """
    return ("coin", "in", sorted({validate_name(c, "coin") for c in coins}))
