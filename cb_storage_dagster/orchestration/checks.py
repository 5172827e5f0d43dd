"""The asset checks of the market-data assets.

Each ``@asset_check`` takes its asset as input (the ``market_data_io_manager`` loads exactly
the partitions of the run), applies the measures of :mod:`cb_storage_dagster.orchestration.quality`
(the row rules of :mod:`cb_storage_dagster.domain.rules`, completeness, minute coverage) to
the run's partitions and reports violation counts and the first offending rows.

The checks are built per partition profile (:func:`build_market_data_checks`, called by
:func:`~cb_storage_dagster.orchestration.profiles.build_pipeline`; none exists at module level) and
partitioned like their assets, so that a run over a batch of days loads
only that batch and the UI shows a result per partition. (Partitioned asset checks are a
*preview* feature of Dagster 1.13 and print a ``PreviewWarning``; an unpartitioned check
would make the IO manager load every partition of the asset.)

Blocking checks stop downstream assets of the same run: bad trades never become candles,
and bad one-minute candles never become daily candles.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields

import dagster as dg
import pandas as pd

from cb_storage_dagster.domain.chunks import MarketDataChunks
from cb_storage_dagster.domain.keys import DataType, PartitionSlot
from cb_storage_dagster.orchestration.assets import MarketDataAssets
from cb_storage_dagster.orchestration.check_results import KEY_COLUMNS, every_partition_result, rules_result
from cb_storage_dagster.orchestration.instruments_check import instruments_stored_check
from cb_storage_dagster.orchestration.quality import (
    DEFAULT_MIN_MINUTE_COVERAGE,
    MINUTES_PER_DAY,
    instrument_day_counts,
)

__all__ = ["MarketDataChecks", "MinuteCoverageConfig", "build_market_data_checks"]


SlotsOf = Callable[[dg.AssetCheckExecutionContext], list[PartitionSlot]]


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

    trades_instruments_stored: dg.AssetChecksDefinition | None = None
    """The exchange profile only: every instrument-day of the run was stored (none left out)."""

    @property
    def all(self) -> list[dg.AssetChecksDefinition]:
        return [c for c in (getattr(self, f.name) for f in fields(self)) if c is not None]


def _input_named_after(
    asset: dg.AssetsDefinition, check: Callable[..., dg.AssetCheckResult], frames: type = pd.DataFrame
) -> Callable[..., dg.AssetCheckResult]:
    """``check`` with its ``frame`` parameter named after ``asset`` and annotated ``frames``:
    Dagster names the check's input after that parameter, and the UI and the event log show
    ``trades``, not ``frame``; the IO manager streams an input annotated ``MarketDataChunks``."""
    signature = inspect.signature(check)
    name = asset.key.path[-1]

    def named(context: dg.AssetCheckExecutionContext, **inputs: pd.DataFrame) -> dg.AssetCheckResult:
        return check(context, inputs[name])

    named.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p.replace(name=name, annotation=frames) if p.name in ("frame", name) else p
                    for p in signature.parameters.values()]
    )
    return named


def _rules_check(
    asset: dg.AssetsDefinition,
    partitions_def: dg.PartitionsDefinition,
    slots_of: SlotsOf,
    *,
    name: str,
    data_type: DataType,
    description: str,
    blocking: bool = False,
    interval: str | None = None,
    frames: type = pd.DataFrame,
) -> dg.AssetChecksDefinition:
    """A check that counts the rows of the run breaking each row rule of ``data_type``, rows
    outside the run's partitions (and, with ``interval``, off its boundaries)."""

    def rules_check(context: dg.AssetCheckExecutionContext, frame: pd.DataFrame) -> dg.AssetCheckResult:
        slots = slots_of(context)
        return rules_result(frame, data_type, slots, interval=interval)

    return dg.asset_check(
        asset=asset, name=name, partitions_def=partitions_def, blocking=blocking, description=description
    )(_input_named_after(asset, rules_check, frames))


def _every_partition_check(
    asset: dg.AssetsDefinition,
    partitions_def: dg.PartitionsDefinition,
    slots_of: SlotsOf,
    *,
    description: str,
    blocking: bool = False,
    frames: type = pd.DataFrame,
) -> dg.AssetChecksDefinition:
    """A check that every instrument-day of the run has at least one row."""

    def every_partition_check(context: dg.AssetCheckExecutionContext, frame: pd.DataFrame) -> dg.AssetCheckResult:
        return every_partition_result(frame, slots_of(context))

    return dg.asset_check(
        asset=asset,
        name="every_partition_has_rows",
        partitions_def=partitions_def,
        blocking=blocking,
        description=description,
    )(_input_named_after(asset, every_partition_check, frames))


def _minute_coverage_check(
    asset: dg.AssetsDefinition, partitions_def: dg.PartitionsDefinition, slots_of: SlotsOf, frames: type = pd.DataFrame
) -> dg.AssetChecksDefinition:
    def ohlcv_1m_minute_coverage(
        context: dg.AssetCheckExecutionContext, config: MinuteCoverageConfig, ohlcv_1m: pd.DataFrame
    ) -> dg.AssetCheckResult:
        """Each day of the run has a candle in at least ``min_coverage`` of its 1440 minutes
        (default 90%). Warns (does not block): quiet minutes are possible on illiquid markets."""
        slots = slots_of(context)
        coverage = dict.fromkeys(sorted(set(slots)), 0.0)
        # Distinct minutes per instrument-day counted in Arrow, chunk by chunk: asking every
        # chunk about every slot of the run was chunks x slots (248 x 62,000 for 31 days).
        for chunk in (ohlcv_1m.select(KEY_COLUMNS) if isinstance(ohlcv_1m, MarketDataChunks) else [ohlcv_1m]):
            for (exchange, coin, day), minutes in instrument_day_counts(chunk, gaps=True)[1].items():
                slot = PartitionSlot(exchange, coin, day)
                if slot in coverage:
                    coverage[slot] = max(coverage[slot], minutes / MINUTES_PER_DAY)
        below = {str(slot): round(share, 4) for slot, share in coverage.items() if share < config.min_coverage}
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

    signature = inspect.signature(ohlcv_1m_minute_coverage)
    ohlcv_1m_minute_coverage.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p.replace(annotation=frames) if p.name == "ohlcv_1m" else p for p in signature.parameters.values()])
    return dg.asset_check(asset=asset, name="minute_coverage", partitions_def=partitions_def)(ohlcv_1m_minute_coverage)


def build_market_data_checks(assets: MarketDataAssets) -> MarketDataChecks:
    """The checks of ``assets``, partitioned like them.

    The rules apply per instrument-day: in the exchange profile a partition is an
    exchange-day and the checks expand it to every configured instrument of that exchange,
    so an instrument without rows or below the minute coverage is named in the result.

    Example:
        >>> from cb_storage_dagster.orchestration.profiles import build_pipeline
        >>> checks = build_market_data_checks(build_pipeline("instrument").assets)
        >>> len(checks.all)
        7
    """
    on = (assets.partitions_def, assets.slots)
    frames: type = MarketDataChunks if assets.chunked else pd.DataFrame
    return MarketDataChecks(
        trades_are_valid=_rules_check(
            assets.trades, *on, name="valid_rows", data_type=DataType.TRADES, blocking=True, frames=frames,
            description="Positive prices and amounts, sides buy/sell, unique trade ids, rows inside "
            "the run's partitions. Blocks the candles of the run when it fails.",
        ),
        trades_every_partition_has_rows=_every_partition_check(
            assets.trades, *on, blocking=True, frames=frames,
            description="Every instrument-day of the run has at least one trade (an empty day "
            "usually means the source failed silently).",
        ),
        order_book_is_valid=_rules_check(
            assets.order_book, *on, name="valid_rows", data_type=DataType.ORDER_BOOK,
            description="Positive prices and amounts, sides bid/ask, one row per level, uncrossed "
            "snapshots, rows inside the run's partitions.",
        ),
        ohlcv_1m_invariants=_rules_check(
            assets.ohlcv_1m, *on, name="ohlcv_invariants", data_type=DataType.OHLCV, blocking=True, frames=frames,
            interval="1min",
            description="low <= open/close <= high, volume >= 0, one candle per minute on minute "
            "boundaries, rows inside the run's partitions. Blocks the daily candles of the run when it fails.",
        ),
        ohlcv_1m_minute_coverage=_minute_coverage_check(assets.ohlcv_1m, *on, frames),
        ohlcv_1d_invariants=_rules_check(
            assets.ohlcv_1d, *on, name="ohlcv_invariants", data_type=DataType.OHLCV, blocking=True, frames=frames,
            interval="1D",
            description="low <= open/close <= high, volume >= 0, one candle per day at midnight UTC, "
            "rows inside the run's partitions.",
        ),
        ohlcv_1d_every_partition_has_rows=_every_partition_check(
            assets.ohlcv_1d, *on, description="Every instrument-day of the run has its daily candle.", frames=frames,
        ),
        trades_instruments_stored=(
            instruments_stored_check(assets.trades, assets.partitions_def) if assets.chunked else None
        ),
    )
