"""The pipeline of one partition profile: assets, checks, jobs, schedules and sensors.

``$CB_STORAGE_PARTITIONING`` picks the profile of the code location (see
:class:`~cb_storage_dagster.orchestration.partitions.PartitionProfile` and the README's
"Partition profiles"): ``instrument`` (default) gives date x instrument assets; ``exchange``
gives date x exchange assets whose partition holds every configured instrument of an
exchange-day. :func:`build_pipeline` is the one factory of both: the same builders make the
assets, checks, jobs, the daily, intraday and order-book snapshot schedules of either
profile; only the partitions, the backfill policy and the partitions a tick's runs cover
differ. Nothing is defined at module level, so both pipelines can be built in one process
(tests, benchmarks) and each build is independent of the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg

from cb_storage_dagster.orchestration.assets import MarketDataAssets, build_market_data_assets
from cb_storage_dagster.orchestration.checks import MarketDataChecks, build_market_data_checks
from cb_storage_dagster.orchestration.intraday import build_intraday_schedules
from cb_storage_dagster.orchestration.jobs import build_market_data_jobs
from cb_storage_dagster.orchestration.partitions import (
    PartitionProfile,
    coins_by_exchange,
    exchange_day_partitions,
    market_data_partitions,
)
from cb_storage_dagster.orchestration.schedules import build_daily_schedule
from cb_storage_dagster.orchestration.sensors import build_instruments_sensor, configured_instruments
from cb_storage_dagster.settings import PipelineSettings

if TYPE_CHECKING:
    from cb_storage_dagster.orchestration.dagster_internals import AssetJob

__all__ = [
    "PARTITIONING_ENV_VAR",
    "MarketDataPipeline",
    "backfill_policy_of",
    "build_pipeline",
    "configured_profile",
]

PARTITIONING_ENV_VAR = PipelineSettings.variable("partitioning")

_Named = TypeVar("_Named", "AssetJob", dg.ScheduleDefinition, dg.SensorDefinition)


def configured_profile() -> PartitionProfile:
    """``$CB_STORAGE_PARTITIONING`` (``instrument`` when unset or blank); another value raises
    ``ConfigurationError`` naming the variable."""
    return PartitionProfile(PipelineSettings.load().partitioning)


def backfill_policy_of(profile: PartitionProfile) -> dg.BackfillPolicy:
    """How a UI backfill of ``profile``'s assets is cut into runs (the default of
    :func:`build_pipeline`).

    Up to a month of partitions per run: one commit per batch instead of one per day, while a
    failed run only redoes its own batch. One run per range when
    ``CB_STORAGE_BACKFILL_SINGLE_RUN=true`` (what ``dg launch --partition-range`` requires: it
    refuses assets whose policy is not single-run).

    >>> backfill_policy_of(PartitionProfile.EXCHANGE).max_partitions_per_run
    31
    """
    if PipelineSettings.load().backfill_single_run:
        return dg.BackfillPolicy.single_run()
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=31)


@dataclass(frozen=True)
class MarketDataPipeline:
    """Everything the market-data code location defines for one profile.

    Example:
        >>> pipeline = build_pipeline("exchange", ["binance:BTC", "binance:ETH", "kraken:SOL"])
        >>> pipeline.exchanges
        ('binance', 'kraken')
        >>> [s.name for s in pipeline.schedules]
        ['daily_market_data_schedule', 'intraday_market_data_schedule', 'order_book_snapshot_schedule']
        >>> pipeline.job("market_data_job").name
        'market_data_job'
    """

    profile: PartitionProfile
    assets: MarketDataAssets
    checks: MarketDataChecks
    jobs: Sequence[AssetJob]
    schedules: Sequence[dg.ScheduleDefinition]
    sensors: Sequence[dg.SensorDefinition]
    exchanges: tuple[str, ...] = ()
    """The static exchange keys of the ``exchange`` profile (empty for ``instrument``)."""

    def definitions(self, resources: Mapping[str, Any]) -> dg.Definitions:
        """The pipeline as ``dg.Definitions`` with ``resources`` (``market_data_io_manager``,
        ``market_data_source``, ...): every asset, check, job, schedule and sensor."""
        return dg.Definitions(
            assets=self.assets.all, asset_checks=self.checks.all, jobs=self.jobs,
            schedules=self.schedules, sensors=self.sensors, resources=dict(resources),
        )

    def job(self, name: str) -> AssetJob:
        """The job called ``name`` (``market_data_job``, ``intraday_market_data_job``,
        ``order_book_snapshot_job``)."""
        return _named(self.jobs, name, "job")

    def schedule(self, name: str) -> dg.ScheduleDefinition:
        """The schedule called ``name`` (``daily_market_data_schedule``,
        ``intraday_market_data_schedule``, ``order_book_snapshot_schedule``)."""
        return _named(self.schedules, name, "schedule")

    def sensor(self, name: str) -> dg.SensorDefinition:
        """The sensor called ``name`` (``instruments_sensor``, ``instrument`` profile only)."""
        return _named(self.sensors, name, "sensor")


def _named(definitions: Sequence[_Named], name: str, kind: str) -> _Named:
    for definition in definitions:
        if definition.name == name:
            return definition
    raise KeyError(f"This pipeline has no {kind} {name!r}; it has {[d.name for d in definitions]}.")


def build_pipeline(
    profile: PartitionProfile | str,
    instruments: Sequence[str] | None = None,
    *,
    backfill_policy: dg.BackfillPolicy | None = None,
) -> MarketDataPipeline:
    """The assets, checks, jobs, schedules and sensors of ``profile``, built anew.

    ``instruments`` (``<exchange>:<coin>`` keys; default :func:`configured_instruments`) is
    the universe of the ``exchange`` profile: its exchanges become the static partition
    keys, and an exchange-day partition fetches every coin listed for that exchange. The
    ``instrument`` profile takes its instruments from the ``instruments`` dynamic partitions
    instead (kept in sync by its ``instruments_sensor``) and ignores the argument.
    ``backfill_policy`` (default :func:`backfill_policy_of` the profile) cuts UI backfills
    into runs. In both profiles today is a partition too: the intraday and order-book
    snapshot schedules merge into it during the day, and the nightly schedule replaces it
    once it is over.
    """
    profile = PartitionProfile.parse(str(profile))
    policy = backfill_policy_of(profile) if backfill_policy is None else backfill_policy
    if profile is PartitionProfile.EXCHANGE:
        coins = coins_by_exchange(configured_instruments() if instruments is None else instruments)
        assets = build_market_data_assets(exchange_day_partitions(coins, end_offset=1), coins, backfill_policy=policy)
        exchanges = tuple(sorted(coins))
        sensors: list[dg.SensorDefinition] = []  # the universe is configuration: no dynamic partitions
    else:
        assets = build_market_data_assets(market_data_partitions(end_offset=1), backfill_policy=policy)
        exchanges = ()
        sensors = [build_instruments_sensor()]
    checks = build_market_data_checks(assets)
    jobs = build_market_data_jobs(profile, assets, checks)
    schedules = [
        build_daily_schedule(profile, jobs.market_data_job, exchanges),
        *build_intraday_schedules(profile, jobs, exchanges),
    ]
    return MarketDataPipeline(profile, assets, checks, jobs.all, schedules, sensors, exchanges)
