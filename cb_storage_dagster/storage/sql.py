"""The one place that turns keys, scopes and filters into predicates.

Delta overwrites use SQL predicate strings (delta-rs/DataFusion); reads use pyarrow
expressions. Every value that reaches a SQL string is either a validated name
(:func:`~cb_storage_dagster.domain.keys.validate_name`), an ISO date, or a literal
escaped by :func:`sql_literal`; column names are checked against :data:`_COLUMN_PATTERN`
and double-quoted.

Why one module of ~350 lines: it is the one place that builds a predicate (the Delta
overwrite, delete and merge predicates of a scope, the SQL and pyarrow forms of filters and
time ranges, partition filters), so that quoting and escaping are decided once.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from cb_storage_dagster.domain.errors import InvalidKeyError
from cb_storage_dagster.domain.keys import validate_name
from cb_storage_dagster.domain.schemas import DATE_COLUMN, MONTH_COLUMN
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.storage.times import days_in_range, utc

_COLUMN_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_OPS = {"=", "==", "!=", "<", "<=", ">", ">=", "in", "not in"}


def delta_predicate(scope: WriteScope, alias: str | None = None) -> str | None:
    """The SQL predicate of a Delta overwrite of exactly ``scope`` (``None``: the whole table).

    ``alias`` qualifies the columns (``target``: the target table of a merge).

    >>> from cb_storage_dagster.domain.keys import PartitionSlot
    >>> scope = WriteScope.of_slots([PartitionSlot("binance", "BTC", dt.date(2024, 1, 2))])
    >>> delta_predicate(scope)
    "(exchange = 'binance' AND coin = 'BTC' AND month = '2024-01' AND date IN ('2024-01-02'))"
    >>> delta_predicate(WriteScope.of_exchange_days([("binance", dt.date(2024, 1, 2))]))
    "(exchange = 'binance' AND month = '2024-01' AND date IN ('2024-01-02'))"
    """
    if scope.whole_table:
        return None
    if scope.is_empty:
        raise InvalidKeyError("An empty write scope has no predicate.")
    q = "" if alias is None else f"{validate_column(alias)}."
    clauses: list[str] = []
    grouped: dict[tuple[str, str, str], list[dt.date]] = defaultdict(list)
    for slot in scope.slots:
        grouped[(slot.exchange, slot.coin, slot.month)].append(slot.date)
    for (exchange, coin, month), days in sorted(grouped.items()):
        clauses.append(
            f"({q}exchange = {sql_literal(validate_name(exchange, 'exchange'))} AND "
            f"{q}coin = {sql_literal(validate_name(coin, 'coin'))} AND "
            f"{q}{MONTH_COLUMN} = {sql_literal(month)} AND {q}{DATE_COLUMN} IN ({_date_list(days)}))"
        )
    by_month: dict[tuple[str | None, str], list[dt.date]] = defaultdict(list)
    for day in scope.days:
        by_month[(day.exchange, day.month)].append(day.date)
    for (exchange, month), days in sorted(by_month.items(), key=lambda item: (item[0][0] or "", item[0][1])):
        exchange_term = (
            "" if exchange is None else f"{q}exchange = {sql_literal(validate_name(exchange, 'exchange'))} AND "
        )
        clauses.append(
            f"({exchange_term}{q}{MONTH_COLUMN} = {sql_literal(month)} AND {q}{DATE_COLUMN} IN ({_date_list(days)}))"
        )
    for exchange, coin in sorted(scope.instruments):
        clauses.append(f"({q}exchange = {sql_literal(exchange)} AND {q}coin = {sql_literal(coin)})")
    return " OR ".join(clauses)


def instrument_range_predicate(exchange: str, coin: str, start: dt.datetime, end: dt.datetime) -> str:
    """The Delta delete predicate of one instrument's rows with ``start <= timestamp < end``
    (the months of the range prune the files delta-rs reads).

    >>> UTC = dt.timezone.utc
    >>> print(instrument_range_predicate(
    ...     "binance", "BTC", dt.datetime(2024, 1, 2, tzinfo=UTC), dt.datetime(2024, 1, 3, tzinfo=UTC)))
    exchange = 'binance' AND coin = 'BTC' AND month IN ('2024-01') AND timestamp >= '2024-01-02T00:00:00.000000Z' AND timestamp < '2024-01-03T00:00:00.000000Z'
    """
    months = sorted({d.strftime("%Y-%m") for d in days_in_range(start, end)})
    return (
        f"exchange = {sql_literal(validate_name(exchange, 'exchange'))} AND "
        f"coin = {sql_literal(validate_name(coin, 'coin'))} AND "
        f"{MONTH_COLUMN} IN ({', '.join(sql_literal(m) for m in months)}) AND "
        f"timestamp >= {_timestamp_literal(start)} AND timestamp < {_timestamp_literal(end)}"
    )


def _timestamp_literal(value: dt.datetime) -> str:
    return f"'{value.astimezone(dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}'"


def partition_predicate(partition: Mapping[str, str]) -> str:
    """The SQL predicate of one table partition (``{column: value}``), e.g. for an overwrite
    that rewrites exactly that partition.

    >>> partition_predicate({"month": "2024-01", "exchange": "binance"})
    "exchange = 'binance' AND month = '2024-01'"
    """
    return " AND ".join(f"{validate_column(k)} = {sql_literal(v)}" for k, v in sorted(partition.items()))


def partition_filters(partition: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """One table partition as delta-rs partition filters (``[(column, "=", value), ...]``).

    >>> partition_filters({"month": "2024-01", "exchange": "binance"})
    [('exchange', '=', 'binance'), ('month', '=', '2024-01')]
    """
    return [(k, "=", v) for k, v in sorted(partition.items())]


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


MERGE_SOURCE = "source"
MERGE_TARGET = "target"


def merge_predicates(
    key_columns: Sequence[str], value_columns: Sequence[str], scope: WriteScope
) -> tuple[str, str | None]:
    """The two predicates of an upsert on ``key_columns`` into ``scope``.

    Returns ``(match, changed)``: ``match`` pairs a source row with the target row of the same
    key, restricted to the scope's partitions on the target side (so delta-rs reads and
    rewrites only their files, and a concurrent commit elsewhere is no conflict); ``changed``
    is true when any value column differs, so that re-merging identical rows updates nothing
    and commits nothing (``None`` when there are no value columns).

    >>> from cb_storage_dagster.domain.keys import PartitionSlot
    >>> scope = WriteScope.of_slots([PartitionSlot("binance", "BTC", dt.date(2024, 1, 2))])
    >>> match, changed = merge_predicates(["exchange", "coin", "timestamp"], ["close"], scope)
    >>> match
    "target.`exchange` = source.`exchange` AND target.`coin` = source.`coin` AND target.`timestamp` = source.`timestamp` AND ((target.exchange = 'binance' AND target.coin = 'BTC' AND target.month = '2024-01' AND target.date IN ('2024-01-02')))"
    >>> changed
    '(target.`close` IS DISTINCT FROM source.`close`)'
    """
    def col(alias: str, name: str) -> str:
        return f"{alias}.`{validate_column(name)}`"

    terms = [f"{col(MERGE_TARGET, k)} = {col(MERGE_SOURCE, k)}" for k in key_columns]
    scope_predicate = delta_predicate(scope, MERGE_TARGET)
    if scope_predicate is not None:
        terms.append(f"({scope_predicate})")
    changed = [
        # Parenthesized: DataFusion's parser binds ``OR`` tighter than ``IS DISTINCT FROM``.
        f"({col(MERGE_TARGET, c)} IS DISTINCT FROM {col(MERGE_SOURCE, c)})" for c in value_columns
    ]
    return " AND ".join(terms), (" OR ".join(changed) or None)


def _date_list(days: Iterable[dt.date]) -> str:
    return ", ".join(sql_literal(d.isoformat()) for d in sorted(set(days)))


def sql_literal(value: Any) -> str:
    """A SQL literal for ``value``; strings are single-quoted with quotes doubled.

    >>> sql_literal("O'Neil")
    "'O''Neil'"
    """
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidKeyError(f"Non-finite number {value!r} cannot be used in a predicate.")
        return repr(value)
    if isinstance(value, dt.datetime):
        return f"'{utc(value, 'value').isoformat()}'"
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'"
    if isinstance(value, str):
        if any(ord(c) < 32 for c in value):
            raise InvalidKeyError("Control characters are not allowed in predicate values.")
        return "'" + value.replace("'", "''") + "'"
    raise InvalidKeyError(f"Unsupported predicate value type {type(value).__name__}.")


def validate_column(name: Any) -> str:
    if not isinstance(name, str) or not _COLUMN_PATTERN.fullmatch(name):
        raise InvalidKeyError(
            f"Invalid column name {name!r}: use letters, digits and '_' (not starting with a digit)."
        )
    return name


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


def quote_identifier(name: Any) -> str:
    """A validated column name, double-quoted for SQL (DataFusion matches it case-sensitively).

    >>> quote_identifier("timestamp")
    '"timestamp"'
    """
    return f'"{validate_column(name)}"'


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
            terms.append(f"{quote_identifier(DATE_COLUMN)} IN ({_date_list(days)})")
        else:
            runs: list[list[dt.date]] = []
            for day in days:
                if runs and (day - runs[-1][-1]).days == 1:
                    runs[-1].append(day)
                else:
                    runs.append([day])
            terms.append("(" + " OR ".join(
                f"({time_range_sql(_day_start(run[0]), _day_start(run[-1] + dt.timedelta(days=1)))})"
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


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


def time_range_expression(start: dt.datetime, end: dt.datetime) -> ds.Expression:
    ts = ds.field("timestamp")
    typ = pa.timestamp("us", tz="UTC")
    return (ts >= pa.scalar(start, typ)) & (ts < pa.scalar(end, typ))
