"""Freshness policies of the daily market-data assets: yesterday's data by a deadline.

The daily assets (``trades``, ``ohlcv_1m``, ``ohlcv_1d``) carry a Dagster
:class:`~dagster.FreshnessPolicy` (``FreshnessPolicy.cron``): they must have been materialized
between midnight UTC and the deadline of each day (``CB_STORAGE_FRESHNESS_DEADLINE``, default
``06:00`` UTC; the daily schedule asks for yesterday at 00:30). Dagster's freshness daemon
(on by default since 1.12) evaluates the policy and the UI shows *Fresh* / *Overdue* on the
asset; Dagster documents these policies as under active development (their API may change).

Dagster evaluates a policy per asset, not per partition: any materialization after midnight
passes it, a backfill of an old day too. What says whether *every* instrument-day of yesterday
is there is the completeness check beside it on the same asset (``every_partition_has_rows``,
``minute_coverage``), and ``cb-storage coverage`` outside Dagster.

Example:
    >>> policy = daily_freshness_policy(dt.time(6, 0))
    >>> policy.deadline_cron, policy.lower_bound_delta
    ('0 6 * * *', datetime.timedelta(seconds=21600))
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from cb_storage_dagster.settings import PipelineSettings

__all__ = ["DAILY_ASSETS", "daily_freshness_policy", "with_daily_freshness"]

DAILY_ASSETS = ("trades", "ohlcv_1m", "ohlcv_1d")
"""The assets the daily schedule fills for yesterday (``order_book`` has no history to fetch)."""


def daily_freshness_policy(deadline: dt.time | None = None) -> dg.FreshnessPolicy:
    """A materialization is expected between midnight UTC and ``deadline`` (UTC) every day.

    ``deadline`` defaults to ``CB_STORAGE_FRESHNESS_DEADLINE`` (a bad value raises
    ``ConfigurationError`` naming the variable).
    """
    if deadline is None:
        deadline = PipelineSettings.load().freshness_deadline
    since_midnight = dt.timedelta(hours=deadline.hour, minutes=deadline.minute)
    return dg.FreshnessPolicy.cron(
        deadline_cron=f"{deadline.minute} {deadline.hour} * * *",
        lower_bound_delta=since_midnight,
        timezone="UTC",
    )


def with_daily_freshness(asset: dg.AssetsDefinition, deadline: dt.time | None = None) -> dg.AssetsDefinition:
    """``asset`` with :func:`daily_freshness_policy` if it is one of :data:`DAILY_ASSETS`,
    else ``asset`` unchanged."""
    if asset.key.path[-1] not in DAILY_ASSETS:
        return asset
    policy = daily_freshness_policy(deadline)
    return asset.map_asset_specs(lambda spec: dg.apply_freshness_policy(spec, policy))
