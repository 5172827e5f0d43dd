"""The data rules of market data, defined once: refused on write, counted by the asset checks.

Each rule is a named object over a pyarrow Table: :meth:`Rule.mask` is ``True`` on every row
that breaks it (nulls never hide a row: a rule says what a missing value means for it), and
:meth:`Rule.count` counts those rows. :data:`CHECKED_RULES` lists, per data type, the rules
the asset checks count, under the names their results publish. :data:`REFUSED_ON_WRITE`
lists the rules that every stored row obeys: :func:`cb_storage_dagster.domain.schemas.normalize`
calls their :meth:`WriteRule.refuse`, which raises :class:`InvalidDataError` with a message
that names the column and the count. Both lists hold the same rule objects, so a rule cannot
mean one thing on write and another in a check.

Example:
    >>> import pyarrow as pa
    >>> book = pa.table({"side": ["bid", "ask", "BID"], "price": [1.0, 0.0, 2.0]})
    >>> AllowedValues("unknown_side", "side", frozenset({"bid", "ask"})).mask(book).to_pylist()
    [False, False, True]
    >>> Bound("non_positive_price", ("price",), strictly_positive=True).count(book)
    1
    >>> all(rule in CHECKED_RULES[kind] for kind, rules in REFUSED_ON_WRITE.items() for rule in rules)
    True
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from cb_storage_dagster.domain.arrow_rows import (
    all_true,
    any_true,
    no_rows,
    repeated_rows,
    rows_of_groups,
    rows_sharing_a_key,
    strictly_increasing,
    true_where,
)
from cb_storage_dagster.domain.errors import InvalidDataError
from cb_storage_dagster.domain.keys import DataType, PartitionSlot

_INSTRUMENT_TIME = ("exchange", "coin", "timestamp")


class Rule:
    """A named row rule: ``mask`` is ``True`` where a row breaks it."""

    name: str
    columns: tuple[str, ...]
    """The columns the rule reads."""

    def mask(self, table: pa.Table) -> pa.Array:
        raise NotImplementedError

    def count(self, table: pa.Table) -> int:
        """The number of rows of ``table`` that break the rule."""
        return int(pc.sum(self.mask(table)).as_py() or 0) if table.num_rows else 0


class WriteRule(Rule):
    """A rule every stored row obeys; :meth:`refuse` raises before anything is written."""

    def refuse(self, table: pa.Table, data_type: DataType, *, single_instrument: bool = False) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class MissingValues(Rule):
    """A null (or NaN) in any of ``columns``."""

    name: str
    columns: tuple[str, ...]

    def mask(self, table: pa.Table) -> pa.Array:
        return any_true(pc.is_null(table.column(c), nan_is_null=True) for c in self.columns)


@dataclass(frozen=True)
class Bound(WriteRule):
    """Values of ``columns`` above 0 (``strictly_positive``) or at least 0. A missing value is
    not counted here (see :class:`MissingValues`) but refused on write, as NaN and infinity are."""

    name: str
    columns: tuple[str, ...]
    strictly_positive: bool

    def _breaks(self, column: pa.ChunkedArray) -> pa.ChunkedArray:
        return pc.less_equal(column, 0) if self.strictly_positive else pc.less(column, 0)

    def mask(self, table: pa.Table) -> pa.Array:
        return any_true(self._breaks(table.column(c)) for c in self.columns)

    def refuse(self, table: pa.Table, data_type: DataType, *, single_instrument: bool = False) -> None:
        for name in self.columns:
            self._refuse_column(table.column(name), name)

    def _refuse_column(self, column: pa.ChunkedArray, name: str) -> None:
        if column.null_count:
            raise InvalidDataError(
                f"Column {name!r} has {column.null_count} missing (null or NaN) values; drop or fill them."
            )
        # Valid columns (nearly all) pass two cheap tests: every value compares above the bound
        # (NaN compares false) and the sum is finite (an infinity makes it infinite). Only a
        # column that fails them is counted value by value, for the message. (``pc.min`` would
        # be 5x slower than the comparison: it is NaN-aware.)
        above = pc.greater(column, 0) if self.strictly_positive else pc.greater_equal(column, 0)
        floating = pa.types.is_floating(column.type)
        if pc.all(above).as_py() and (not floating or math.isfinite(pc.sum(column).as_py())):
            return
        if floating:
            bad_float = pc.sum(pc.invert(pc.is_finite(column))).as_py() or 0
            if bad_float:
                raise InvalidDataError(f"Column {name!r} has {bad_float} NaN or infinite values.")
        count = pc.sum(self._breaks(column)).as_py() or 0
        if count:
            bound = "> 0" if self.strictly_positive else ">= 0"
            raise InvalidDataError(f"Column {name!r} has {count} values that are not {bound}.")


@dataclass(frozen=True)
class AllowedValues(WriteRule):
    """``column`` holds one of ``allowed`` (a missing value is not one of them)."""

    name: str
    column: str
    allowed: frozenset[str]

    @property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.column,)

    def mask(self, table: pa.Table) -> pa.Array:
        known = pc.is_in(table.column(self.column), value_set=pa.array(sorted(self.allowed)))
        return pc.invert(pc.fill_null(known, False))

    def refuse(self, table: pa.Table, data_type: DataType, *, single_instrument: bool = False) -> None:
        values = set(pc.unique(table.column(self.column)).to_pylist())
        unknown = sorted(str(v) for v in values - self.allowed)
        if unknown:
            raise InvalidDataError(
                f"Column {self.column!r} has values {unknown}; allowed: {sorted(self.allowed)}."
            )


@dataclass(frozen=True)
class UniqueKey(WriteRule):
    """No two rows share ``columns``; the mask marks every row of a repeated key."""

    name: str
    columns: tuple[str, ...]

    def mask(self, table: pa.Table) -> pa.Array:
        key = list(self.columns)
        if strictly_increasing([table.column(k) for k in key]):
            return no_rows(table.num_rows)
        return rows_sharing_a_key(table, key)

    def refuse(self, table: pa.Table, data_type: DataType, *, single_instrument: bool = False) -> None:
        # One instrument (the usual write): exchange and coin are constant, so the key reduces
        # to the timestamp (and side/level).
        key = [k for k in self.columns if not (single_instrument and k in ("exchange", "coin"))]
        if strictly_increasing([table.column(k) for k in key]):
            return
        repeats = repeated_rows(table, key)
        if repeats:
            raise InvalidDataError(
                f"{repeats} duplicate rows on ({', '.join(self.columns)}) in {data_type.value} "
                "data; each candle/level may appear once per timestamp."
            )


@dataclass(frozen=True)
class CandleBody(Rule):
    """``low <= min(open, close)`` (``bound="low"``) or ``max(open, close) <= high``."""

    name: str
    bound: str

    @property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.bound, "open", "close")

    def mask(self, table: pa.Table) -> pa.Array:
        open_, close = table.column("open"), table.column("close")
        if self.bound == "low":
            return true_where(pc.greater(table.column("low"), pc.min_element_wise(open_, close)))
        return true_where(pc.less(table.column("high"), pc.max_element_wise(open_, close)))


@dataclass(frozen=True)
class OnInterval(Rule):
    """``timestamp`` on a boundary of ``interval`` counted from the epoch (a missing one is not)."""

    interval: dt.timedelta
    name: str = "not_on_interval_boundary"
    columns: tuple[str, ...] = ("timestamp",)

    def mask(self, table: pa.Table) -> pa.Array:
        column = table.column("timestamp")
        per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[column.type.unit]
        width = self.interval // dt.timedelta(microseconds=1) * per_second // 1_000_000
        ticks = pc.cast(column, pa.int64())
        # Integer division truncates; a multiple of the width is a multiple either way.
        return pc.fill_null(pc.not_equal(pc.multiply(pc.divide(ticks, width), width), ticks), True)


@dataclass(frozen=True)
class InsideSlots(Rule):
    """The row's (exchange, coin, UTC day of ``timestamp``) is one of ``slots``."""

    slots: frozenset[PartitionSlot]
    name: str = "outside_partitions"
    columns: tuple[str, ...] = _INSTRUMENT_TIME

    def mask(self, table: pa.Table) -> pa.Array:
        stamps = table.column("timestamp")
        naive = pc.cast(stamps, pa.timestamp(stamps.type.unit))  # the UTC instants' numbers
        days = pc.cast(pc.cast(naive, pa.date32()), pa.string())
        rows = pc.binary_join_element_wise(
            pc.cast(table.column("exchange"), pa.string()), pc.cast(table.column("coin"), pa.string()), days, "/"
        )
        inside = pc.is_in(rows, value_set=pa.array(sorted(str(s) for s in self.slots), pa.string()))
        return pc.invert(pc.fill_null(inside, False))


@dataclass(frozen=True)
class CrossedBook(Rule):
    """In every snapshot (exchange, coin, timestamp) the best bid is below the best ask; the
    rows of a crossed snapshot are marked."""

    name: str = "crossed_book"
    columns: tuple[str, ...] = (*_INSTRUMENT_TIME, "side", "price")

    def mask(self, table: pa.Table) -> pa.Array:
        side, price = table.column("side"), table.column("price")
        null = pa.scalar(None, price.type)
        sides = table.select(list(_INSTRUMENT_TIME)).append_column(
            "bid", pc.if_else(pc.equal(side, "bid"), price, null)
        ).append_column("ask", pc.if_else(pc.equal(side, "ask"), price, null))

        def crossed(groups: pa.Table) -> pa.Array:
            keyed = all_true(pc.is_valid(groups[k]) for k in _INSTRUMENT_TIME)  # like pandas, no null snapshot
            return pc.and_(keyed, true_where(pc.greater_equal(groups["bid_max"], groups["ask_min"])))

        return rows_of_groups(sides, list(_INSTRUMENT_TIME), [("bid", "max"), ("ask", "min")], crossed)


_PRICE = Bound("non_positive_price", ("price",), strictly_positive=True)
_AMOUNT = Bound("non_positive_amount", ("amount",), strictly_positive=True)
_CANDLE_PRICES = Bound("non_positive_price", ("open", "high", "low", "close"), strictly_positive=True)
_VOLUME = Bound("negative_volume", ("volume",), strictly_positive=False)
_LEVEL = Bound("negative_level", ("level",), strictly_positive=False)
_TRADE_SIDE = AllowedValues("unknown_side", "side", frozenset({"buy", "sell"}))
_BOOK_SIDE = AllowedValues("unknown_side", "side", frozenset({"bid", "ask"}))
_ONE_CANDLE = UniqueKey("duplicate_timestamp", _INSTRUMENT_TIME)
_ONE_LEVEL = UniqueKey("duplicate_level", (*_INSTRUMENT_TIME, "side", "level"))

CHECKED_RULES: Mapping[DataType, tuple[Rule, ...]] = {
    DataType.OHLCV: (
        MissingValues("missing_values", (*_INSTRUMENT_TIME, "open", "high", "low", "close", "volume")),
        _CANDLE_PRICES,
        CandleBody("low_above_open_or_close", "low"),
        CandleBody("high_below_open_or_close", "high"),
        _VOLUME,
        _ONE_CANDLE,
    ),
    DataType.TRADES: (
        MissingValues("missing_values", (*_INSTRUMENT_TIME, "trade_id", "price", "amount", "side")),
        _PRICE,
        _AMOUNT,
        _TRADE_SIDE,
        UniqueKey("duplicate_trade_id", ("exchange", "coin", "trade_id")),
    ),
    DataType.ORDER_BOOK: (
        MissingValues("missing_values", (*_INSTRUMENT_TIME, "side", "level", "price", "amount")),
        _PRICE,
        _AMOUNT,
        _BOOK_SIDE,
        _LEVEL,
        _ONE_LEVEL,
        CrossedBook(),
    ),
}
"""The rules the asset checks count, per data type, in the order their results list them."""

REFUSED_ON_WRITE: Mapping[DataType, tuple[WriteRule, ...]] = {
    DataType.OHLCV: (_CANDLE_PRICES, _VOLUME, _ONE_CANDLE),
    DataType.TRADES: (_PRICE, _AMOUNT, _TRADE_SIDE),
    DataType.ORDER_BOOK: (_PRICE, _AMOUNT, _LEVEL, _BOOK_SIDE, _ONE_LEVEL),
}
"""The rules a write refuses, per data type, in the order it tries them: bounds, allowed
values, unique keys (trade ids are only counted: a source may re-send a trade)."""
