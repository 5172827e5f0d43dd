"""Data-quality checks of the market-data assets.

The rules are plain functions over DataFrames (``*_violation_masks``, ``*_violations``,
:func:`rows_per_partition`, :func:`minute_coverage`), usable and testable without Dagster.
The ``@asset_check`` definitions below are thin wrappers: each takes its asset as input (the
``market_data_io_manager`` loads exactly the partitions of the run), applies the rules to
the run's partitions and reports violation counts and the first offending rows.

The checks are built per partition profile (:func:`build_market_data_checks`) and
partitioned like their assets, so that a run over a batch of days loads
only that batch and the UI shows a result per partition. (Partitioned asset checks are a
*preview* feature of Dagster 1.13 and print a ``PreviewWarning``; an unpartitioned check
would make the IO manager load every partition of the asset.)

Blocking checks stop downstream assets of the same run: bad trades never become candles,
and bad one-minute candles never become daily candles.

Example:
    >>> import pandas as pd
    >>> candles = pd.DataFrame({
    ...     "exchange": "binance", "coin": "BTC",
    ...     "timestamp": pd.to_datetime(["2024-01-02 00:00", "2024-01-02 00:01"], utc=True),
    ...     "open": [10.0, 11.0], "high": [12.0, 10.5], "low": [9.0, 10.0],
    ...     "close": [11.0, 10.2], "volume": [3.0, 4.0],
    ... })
    >>> {name: n for name, n in ohlcv_violations(candles).items() if n}
    {'high_below_open_or_close': 1}
"""

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

import dagster as dg
import pandas as pd

from cb_storage_dagster.domain.keys import PartitionSlot
from cb_storage_dagster.orchestration.assets import INSTRUMENT_PROFILE_ASSETS, MarketDataAssets

__all__ = [
    "ASSET_CHECKS",
    "INSTRUMENT_PROFILE_CHECKS",
    "MarketDataChecks",
    "build_market_data_checks",
    "DEFAULT_MIN_MINUTE_COVERAGE",
    "MinuteCoverageConfig",
    "minute_coverage",
    "ohlcv_1d_every_partition_has_rows",
    "ohlcv_1d_invariants",
    "ohlcv_1m_invariants",
    "ohlcv_1m_minute_coverage",
    "ohlcv_violation_masks",
    "ohlcv_violations",
    "order_book_is_valid",
    "order_book_violation_masks",
    "order_book_violations",
    "partitions_below_coverage",
    "partitions_without_rows",
    "rows_per_partition",
    "trade_violation_masks",
    "trade_violations",
    "trades_are_valid",
    "trades_every_partition_has_rows",
]

DEFAULT_MIN_MINUTE_COVERAGE = 0.9
"""Share of the 1440 minutes of a day that must have a one-minute candle by default."""

_MINUTES_PER_DAY = 1440
_SAMPLE_ROWS = 5
_INSTRUMENT_TIME = ["exchange", "coin", "timestamp"]
_PRICES = ["open", "high", "low", "close"]


# -- rules: plain pandas ---------------------------------------------------------------


def ohlcv_violation_masks(
    candles: pd.DataFrame,
    slots: Iterable[PartitionSlot] | None = None,
    *,
    interval: str | None = None,
) -> dict[str, pd.Series]:
    """One boolean mask per OHLCV rule, ``True`` where a row breaks it.

    Rules: no missing values; positive prices; ``low <= min(open, close)``;
    ``max(open, close) <= high`` (together they imply ``low <= high``); ``volume >= 0``;
    one candle per exchange/coin/timestamp; with ``slots``, every row inside one of the
    (exchange, coin, UTC day) slots; with ``interval`` (e.g. ``"1min"``), timestamps on
    interval boundaries.
    """
    body_low = candles[["open", "close"]].min(axis=1)
    body_high = candles[["open", "close"]].max(axis=1)
    masks = {
        "missing_values": candles[[*_INSTRUMENT_TIME, *_PRICES, "volume"]].isna().any(axis=1),
        "non_positive_price": (candles[_PRICES] <= 0).any(axis=1),
        "low_above_open_or_close": candles["low"] > body_low,
        "high_below_open_or_close": candles["high"] < body_high,
        "negative_volume": candles["volume"] < 0,
        "duplicate_timestamp": candles.duplicated(_INSTRUMENT_TIME, keep=False),
    }
    if interval is not None:
        timestamps = pd.to_datetime(candles["timestamp"], utc=True)
        masks["not_on_interval_boundary"] = timestamps != timestamps.dt.floor(interval)
    if slots is not None:
        masks["outside_partitions"] = _outside_slots(candles, slots)
    return masks


def ohlcv_violations(
    candles: pd.DataFrame,
    slots: Iterable[PartitionSlot] | None = None,
    *,
    interval: str | None = None,
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
    return _counts(ohlcv_violation_masks(candles, slots, interval=interval))


def trade_violation_masks(
    trades: pd.DataFrame, slots: Iterable[PartitionSlot] | None = None
) -> dict[str, pd.Series]:
    """One boolean mask per trade rule, ``True`` where a row breaks it.

    Rules: no missing values; ``price > 0``; ``amount > 0``; ``side`` is ``buy`` or
    ``sell``; trade ids unique per exchange/coin; with ``slots``, every row inside one of
    the (exchange, coin, UTC day) slots.
    """
    masks = {
        "missing_values": trades[
            [*_INSTRUMENT_TIME, "trade_id", "price", "amount", "side"]
        ].isna().any(axis=1),
        "non_positive_price": ~(trades["price"] > 0) & trades["price"].notna(),
        "non_positive_amount": ~(trades["amount"] > 0) & trades["amount"].notna(),
        "unknown_side": ~trades["side"].isin(["buy", "sell"]),
        "duplicate_trade_id": trades.duplicated(["exchange", "coin", "trade_id"], keep=False),
    }
    if slots is not None:
        masks["outside_partitions"] = _outside_slots(trades, slots)
    return masks


def trade_violations(
    trades: pd.DataFrame, slots: Iterable[PartitionSlot] | None = None
) -> dict[str, int]:
    """Number of rows breaking each trade rule (see :func:`trade_violation_masks`)."""
    return _counts(trade_violation_masks(trades, slots))


def order_book_violation_masks(
    book: pd.DataFrame, slots: Iterable[PartitionSlot] | None = None
) -> dict[str, pd.Series]:
    """One boolean mask per order-book rule, ``True`` where a row breaks it.

    Rules: no missing values; ``price > 0``; ``amount > 0``; ``side`` is ``bid`` or
    ``ask``; ``level >= 0``; one row per exchange/coin/timestamp/side/level; best bid below
    best ask in every snapshot (the rows of a crossed snapshot are flagged); with ``slots``,
    every row inside one of the slots.
    """
    snapshot = [book[name] for name in _INSTRUMENT_TIME]
    best_bid = book["price"].where(book["side"] == "bid").groupby(snapshot).transform("max")
    best_ask = book["price"].where(book["side"] == "ask").groupby(snapshot).transform("min")
    masks = {
        "missing_values": book[[*_INSTRUMENT_TIME, "side", "level", "price", "amount"]]
        .isna()
        .any(axis=1),
        "non_positive_price": ~(book["price"] > 0) & book["price"].notna(),
        "non_positive_amount": ~(book["amount"] > 0) & book["amount"].notna(),
        "unknown_side": ~book["side"].isin(["bid", "ask"]),
        "negative_level": book["level"] < 0,
        "duplicate_level": book.duplicated([*_INSTRUMENT_TIME, "side", "level"], keep=False),
        "crossed_book": best_bid >= best_ask,
    }
    if slots is not None:
        masks["outside_partitions"] = _outside_slots(book, slots)
    return masks


def order_book_violations(
    book: pd.DataFrame, slots: Iterable[PartitionSlot] | None = None
) -> dict[str, int]:
    """Number of rows breaking each order-book rule (see :func:`order_book_violation_masks`)."""
    return _counts(order_book_violation_masks(book, slots))


def rows_per_partition(
    frame: pd.DataFrame, slots: Iterable[PartitionSlot]
) -> dict[PartitionSlot, int]:
    """Rows of ``frame`` in each (exchange, coin, UTC day) slot; slots without rows count 0."""
    wanted = sorted(set(slots))
    if frame.empty:
        return dict.fromkeys(wanted, 0)
    days = pd.to_datetime(frame["timestamp"], utc=True).dt.floor("D")
    counts = frame.groupby([frame["exchange"], frame["coin"], days]).size()
    return {
        slot: int(counts.get((slot.exchange, slot.coin, _midnight(slot.date)), 0))
        for slot in wanted
    }


def partitions_without_rows(
    frame: pd.DataFrame, slots: Iterable[PartitionSlot]
) -> list[PartitionSlot]:
    """The slots that have no row in ``frame``, sorted."""
    return [slot for slot, rows in rows_per_partition(frame, slots).items() if rows == 0]


def minute_coverage(
    candles: pd.DataFrame, slots: Iterable[PartitionSlot]
) -> dict[PartitionSlot, float]:
    """Share of the 1440 minutes of each slot's UTC day that has at least one candle.

    >>> import datetime as dt, pandas as pd
    >>> slot = PartitionSlot("binance", "BTC", dt.date(2024, 1, 2))
    >>> candles = pd.DataFrame({"exchange": "binance", "coin": "BTC",
    ...     "timestamp": pd.date_range("2024-01-02", periods=720, freq="1min", tz="UTC")})
    >>> minute_coverage(candles, [slot])[slot]
    0.5
    """
    wanted = sorted(set(slots))
    if candles.empty:
        return dict.fromkeys(wanted, 0.0)
    minutes = pd.to_datetime(candles["timestamp"], utc=True).dt.floor("min")
    covered = minutes.groupby(
        [candles["exchange"], candles["coin"], minutes.dt.floor("D")]
    ).nunique()
    return {
        slot: int(covered.get((slot.exchange, slot.coin, _midnight(slot.date)), 0))
        / _MINUTES_PER_DAY
        for slot in wanted
    }


def partitions_below_coverage(
    candles: pd.DataFrame,
    slots: Iterable[PartitionSlot],
    min_coverage: float = DEFAULT_MIN_MINUTE_COVERAGE,
) -> dict[PartitionSlot, float]:
    """The slots whose :func:`minute_coverage` is below ``min_coverage``, with their coverage."""
    return {
        slot: share
        for slot, share in minute_coverage(candles, slots).items()
        if share < min_coverage
    }


def _counts(masks: Mapping[str, pd.Series]) -> dict[str, int]:
    return {name: int(mask.sum()) for name, mask in masks.items()}


def _midnight(day: dt.date) -> pd.Timestamp:
    return pd.Timestamp(day).tz_localize("UTC")


def _outside_slots(frame: pd.DataFrame, slots: Iterable[PartitionSlot]) -> pd.Series:
    days = pd.to_datetime(frame["timestamp"], utc=True).dt.floor("D")
    rows = pd.MultiIndex.from_arrays([frame["exchange"], frame["coin"], days])
    allowed = [(s.exchange, s.coin, _midnight(s.date)) for s in slots]
    return pd.Series(~rows.isin(allowed), index=frame.index)


# -- Dagster checks ----------------------------------------------------------------------


def _offending_rows_table(frame: pd.DataFrame, masks: Mapping[str, pd.Series]) -> str:
    """A Markdown table of the first offending rows, with the rules each one breaks."""
    offending = pd.Series(False, index=frame.index)
    for mask in masks.values():
        offending |= mask
    sample = frame.loc[offending].head(_SAMPLE_ROWS)
    broken = [
        ", ".join(name for name, mask in masks.items() if mask.loc[index])
        for index in sample.index
    ]
    columns = ["broken_rules", *(str(c) for c in sample.columns)]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for rules, (_, row) in zip(broken, sample.iterrows(), strict=True):
        lines.append("| " + " | ".join([rules, *(str(v) for v in row.tolist())]) + " |")
    return "\n".join(lines)


def _rules_result(frame: pd.DataFrame, masks: Mapping[str, pd.Series]) -> dg.AssetCheckResult:
    counts = _counts(masks)
    broken = {name: n for name, n in counts.items() if n}
    metadata: dict[str, object] = {"rows_checked": len(frame), **counts}
    if broken:
        metadata["first_offending_rows"] = dg.MetadataValue.md(
            _offending_rows_table(frame, masks)
        )
    return dg.AssetCheckResult(
        passed=not broken,
        metadata=metadata,
        description=(
            "; ".join(f"{n} row(s) {name.replace('_', ' ')}" for name, n in broken.items())
            if broken
            else f"All {len(frame)} rows pass."
        ),
    )


def _every_partition_result(
    frame: pd.DataFrame, slots: list[PartitionSlot]
) -> dg.AssetCheckResult:
    rows = rows_per_partition(frame, slots)
    empty = [str(slot) for slot, n in rows.items() if n == 0]
    return dg.AssetCheckResult(
        passed=not empty,
        metadata={
            "partitions_checked": len(rows),
            "partitions_without_rows": len(empty),
            "empty_partitions": empty[:20],
            "min_rows_per_partition": min(rows.values(), default=0),
        },
        description=(
            f"No rows for {len(empty)} of {len(rows)} partition(s): {', '.join(empty[:5])}"
            if empty
            else f"All {len(rows)} partition(s) have rows."
        ),
    )


class MinuteCoverageConfig(dg.Config):
    """Threshold of :data:`ohlcv_1m_minute_coverage` (settable in the launchpad)."""

    min_coverage: float = DEFAULT_MIN_MINUTE_COVERAGE
    """Share of the day's 1440 minutes that must have a candle (0 to 1)."""


@dataclass(frozen=True)
class MarketDataChecks:
    """The asset checks of one partition profile's assets (see :func:`build_market_data_checks`)."""

    trades_are_valid: dg.AssetChecksDefinition
    trades_every_partition_has_rows: dg.AssetChecksDefinition
    order_book_is_valid: dg.AssetChecksDefinition
    ohlcv_1m_invariants: dg.AssetChecksDefinition
    ohlcv_1m_minute_coverage: dg.AssetChecksDefinition
    ohlcv_1d_invariants: dg.AssetChecksDefinition
    ohlcv_1d_every_partition_has_rows: dg.AssetChecksDefinition

    @property
    def all(self) -> list[dg.AssetChecksDefinition]:
        return [getattr(self, f.name) for f in fields(self)]


def build_market_data_checks(assets: MarketDataAssets) -> MarketDataChecks:
    """The checks of ``assets``, partitioned like them.

    The rules apply per instrument-day: in the exchange profile a partition is an
    exchange-day and the checks expand it to every configured instrument of that exchange,
    so an instrument without rows or below the minute coverage is named in the result.

    Example:
        >>> checks = build_market_data_checks(INSTRUMENT_PROFILE_ASSETS)
        >>> len(checks.all)
        7
    """

    @dg.asset_check(
        asset=assets.trades,
        name="valid_rows",
        partitions_def=assets.partitions_def,
        blocking=True,
    )
    def trades_are_valid(
        context: dg.AssetCheckExecutionContext, trades: pd.DataFrame
    ) -> dg.AssetCheckResult:
        """Positive prices and amounts, sides buy/sell, unique trade ids, rows inside the run's
        partitions. Blocks the candles of the run when it fails."""
        return _rules_result(trades, trade_violation_masks(trades, assets.slots(context)))


    @dg.asset_check(
        asset=assets.trades,
        name="every_partition_has_rows",
        partitions_def=assets.partitions_def,
        blocking=True,
    )
    def trades_every_partition_has_rows(
        context: dg.AssetCheckExecutionContext, trades: pd.DataFrame
    ) -> dg.AssetCheckResult:
        """Every instrument-day of the run has at least one trade (an empty day usually means
        the source failed silently)."""
        return _every_partition_result(trades, assets.slots(context))


    @dg.asset_check(
        asset=assets.order_book,
        name="valid_rows",
        partitions_def=assets.partitions_def,
    )
    def order_book_is_valid(
        context: dg.AssetCheckExecutionContext, order_book: pd.DataFrame
    ) -> dg.AssetCheckResult:
        """Positive prices and amounts, sides bid/ask, one row per level, uncrossed snapshots,
        rows inside the run's partitions."""
        return _rules_result(
            order_book, order_book_violation_masks(order_book, assets.slots(context))
        )


    @dg.asset_check(
        asset=assets.ohlcv_1m,
        name="ohlcv_invariants",
        partitions_def=assets.partitions_def,
        blocking=True,
    )
    def ohlcv_1m_invariants(
        context: dg.AssetCheckExecutionContext, ohlcv_1m: pd.DataFrame
    ) -> dg.AssetCheckResult:
        """low <= open/close <= high, volume >= 0, one candle per minute on minute boundaries,
        rows inside the run's partitions. Blocks the daily candles of the run when it fails."""
        masks = ohlcv_violation_masks(ohlcv_1m, assets.slots(context), interval="1min")
        return _rules_result(ohlcv_1m, masks)


    @dg.asset_check(
        asset=assets.ohlcv_1m,
        name="minute_coverage",
        partitions_def=assets.partitions_def,
    )
    def ohlcv_1m_minute_coverage(
        context: dg.AssetCheckExecutionContext, config: MinuteCoverageConfig, ohlcv_1m: pd.DataFrame
    ) -> dg.AssetCheckResult:
        """Each day of the run has a candle in at least ``min_coverage`` of its 1440 minutes
        (default 90%). Warns (does not block): quiet minutes are possible on illiquid markets."""
        slots = assets.slots(context)
        coverage = minute_coverage(ohlcv_1m, slots)
        below = {
            str(slot): round(share, 4)
            for slot, share in partitions_below_coverage(ohlcv_1m, slots, config.min_coverage).items()
        }
        return dg.AssetCheckResult(
            passed=not below,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "min_coverage": config.min_coverage,
                "lowest_coverage": round(min(coverage.values(), default=0.0), 4),
                "partitions_checked": len(coverage),
                "partitions_below_threshold": len(below),
                "coverage_below_threshold": dict(list(below.items())[:20]),
            },
            description=(
                f"{len(below)} partition(s) below {config.min_coverage:.0%} minute coverage."
                if below
                else f"All {len(coverage)} partition(s) reach {config.min_coverage:.0%}."
            ),
        )


    @dg.asset_check(
        asset=assets.ohlcv_1d,
        name="ohlcv_invariants",
        partitions_def=assets.partitions_def,
        blocking=True,
    )
    def ohlcv_1d_invariants(
        context: dg.AssetCheckExecutionContext, ohlcv_1d: pd.DataFrame
    ) -> dg.AssetCheckResult:
        """low <= open/close <= high, volume >= 0, one candle per day at midnight UTC, rows
        inside the run's partitions."""
        masks = ohlcv_violation_masks(ohlcv_1d, assets.slots(context), interval="1D")
        return _rules_result(ohlcv_1d, masks)


    @dg.asset_check(
        asset=assets.ohlcv_1d,
        name="every_partition_has_rows",
        partitions_def=assets.partitions_def,
    )
    def ohlcv_1d_every_partition_has_rows(
        context: dg.AssetCheckExecutionContext, ohlcv_1d: pd.DataFrame
    ) -> dg.AssetCheckResult:
        """Every instrument-day of the run has its daily candle."""
        return _every_partition_result(ohlcv_1d, assets.slots(context))


    return MarketDataChecks(
        trades_are_valid,
        trades_every_partition_has_rows,
        order_book_is_valid,
        ohlcv_1m_invariants,
        ohlcv_1m_minute_coverage,
        ohlcv_1d_invariants,
        ohlcv_1d_every_partition_has_rows,
    )


INSTRUMENT_PROFILE_CHECKS = build_market_data_checks(INSTRUMENT_PROFILE_ASSETS)
"""The checks of the ``instrument`` profile's assets."""

trades_are_valid = INSTRUMENT_PROFILE_CHECKS.trades_are_valid
trades_every_partition_has_rows = INSTRUMENT_PROFILE_CHECKS.trades_every_partition_has_rows
order_book_is_valid = INSTRUMENT_PROFILE_CHECKS.order_book_is_valid
ohlcv_1m_invariants = INSTRUMENT_PROFILE_CHECKS.ohlcv_1m_invariants
ohlcv_1m_minute_coverage = INSTRUMENT_PROFILE_CHECKS.ohlcv_1m_minute_coverage
ohlcv_1d_invariants = INSTRUMENT_PROFILE_CHECKS.ohlcv_1d_invariants
ohlcv_1d_every_partition_has_rows = INSTRUMENT_PROFILE_CHECKS.ohlcv_1d_every_partition_has_rows

ASSET_CHECKS = [
    trades_are_valid,
    trades_every_partition_has_rows,
    order_book_is_valid,
    ohlcv_1m_invariants,
    ohlcv_1m_minute_coverage,
    ohlcv_1d_invariants,
    ohlcv_1d_every_partition_has_rows,
]
