"""Schedules of the market-data pipeline.

The daily tick (00:30 UTC) materializes the previous UTC day in few runs, never one run per
instrument:

* ``instrument`` profile (:func:`build_instrument_daily_schedule`): range runs, each one day x a
  block of instruments registered next to each other in the ``instruments`` dynamic
  partitions (which :data:`~cb_storage_dagster.orchestration.sensors.instruments_sensor` keeps in
  sync with the configuration). A date x dynamic-instrument range is a rectangle in the
  dimension's *registration* order, so the blocks are cut from that order as the instance
  returns it, never from a sorted list. ``$CB_STORAGE_SCHEDULE_BATCH_SIZE`` instruments per
  run (default 50), raised when needed so that a tick never asks for more than
  :data:`MAX_RUNS_PER_TICK` runs.
* ``exchange`` profile (:func:`build_exchange_daily_schedule`): one run per exchange; the run
  writes every configured instrument of the exchange-day in one commit per table.

:func:`build_daily_schedule` picks one of them for a profile; every pipeline builds its own
schedule over its own job (no schedule exists at module level).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import dagster as dg

from cb_storage_dagster.domain.keys import PartitionSlot, decode_instrument
from cb_storage_dagster.orchestration.partitions import (
    DATE_DIMENSION,
    EXCHANGE_DIMENSION,
    INSTRUMENTS_PARTITIONS_NAME,
    PartitionProfile,
    encode_multi_key,
)
from cb_storage_dagster.settings import PipelineSettings

if TYPE_CHECKING:
    from cb_storage_dagster.orchestration.dagster_internals import AssetJob

__all__ = [
    "BATCH_SIZE_ENV_VAR",
    "DAILY_CRON",
    "DEFAULT_BATCH_SIZE",
    "MAX_RUNS_PER_TICK",
    "build_daily_schedule",
    "build_exchange_daily_schedule",
    "build_instrument_daily_schedule",
    "configured_batch_size",
    "exchange_run_requests_for_day",
    "instrument_blocks",
    "no_instruments_skip",
    "previous_utc_day",
    "range_run_requests_for_day",
    "range_tags",
    "registered_instruments",
]

DAILY_CRON = "30 0 * * *"
"""00:30 UTC: half an hour after the day closed, so late trades of the source have landed."""

BATCH_SIZE_ENV_VAR = PipelineSettings.variable("schedule_batch_size")
DEFAULT_BATCH_SIZE: int = PipelineSettings.model_fields["schedule_batch_size"].default
"""Instruments per daily range run (see :attr:`PipelineSettings.schedule_batch_size`)."""

MAX_RUNS_PER_TICK = 100
"""Upper bound on the runs of one daily tick, whatever the batch size says."""

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def previous_utc_day(moment: dt.datetime) -> dt.date:
    """The UTC day before ``moment`` (a naive ``moment`` is taken as UTC).

    >>> previous_utc_day(dt.datetime(2024, 3, 1, 0, 30, tzinfo=dt.timezone.utc))
    datetime.date(2024, 2, 29)
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).date() - dt.timedelta(days=1)


def configured_batch_size() -> int:
    """``$CB_STORAGE_SCHEDULE_BATCH_SIZE`` (a positive integer) or :data:`DEFAULT_BATCH_SIZE`;
    a bad value raises ``ConfigurationError`` naming the variable."""
    return PipelineSettings.load().schedule_batch_size


def instrument_blocks(
    instruments: Sequence[str], batch_size: int, max_runs: int = MAX_RUNS_PER_TICK
) -> list[Sequence[str]]:
    """Consecutive blocks of ``instruments`` (kept in their order), each at most
    ``batch_size`` long unless that would need more than ``max_runs`` blocks.

    >>> instrument_blocks(["a:1", "a:2", "b:1"], 2)
    [['a:1', 'a:2'], ['b:1']]
    >>> len(instrument_blocks([f"x:{i}" for i in range(2000)], 1))
    100
    """
    if batch_size < 1 or max_runs < 1:
        raise ValueError("batch_size and max_runs must be positive.")
    size = max(batch_size, math.ceil(len(instruments) / max_runs))
    return [list(instruments[i : i + size]) for i in range(0, len(instruments), size)]


def range_tags(instruments: Sequence[str], day: dt.date) -> dict[str, str]:
    """The tags of one run over ``day`` x the instruments registered from ``instruments[0]``
    to ``instruments[-1]`` (a partition range: Dagster expands it in registration order).

    >>> range_tags(["binance:BTC", "binance:ETH"], dt.date(2024, 1, 2))[RANGE_END_TAG]
    '2024-01-02|binance:ETH'
    """
    first = encode_multi_key(PartitionSlot(*decode_instrument(instruments[0]), day))
    last = encode_multi_key(PartitionSlot(*decode_instrument(instruments[-1]), day))
    return {RANGE_START_TAG: str(first), RANGE_END_TAG: str(last)}


def range_run_requests_for_day(
    registered: Sequence[str], day: dt.date, batch_size: int = DEFAULT_BATCH_SIZE
) -> list[dg.RunRequest]:
    """Range runs over ``day`` x blocks of ``registered`` instruments, in registration order.

    Each run is tagged with the first and last partition key of its block; Dagster expands
    the range to the instruments registered between them. The run key makes a re-evaluated
    tick launch nothing twice.
    """
    requests = []
    for block in instrument_blocks(registered, batch_size):
        tags = range_tags(block, day)
        requests.append(dg.RunRequest(run_key=f"{tags[RANGE_START_TAG]}..{tags[RANGE_END_TAG]}", tags=tags))
    return requests


def registered_instruments(context: dg.ScheduleEvaluationContext) -> list[str]:
    """The ``instruments`` dynamic partition keys in registration order (the instance returns
    keys by insertion id): a range run covers the instruments registered between its first
    and last key, so blocks must follow it, never a sorted list."""
    return list(context.instance.get_dynamic_partitions(INSTRUMENTS_PARTITIONS_NAME))


def no_instruments_skip() -> dg.SkipReason:
    """What a schedule over the registered instruments says while there are none."""
    return dg.SkipReason(
        f"No instruments registered in the '{INSTRUMENTS_PARTITIONS_NAME}' partitions yet; "
        "turn on instruments_sensor (or add partitions) and the next tick will run."
    )


def _daily_schedule(
    job: AssetJob,
    description: str,
    requests_for_day: Callable[[dg.ScheduleEvaluationContext, dt.date], list[dg.RunRequest] | dg.SkipReason],
) -> dg.ScheduleDefinition:
    """``daily_market_data_schedule`` of either profile: at :data:`DAILY_CRON`, the runs that
    ``requests_for_day`` asks for the previous UTC day."""

    @dg.schedule(
        name="daily_market_data_schedule",
        job=job,
        cron_schedule=DAILY_CRON,
        execution_timezone="UTC",
        description=description,
    )
    def daily_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        moment = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        return requests_for_day(context, previous_utc_day(moment))

    return daily_schedule


def _instrument_blocks_for_day(
    context: dg.ScheduleEvaluationContext, day: dt.date
) -> list[dg.RunRequest] | dg.SkipReason:
    """The day x every instrument of the ``instruments`` dynamic partitions, in blocks."""
    registered = registered_instruments(context)
    if not registered:
        return no_instruments_skip()
    return range_run_requests_for_day(registered, day, configured_batch_size())


def build_instrument_daily_schedule(job: AssetJob) -> dg.ScheduleDefinition:
    """The ``instrument`` profile's daily schedule: yesterday x every instrument of the
    ``instruments`` dynamic partitions, in blocks (range runs of ``job``)."""
    return _daily_schedule(
        job,
        "Every day at 00:30 UTC: materializes the previous UTC day of every registered "
        f"instrument in range runs of ${BATCH_SIZE_ENV_VAR} instruments (default "
        f"{DEFAULT_BATCH_SIZE}; at most {MAX_RUNS_PER_TICK} runs).",
        _instrument_blocks_for_day,
    )


def exchange_run_requests_for_day(exchanges: Sequence[str], day: dt.date) -> list[dg.RunRequest]:
    """One run per exchange for ``day`` (each writes every instrument of its exchange-day)."""
    requests = []
    for exchange in exchanges:
        key = dg.MultiPartitionKey({DATE_DIMENSION: day.isoformat(), EXCHANGE_DIMENSION: exchange})
        requests.append(dg.RunRequest(run_key=str(key), partition_key=key))
    return requests


def build_exchange_daily_schedule(
    job: AssetJob, exchanges: Sequence[str]
) -> dg.ScheduleDefinition:
    """The ``exchange`` profile's daily schedule: yesterday x each of ``exchanges``."""
    exchange_keys = sorted(exchanges)
    return _daily_schedule(
        job,
        "Every day at 00:30 UTC: materializes the previous UTC day of every configured "
        "instrument, one run per exchange (one commit per table each).",
        lambda _context, day: exchange_run_requests_for_day(exchange_keys, day),
    )



def build_daily_schedule(
    profile: PartitionProfile, job: AssetJob, exchanges: Sequence[str] = ()
) -> dg.ScheduleDefinition:
    """``daily_market_data_schedule`` of ``profile`` over ``job`` (``exchanges``: the static
    exchange keys of the ``exchange`` profile).

    Example:
        >>> from cb_storage_dagster.orchestration.profiles import build_pipeline
        >>> build_pipeline("exchange", ["binance:BTC"]).schedule("daily_market_data_schedule").cron_schedule
        '30 0 * * *'
    """
    if profile is PartitionProfile.EXCHANGE:
        return build_exchange_daily_schedule(job, exchanges)
    return build_instrument_daily_schedule(job)
