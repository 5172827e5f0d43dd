"""The predicates of writes: a Delta overwrite, delete or merge of exactly a scope, one
instrument's time range, one table partition (what maintenance rewrites).

Every value in them is a validated name (:func:`~cb_storage_dagster.domain.keys.validate_name`),
an ISO date or month, or a literal escaped by :func:`~cb_storage_dagster.storage.sql.literals.sql_literal`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from cb_storage_dagster.domain.errors import InvalidKeyError
from cb_storage_dagster.domain.keys import PartitionSlot, validate_name
from cb_storage_dagster.domain.schemas import DATE_COLUMN, MONTH_COLUMN
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.storage.sql.literals import date_list, sql_literal, timestamp_literal, validate_column
from cb_storage_dagster.storage.times import days_in_range


def delta_predicate(scope: WriteScope, alias: str | None = None) -> str | None:
    """The SQL predicate of a Delta overwrite of exactly ``scope`` (``None``: the whole table).

    ``alias`` qualifies the columns (``target``: the target table of a merge).

    >>> scope = WriteScope.of_slots([PartitionSlot("binance", "BTC", dt.date(2024, 1, 2))])
    >>> delta_predicate(scope)
    "(exchange = 'binance' AND coin = 'BTC' AND month = '2024-01' AND date IN ('2024-01-02'))"
    >>> delta_predicate(WriteScope.of_exchange_days([("binance", dt.date(2024, 1, 2))]))
    "(exchange = 'binance' AND month = '2024-01' AND date IN ('2024-01-02'))"

    Excluded slots (:meth:`WriteScope.excluding`) are cut out, so their stored rows stay:

    >>> day = dt.date(2024, 1, 2)
    >>> print(delta_predicate(WriteScope.of_exchange_days([("binance", day)]).excluding([PartitionSlot("binance", "XX", day)])))
    ((exchange = 'binance' AND month = '2024-01' AND date IN ('2024-01-02'))) AND NOT ((exchange = 'binance' AND coin = 'XX' AND month = '2024-01' AND date IN ('2024-01-02')))
    """
    if scope.is_empty:
        raise InvalidKeyError("An empty write scope has no predicate.")
    q = "" if alias is None else f"{validate_column(alias)}."
    included = None if scope.whole_table else _included_predicate(scope, q)
    if not scope.excluded:
        return included
    excluded = _slots_predicate(scope.excluded, q)
    return f"NOT ({excluded})" if included is None else f"({included}) AND NOT ({excluded})"


def _slots_predicate(slots: Iterable[PartitionSlot], q: str) -> str:
    """``(exchange AND coin AND month AND date IN ...) OR ...`` of exchange/coin/day slots."""
    grouped: dict[tuple[str, str, str], list[dt.date]] = defaultdict(list)
    for slot in slots:
        grouped[(slot.exchange, slot.coin, slot.month)].append(slot.date)
    return " OR ".join(
        f"({q}exchange = {sql_literal(validate_name(exchange, 'exchange'))} AND "
        f"{q}coin = {sql_literal(validate_name(coin, 'coin'))} AND "
        f"{q}{MONTH_COLUMN} = {sql_literal(month)} AND {q}{DATE_COLUMN} IN ({date_list(days)}))"
        for (exchange, coin, month), days in sorted(grouped.items())
    )


def _included_predicate(scope: WriteScope, q: str) -> str:
    clauses: list[str] = [_slots_predicate(scope.slots, q)] if scope.slots else []
    by_month: dict[tuple[str | None, str], list[dt.date]] = defaultdict(list)
    for day in scope.days:
        by_month[(day.exchange, day.month)].append(day.date)
    for (exchange, month), days in sorted(by_month.items(), key=lambda item: (item[0][0] or "", item[0][1])):
        exchange_term = (
            "" if exchange is None else f"{q}exchange = {sql_literal(validate_name(exchange, 'exchange'))} AND "
        )
        clauses.append(
            f"({exchange_term}{q}{MONTH_COLUMN} = {sql_literal(month)} AND {q}{DATE_COLUMN} IN ({date_list(days)}))"
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
        f"timestamp >= {timestamp_literal(start)} AND timestamp < {timestamp_literal(end)}"
    )


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
