"""The one place that turns keys, scopes and filters into predicates.

Delta overwrites use SQL predicate strings (delta-rs/DataFusion); reads use pyarrow
expressions. Every value that reaches a SQL string is either a validated name
(:func:`~cb_storage_dagster.domain.keys.validate_name`), an ISO date, or a literal
escaped by :func:`sql_literal`; column names are checked against :data:`_COLUMN_PATTERN`
and double-quoted.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from cb_storage_dagster.domain.errors import InvalidKeyError, TimeRangeError
from cb_storage_dagster.domain.keys import PartitionSlot, validate_name
from cb_storage_dagster.domain.schemas import DATE_COLUMN, MONTH_COLUMN

_COLUMN_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_OPS = {"=", "==", "!=", "<", "<=", ">", ">=", "in", "not in"}


@dataclass(frozen=True)
class DaySlot:
    """All instruments of one UTC day, of one exchange or (``exchange=None``) of every exchange.

    Whole days serve daily-only Dagster assets (``exchange=None``) and the exchange partition
    profile, where one Dagster partition is an exchange-day holding every instrument of it.

    >>> DaySlot(dt.date(2024, 1, 2), "binance").describe()
    'binance/*/2024-01-02'
    """

    date: dt.date
    exchange: str | None = None

    @property
    def month(self) -> str:
        return self.date.strftime("%Y-%m")

    def describe(self) -> str:
        return self.date.isoformat() if self.exchange is None else f"{self.exchange}/*/{self.date.isoformat()}"


@dataclass(frozen=True)
class WriteScope:
    """The exact set of rows a write replaces (and that the data must fall into).

    A union of exchange/coin/day :class:`PartitionSlot` s, whole days (:class:`DaySlot`:
    every instrument of the day, or of one exchange's day) and whole instruments (every day),
    or the whole table.

    >>> scope = WriteScope.of_slots([PartitionSlot("binance", "BTC", dt.date(2024, 1, 2))])
    >>> scope.delta_predicate()
    "(exchange = 'binance' AND coin = 'BTC' AND month = '2024-01' AND date IN ('2024-01-02'))"
    """

    slots: frozenset[PartitionSlot] = frozenset()
    days: frozenset[DaySlot] = frozenset()
    instruments: frozenset[tuple[str, str]] = frozenset()
    whole_table: bool = False

    @classmethod
    def of_slots(cls, slots: Iterable[PartitionSlot]) -> WriteScope:
        return cls(slots=frozenset(slots))

    @classmethod
    def of_days(cls, days: Iterable[dt.date]) -> WriteScope:
        return cls(days=frozenset(DaySlot(d) for d in days))

    @classmethod
    def of_exchange_days(cls, exchange_days: Iterable[tuple[str, dt.date]]) -> WriteScope:
        """Every instrument of each ``(exchange, day)``: the exchange partition profile's unit.

        >>> WriteScope.of_exchange_days([("binance", dt.date(2024, 1, 2))]).delta_predicate()
        "(exchange = 'binance' AND month = '2024-01' AND date IN ('2024-01-02'))"
        """
        return cls(days=frozenset(DaySlot(d, validate_name(e, "exchange")) for e, d in exchange_days))

    @classmethod
    def of_instruments(cls, instruments: Iterable[tuple[str, str]]) -> WriteScope:
        return cls(instruments=frozenset(
            (validate_name(e, "exchange"), validate_name(c, "coin")) for e, c in instruments))

    @classmethod
    def everything(cls) -> WriteScope:
        return cls(whole_table=True)

    @property
    def is_empty(self) -> bool:
        return not (self.slots or self.days or self.instruments or self.whole_table)

    def describe(self) -> list[str]:
        if self.whole_table:
            return ["<whole table>"]
        return (
            sorted(str(s) for s in self.slots)
            + sorted(d.describe() for d in self.days)
            + sorted(f"{e}/{c}" for e, c in self.instruments)
        )

    def delta_predicate(self, alias: str | None = None) -> str | None:
        """SQL predicate matching exactly the scope (``None`` for the whole table).

        ``alias`` qualifies the columns (``target``: the target table of a merge)."""
        if self.whole_table:
            return None
        if self.is_empty:
            raise InvalidKeyError("An empty write scope has no predicate.")
        q = "" if alias is None else f"{validate_column(alias)}."
        clauses: list[str] = []
        grouped: dict[tuple[str, str, str], list[dt.date]] = defaultdict(list)
        for slot in self.slots:
            grouped[(slot.exchange, slot.coin, slot.month)].append(slot.date)
        for (exchange, coin, month), days in sorted(grouped.items()):
            clauses.append(
                f"({q}exchange = {sql_literal(validate_name(exchange, 'exchange'))} AND "
                f"{q}coin = {sql_literal(validate_name(coin, 'coin'))} AND "
                f"{q}{MONTH_COLUMN} = {sql_literal(month)} AND {q}{DATE_COLUMN} IN ({_date_list(days)}))"
            )
        by_month: dict[tuple[str | None, str], list[dt.date]] = defaultdict(list)
        for day in self.days:
            by_month[(day.exchange, day.month)].append(day.date)
        for (exchange, month), days in sorted(by_month.items(), key=lambda item: (item[0][0] or "", item[0][1])):
            exchange_term = (
                "" if exchange is None else f"{q}exchange = {sql_literal(validate_name(exchange, 'exchange'))} AND "
            )
            clauses.append(
                f"({exchange_term}{q}{MONTH_COLUMN} = {sql_literal(month)} AND {q}{DATE_COLUMN} IN ({_date_list(days)}))"
            )
        for exchange, coin in sorted(self.instruments):
            clauses.append(f"({q}exchange = {sql_literal(exchange)} AND {q}coin = {sql_literal(coin)})")
        return " OR ".join(clauses)

    def row_mask(self, table: pa.Table) -> pa.ChunkedArray | pa.Array:
        """Boolean mask of the rows of a normalized table that fall inside the scope."""
        if self.whole_table:
            return pa.repeat(pa.scalar(True), table.num_rows)
        mask = pa.repeat(pa.scalar(False), table.num_rows)
        if self.slots:
            mask = pc.or_(mask, _in_slots(table, self.slots))
        any_exchange = sorted(d.date for d in self.days if d.exchange is None)
        if any_exchange:
            wanted_days = pa.array(any_exchange, pa.date32())
            mask = pc.or_(mask, pc.is_in(table.column(DATE_COLUMN), value_set=wanted_days))
        by_exchange: dict[str, list[dt.date]] = defaultdict(list)
        for d in self.days:
            if d.exchange is not None:
                by_exchange[d.exchange].append(d.date)
        # Per exchange, no per-row string keys: an exchange-day of 2,000 instruments is ~3 M rows.
        for exchange, days in sorted(by_exchange.items()):
            term = pc.and_(
                pc.equal(table.column("exchange"), exchange),
                pc.is_in(table.column(DATE_COLUMN), value_set=pa.array(sorted(days), pa.date32())),
            )
            mask = pc.or_(mask, term)
        if self.instruments:
            pairs = pc.binary_join_element_wise(table.column("exchange"), table.column("coin"), "|")
            wanted_pairs = pa.array(sorted(f"{e}|{c}" for e, c in self.instruments))
            mask = pc.or_(mask, pc.is_in(pairs, value_set=wanted_pairs))
        return mask

    def covers(self, slot: PartitionSlot) -> bool:
        """Whether a stored exchange/coin/day falls inside the scope."""
        return (
            self.whole_table
            or slot in self.slots
            or DaySlot(slot.date) in self.days
            or DaySlot(slot.date, slot.exchange) in self.days
            or (slot.exchange, slot.coin) in self.instruments
        )


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
    scope_predicate = scope.delta_predicate(MERGE_TARGET)
    if scope_predicate is not None:
        terms.append(f"({scope_predicate})")
    changed = [
        # Parenthesized: DataFusion's parser binds ``OR`` tighter than ``IS DISTINCT FROM``.
        f"({col(MERGE_TARGET, c)} IS DISTINCT FROM {col(MERGE_SOURCE, c)})" for c in value_columns
    ]
    return " AND ".join(terms), (" OR ".join(changed) or None)


def _in_slots(table: pa.Table, slots: frozenset[PartitionSlot]) -> pa.ChunkedArray:
    """Rows whose exchange/coin/date is one of ``slots``, by one ``pc.is_in`` over compact
    integer keys: exchange and coin become their position among the slots' names, packed
    with the day number into an int64 (joining the three columns into one string per row
    cost ~5x as much at 43,200 rows). A name outside the slots gives a null key: not in."""
    exchanges = {e: i for i, e in enumerate(sorted({s.exchange for s in slots}))}
    coins = {c: i for i, c in enumerate(sorted({s.coin for s in slots}))}
    width = len(coins)

    def positions(column: str, names: dict[str, int]) -> pa.ChunkedArray:
        found = pc.index_in(table.column(column), value_set=pa.array(list(names), pa.string()))
        return pc.cast(found, pa.int64())

    instrument = pc.add(pc.multiply(positions("exchange", exchanges), width), positions("coin", coins))
    days = pc.cast(pc.cast(table.column(DATE_COLUMN), pa.int32()), pa.int64())
    keys = pc.add(pc.multiply(instrument, 1 << 32), days)  # a day number fits in 32 bits
    epoch = dt.date(1970, 1, 1)
    wanted = pa.array(sorted(
        (exchanges[s.exchange] * width + coins[s.coin]) * (1 << 32) + (s.date - epoch).days
        for s in slots
    ), pa.int64())
    return pc.fill_null(pc.is_in(keys, value_set=wanted), False)


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
        return f"'{_utc(value, 'value').isoformat()}'"
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'"
    if isinstance(value, str):
        if any(ord(c) < 32 for c in value):
            raise InvalidKeyError("Control characters are not allowed in predicate values.")
        return "'" + value.replace("'", "''") + "'"
    raise InvalidKeyError(f"Unsupported predicate value type {type(value).__name__}.")


def _utc(value: dt.datetime, what: str) -> dt.datetime:
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise TimeRangeError(
            f"{what} {value!r} has no time zone; pass an aware datetime, e.g. "
            "datetime(2024, 1, 2, tzinfo=timezone.utc)."
        )
    return value.astimezone(dt.timezone.utc)


def utc_instant(value: Any, what: str) -> dt.datetime:
    """Accept aware datetimes, pandas Timestamps and ISO strings with an offset; return UTC."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise TimeRangeError(f"{what} {value!r} is not an ISO timestamp.") from None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return _utc(value, what)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    raise TimeRangeError(f"{what} must be a timezone-aware datetime, got {type(value).__name__}.")


def days_in_range(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    """UTC days touched by ``[start, end)``."""
    if end <= start:
        return []
    last = (end - dt.timedelta(microseconds=1)).date()
    day, out = start.date(), []
    while day <= last:
        out.append(day)
        day += dt.timedelta(days=1)
    return out


def months_of(days: Iterable[dt.date]) -> list[str]:
    return sorted({d.strftime("%Y-%m") for d in days})


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
        return pa.scalar(_utc(value, "filter value"), pa.timestamp("us", tz="UTC"))
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

    >>> utc = dt.timezone.utc
    >>> print(time_range_sql(dt.datetime(2024, 1, 2, tzinfo=utc), dt.datetime(2024, 1, 3, tzinfo=utc)))
    "timestamp" >= '2024-01-02T00:00:00+00:00' AND "timestamp" < '2024-01-03T00:00:00+00:00'
    """
    return f'"timestamp" >= {sql_literal(start)} AND "timestamp" < {sql_literal(end)}'


def scope_read_sql(scope: WriteScope | None, columns: Collection[str]) -> str | None:
    """The rows of ``scope`` as a SQL predicate over a table with ``columns``, for readers
    that are not this product's own (delta-rs' DataFusion reader of any Delta table).

    Unlike :meth:`WriteScope.delta_predicate` it assumes only ``exchange``, ``coin`` and
    ``timestamp``: days become ``date IN (...)`` when ``columns`` names a ``date`` column
    (the caller passes it only if it holds UTC days as ``date32``; partition pruning when it
    is a partition column), else UTC timestamp ranges. A foreign table's ``month`` may mean
    anything (``1``..``12``, ``'2024-01'``), so it is never used. ``None``: no restriction.

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
