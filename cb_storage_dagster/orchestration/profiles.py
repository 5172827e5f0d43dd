"""The pipeline of one partition profile: assets, checks, job, schedule and sensors.

``$CB_STORAGE_PARTITIONING`` picks the profile of the code location (see
:class:`~cb_storage_dagster.orchestration.partitions.PartitionProfile` and the README's
"Partition profiles"): ``instrument`` (default) gives today's date x instrument assets
unchanged; ``exchange`` gives date x exchange assets whose partition holds every configured
instrument of an exchange-day. :func:`build_pipeline` takes the profile as an argument, so
both pipelines can be built in one process (tests, benchmarks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg

from cb_storage_dagster.orchestration.assets import (
    INSTRUMENT_PROFILE_ASSETS,
    MarketDataAssets,
    build_market_data_assets,
)
from cb_storage_dagster.orchestration.checks import (
    INSTRUMENT_PROFILE_CHECKS,
    MarketDataChecks,
    build_market_data_checks,
)
from cb_storage_dagster.orchestration.jobs import JOBS
from cb_storage_dagster.orchestration.partitions import (
    PartitionProfile,
    coins_by_exchange,
    exchange_day_partitions,
)
from cb_storage_dagster.orchestration.schedules import SCHEDULES, build_exchange_daily_schedule
from cb_storage_dagster.orchestration.sensors import SENSORS, configured_instruments
from cb_storage_dagster.settings import PipelineSettings

if TYPE_CHECKING:
    from cb_storage_dagster.orchestration.dagster_internals import AssetJob

__all__ = ["PARTITIONING_ENV_VAR", "MarketDataPipeline", "build_pipeline", "configured_profile"]

PARTITIONING_ENV_VAR = PipelineSettings.variable("partitioning")


def configured_profile() -> PartitionProfile:
    """``$CB_STORAGE_PARTITIONING`` (``instrument`` when unset or blank); another value raises
    ``ConfigurationError`` naming the variable."""
    return PartitionProfile(PipelineSettings.load().partitioning)


@dataclass(frozen=True)
class MarketDataPipeline:
    """Everything the market-data code location defines for one profile.

    Example:
        >>> pipeline = build_pipeline("exchange", ["binance:BTC", "binance:ETH", "kraken:SOL"])
        >>> pipeline.exchanges
        ('binance', 'kraken')
    """

    profile: PartitionProfile
    assets: MarketDataAssets
    checks: MarketDataChecks
    jobs: Sequence[AssetJob]
    schedules: Sequence[dg.ScheduleDefinition]
    sensors: Sequence[dg.SensorDefinition]
    exchanges: tuple[str, ...] = ()

    @property
    def job(self) -> AssetJob:
        return self.jobs[0]


def build_pipeline(
    profile: PartitionProfile | str, instruments: Sequence[str] | None = None
) -> MarketDataPipeline:
    """The assets, checks, job, daily schedule and sensors of ``profile``.

    ``instruments`` (``<exchange>:<coin>`` keys; default :func:`configured_instruments`) is
    the universe of the ``exchange`` profile: its exchanges become the static partition
    keys, and an exchange-day partition fetches every coin listed for that exchange. The
    ``instrument`` profile takes its instruments from the ``instruments`` dynamic partitions
    instead (kept in sync by ``instruments_sensor``) and ignores the argument.
    """
    profile = PartitionProfile.parse(str(profile))
    if profile is PartitionProfile.INSTRUMENT:
        # Intraday merges and order-book snapshots run over today x every registered
        # instrument; the exchange profile has no intraday schedules yet (README).
        from cb_storage_dagster.orchestration.intraday import INTRADAY_JOBS, INTRADAY_SCHEDULES

        return MarketDataPipeline(
            profile, INSTRUMENT_PROFILE_ASSETS, INSTRUMENT_PROFILE_CHECKS,
            [*JOBS, *INTRADAY_JOBS], [*SCHEDULES, *INTRADAY_SCHEDULES], SENSORS,
        )
    coins = coins_by_exchange(configured_instruments() if instruments is None else instruments)
    assets = build_market_data_assets(exchange_day_partitions(coins), coins)
    job = dg.define_asset_job(
        name="market_data_job",
        selection=dg.AssetSelection.assets(*assets.all),
        description=(
            "Fetches trades and order books of exchange-days (every configured instrument of "
            "the exchange) and builds their 1-minute and daily candles, one commit per table; "
            "the asset checks of these assets run in the same run."
        ),
    )
    exchanges = tuple(sorted(coins))
    return MarketDataPipeline(
        profile,
        assets,
        build_market_data_checks(assets),
        [job],
        [build_exchange_daily_schedule(job, exchanges)],
        [],  # the universe is configuration: no dynamic partitions to keep in sync
        exchanges,
    )
