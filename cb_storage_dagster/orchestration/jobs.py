"""Jobs of the market-data pipeline, built from one profile's assets and checks.

:func:`build_market_data_jobs` is the only place that defines them; each pipeline
(:func:`~cb_storage_dagster.orchestration.profiles.build_pipeline`) builds its own, so both
profiles get the same three jobs:

* ``market_data_job``: the four assets and every check (the nightly schedule, backfills);
* ``intraday_market_data_job``: ``trades`` and ``ohlcv_1m`` with their row-level checks (the
  intraday merges; completeness and coverage are for finished days);
* ``order_book_snapshot_job``: ``order_book`` and its check (the snapshot merges).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import dagster as dg

from cb_storage_dagster.orchestration.assets import MarketDataAssets
from cb_storage_dagster.orchestration.checks import MarketDataChecks
from cb_storage_dagster.orchestration.partitions import PartitionProfile

if TYPE_CHECKING:
    from cb_storage_dagster.orchestration.dagster_internals import AssetJob

__all__ = ["MarketDataJobs", "build_market_data_jobs"]

_PARTITION_WORDS = {
    PartitionProfile.INSTRUMENT: "instrument-days",
    PartitionProfile.EXCHANGE: "exchange-days (every configured instrument of the exchange, one commit per table)",
}


@dataclass(frozen=True)
class MarketDataJobs:
    """The jobs of one profile's pipeline.

    Example:
        >>> from cb_storage_dagster.orchestration.profiles import build_pipeline
        >>> [job.name for job in build_pipeline("instrument").jobs]
        ['market_data_job', 'intraday_market_data_job', 'order_book_snapshot_job']
    """

    market_data_job: AssetJob
    intraday_market_data_job: AssetJob
    order_book_snapshot_job: AssetJob

    @property
    def all(self) -> list[AssetJob]:
        return [getattr(self, f.name) for f in fields(self)]


def build_market_data_jobs(
    profile: PartitionProfile, assets: MarketDataAssets, checks: MarketDataChecks
) -> MarketDataJobs:
    """The nightly, intraday and snapshot jobs over ``assets`` (partitioned like them)."""
    unit = _PARTITION_WORDS[profile]
    return MarketDataJobs(
        market_data_job=dg.define_asset_job(
            name="market_data_job",
            selection=dg.AssetSelection.assets(*assets.all),
            description=(
                f"Fetches trades and order books of {unit} and builds their 1-minute and daily "
                "candles; the asset checks of these assets run in the same run."
            ),
        ),
        intraday_market_data_job=dg.define_asset_job(
            name="intraday_market_data_job",
            # The day is not over: only the row-level checks apply (coverage and "every
            # partition has rows" are for finished days and run with the nightly job).
            selection=dg.AssetSelection.assets(assets.trades, assets.ohlcv_1m).without_checks()
            | dg.AssetSelection.checks(checks.trades_are_valid, checks.ohlcv_1m_invariants),
            description=f"Merges the newest trades of today and their 1-minute candles into today's {unit}.",
        ),
        order_book_snapshot_job=dg.define_asset_job(
            name="order_book_snapshot_job",
            selection=dg.AssetSelection.assets(assets.order_book).without_checks()
            | dg.AssetSelection.checks(checks.order_book_is_valid),
            description=f"Takes one order-book snapshot per instrument and merges it into today's {unit}.",
        ),
    )
