"""Data-quality measures of market-data frames, the figures the asset checks publish.

No Dagster here. The row rules are :data:`cb_storage_dagster.domain.rules.CHECKED_RULES`,
the same rule objects a write refuses with, applied to a DataFrame (``*_violation_masks``:
one boolean Series per rule, ``True`` where a row breaks it; ``*_violations``: their counts).
The completeness measures count rows and covered minutes per (exchange, coin, UTC day) slot.

Example:
    >>> import pandas as pd
    >>> trades = pd.DataFrame({
    ...     "exchange": "binance", "coin": "BTC", "trade_id": ["1", "1"], "side": ["buy", "hold"],
    ...     "timestamp": pd.to_datetime(["2024-01-02 00:00", "2024-01-02 00:01"], utc=True),
    ...     "price": [10.0, -1.0], "amount": [1.0, 2.0]})
    >>> {name: n for name, n in trade_violations(trades).items() if n}
    {'non_positive_price': 1, 'unknown_side': 1, 'duplicate_trade_id': 2}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cb_storage_dagster.domain.keys import DataType, PartitionSlot
from cb_storage_dagster.domain.rules import CHECKED_RULES, InsideSlots, OnInterval, Rule

__all__ = [
    "DEFAULT_MIN_MINUTE_COVERAGE",
    "MINUTES_PER_DAY",
    "instrument_day_counts",
    "minute_coverage",
    "ohlcv_violation_masks",
    "ohlcv_violations",
    "order_book_violation_masks",
    "order_book_violations",
    "partitions_below_coverage",
    "partitions_without_rows",
    "rows_per_partition",
    "rule_columns",
    "table_violation_masks",
    "trade_violation_masks",
    "trade_violations",
    "violation_counts",
    "violation_masks",
]

DEFAULT_MIN_MINUTE_COVERAGE = 0.9
"""Share of the 1440 minutes of a day that must have a one-minute candle by default."""

MINUTES_PER_DAY = 1440
"""Minutes of a UTC day: the denominator of minute coverage and of gap counts."""

Key = tuple[str, str, dt.date]
"""(exchange, coin, UTC day)."""


def violation_masks(
    frame: pd.DataFrame,
    data_type: DataType | str,
    slots: Iterable[PartitionSlot] | None = None,
    *,
    interval: str | None = None,
) -> dict[str, pd.Series]:
    """One boolean Series per rule of ``data_type`` (aligned with ``frame``), ``True`` where
    a row breaks it. With ``slots``, every row must lie inside one of those (exchange, coin,
    UTC day) slots (``outside_partitions``); with ``interval`` (a fixed pandas frequency such as
    ``"1min"``), every timestamp must lie on an interval boundary (``not_on_interval_boundary``).
    """
    rules = _rules(data_type, slots, interval)
    selected = frame[_rule_columns(rules)]  # a missing column raises KeyError, naming it
    table = pa.Table.from_pandas(selected, preserve_index=False, nthreads=1) if len(frame) else None
    return {name: pd.Series(mask, index=frame.index, dtype=bool) for name, mask in _masks(table, rules).items()}


def table_violation_masks(
    table: pa.Table | None,
    data_type: DataType | str,
    slots: Iterable[PartitionSlot] | None = None,
    *,
    interval: str | None = None,
) -> dict[str, np.ndarray]:
    """:func:`violation_masks` of an Arrow table, as numpy booleans (``None``: no rows). The
    rules read only their own columns, so the checks of a run's chunks never build a pandas
    frame (5.76 M trades: 1.6 s in Arrow against 4.8 s through pandas)."""
    return _masks(table, _rules(data_type, slots, interval))


def _masks(table: pa.Table | None, rules: list[Rule]) -> dict[str, np.ndarray]:
    if table is None or table.num_rows == 0:
        return {rule.name: np.zeros(0, dtype=bool) for rule in rules}
    columns = _rule_columns(rules)
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise KeyError(f"The rules need column(s) {missing}; the table has {table.column_names}.")
    selected = table.select(columns)
    return {rule.name: _to_numpy(rule.mask(selected)) for rule in rules}


def rule_columns(data_type: DataType | str, slots: Iterable[PartitionSlot] | None = None,
                 *, interval: str | None = None) -> list[str]:
    """The columns the rules of ``data_type`` read (a check reads only these)."""
    return _rule_columns(_rules(data_type, slots, interval))


def _rules(data_type: DataType | str, slots: Iterable[PartitionSlot] | None, interval: str | None) -> list[Rule]:
    rules: list[Rule] = list(CHECKED_RULES[DataType.parse(data_type)])
    if interval is not None:
        rules.append(OnInterval(pd.Timedelta(interval)))
    if slots is not None:
        rules.append(InsideSlots(frozenset(slots)))
    return rules


def _rule_columns(rules: list[Rule]) -> list[str]:
    return list(dict.fromkeys(column for rule in rules for column in rule.columns))


def violation_counts(masks: Mapping[str, pd.Series | np.ndarray]) -> dict[str, int]:
    """The number of rows each mask marks."""
    return {name: int(mask.sum()) for name, mask in masks.items()}


def ohlcv_violation_masks(
    candles: pd.DataFrame, slots: Iterable[PartitionSlot] | None = None, *, interval: str | None = None
) -> dict[str, pd.Series]:
    """The OHLCV rules (see :func:`violation_masks`): no missing values; positive prices;
    ``low <= min(open, close)``; ``max(open, close) <= high`` (together they imply
    ``low <= high``); ``volume >= 0``; one candle per exchange/coin/timestamp."""
    return violation_masks(candles, DataType.OHLCV, slots, interval=interval)


def ohlcv_violations(
    candles: pd.DataFrame, slots: Iterable[PartitionSlot] | None = None, *, interval: str | None = None
) -> dict[str, int]:
    """Number of rows breaking each OHLCV rule (see :func:`ohlcv_violation_masks`).

    >>> import pandas as pd
    >>> ohlcv_violations(pd.DataFrame({
    ...     "exchange": ["x"], "coin": ["Y"], "timestamp": pd.to_datetime(["2024-01-02"], utc=True),
    ...     "open": [1.0], "high": [0.5], "low": [2.0], "close": [1.0], "volume": [-1.0]}))
    ... # doctest: +NORMALIZE_WHITESPACE
    {'missing_values': 0, 'non_positive_price': 0, 'low_above_open_or_close': 1,
     'high_below_open_or_close': 1, 'negative_volume': 1, 'duplicate_timestamp': 0}
    """
    return violation_counts(ohlcv_violation_masks(candles, slots, interval=interval))


def trade_violation_masks(trades: pd.DataFrame, slots: Iterable[PartitionSlot] | None = None) -> dict[str, pd.Series]:
    """The trade rules (see :func:`violation_masks`): no missing values; ``price > 0``;
    ``amount > 0``; ``side`` is ``buy`` or ``sell``; trade ids unique per exchange/coin."""
    return violation_masks(trades, DataType.TRADES, slots)


def trade_violations(trades: pd.DataFrame, slots: Iterable[PartitionSlot] | None = None) -> dict[str, int]:
    """Number of rows breaking each trade rule (see :func:`trade_violation_masks`)."""
    return violation_counts(trade_violation_masks(trades, slots))


def order_book_violation_masks(book: pd.DataFrame, slots: Iterable[PartitionSlot] | None = None) -> dict[str, pd.Series]:
    """The order-book rules (see :func:`violation_masks`): no missing values; ``price > 0``;
    ``amount > 0``; ``side`` is ``bid`` or ``ask``; ``level >= 0``; one row per
    exchange/coin/timestamp/side/level; best bid below best ask in every snapshot (the rows
    of a crossed snapshot are flagged)."""
    return violation_masks(book, DataType.ORDER_BOOK, slots)


def order_book_violations(book: pd.DataFrame, slots: Iterable[PartitionSlot] | None = None) -> dict[str, int]:
    """Number of rows breaking each order-book rule (see :func:`order_book_violation_masks`)."""
    return violation_counts(order_book_violation_masks(book, slots))


def rows_per_partition(frame: pd.DataFrame | pa.Table, slots: Iterable[PartitionSlot]) -> dict[PartitionSlot, int]:
    """Rows of ``frame`` in each (exchange, coin, UTC day) slot; slots without rows count 0."""
    rows, _ = instrument_day_counts(frame, gaps=False)
    return {slot: int(rows.get((slot.exchange, slot.coin, slot.date), 0)) for slot in sorted(set(slots))}


def partitions_without_rows(frame: pd.DataFrame, slots: Iterable[PartitionSlot]) -> list[PartitionSlot]:
    """The slots that have no row in ``frame``, sorted."""
    return [slot for slot, rows in rows_per_partition(frame, slots).items() if rows == 0]


def minute_coverage(candles: pd.DataFrame | pa.Table, slots: Iterable[PartitionSlot]) -> dict[PartitionSlot, float]:
    """Share of the 1440 minutes of each slot's UTC day that has at least one candle.

    >>> import datetime as dt, pandas as pd
    >>> slot = PartitionSlot("binance", "BTC", dt.date(2024, 1, 2))
    >>> candles = pd.DataFrame({"exchange": "binance", "coin": "BTC",
    ...     "timestamp": pd.date_range("2024-01-02", periods=720, freq="1min", tz="UTC")})
    >>> minute_coverage(candles, [slot])[slot]
    0.5
    """
    _, minutes = instrument_day_counts(candles, gaps=True)
    return {
        slot: int(minutes.get((slot.exchange, slot.coin, slot.date), 0)) / MINUTES_PER_DAY
        for slot in sorted(set(slots))
    }


def instrument_day_counts(
    frame: pd.DataFrame | pa.Table, *, gaps: bool
) -> tuple[dict[Key, int], dict[Key, int]]:
    """Rows and (with ``gaps``) distinct minutes per (exchange, coin, UTC day) of ``frame``.

    Counts of chunks holding different instrument-days add up to the counts of the run.
    Grouped in Arrow: a pandas ``.dt.date`` of millions of rows costs seconds."""
    if len(frame) == 0:
        return {}, {}
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(
        frame[["exchange", "coin", "timestamp"]], preserve_index=False)
    stamps = table.column("timestamp")
    if not pa.types.is_timestamp(stamps.type):
        stamps = pa.chunked_array([pa.array(pd.to_datetime(frame["timestamp"], utc=True))])
    naive = pc.cast(stamps, pa.timestamp(stamps.type.unit)) if stamps.type.tz else stamps  # UTC wall clock
    keys = pa.table({"exchange": table.column("exchange"), "coin": table.column("coin"),
                     "day": pc.cast(naive, pa.date32()), "minute": pc.floor_temporal(naive, unit="minute")})
    aggregations = [("minute", "count"), *([("minute", "count_distinct")] if gaps else [])]
    grouped = keys.group_by(["exchange", "coin", "day"]).aggregate(aggregations).to_pylist()
    rows = {(g["exchange"], g["coin"], g["day"]): g["minute_count"] for g in grouped}
    minutes = {(g["exchange"], g["coin"], g["day"]): g["minute_count_distinct"] for g in grouped} if gaps else {}
    return rows, minutes


def partitions_below_coverage(
    candles: pd.DataFrame,
    slots: Iterable[PartitionSlot],
    min_coverage: float = DEFAULT_MIN_MINUTE_COVERAGE,
) -> dict[PartitionSlot, float]:
    """The slots whose :func:`minute_coverage` is below ``min_coverage``, with their coverage."""
    return {slot: share for slot, share in minute_coverage(candles, slots).items() if share < min_coverage}


def _to_numpy(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return mask.to_numpy() if isinstance(mask, pa.ChunkedArray) else mask.to_numpy(zero_copy_only=False)
