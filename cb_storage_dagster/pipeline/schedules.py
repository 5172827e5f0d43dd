"""Schedules of the market-data pipeline.

:data:`daily_market_data_schedule` runs at 00:30 UTC and requests yesterday's (UTC)
partition of every instrument currently registered in the ``instruments`` dynamic
partitions (which :data:`~cb_storage_dagster.pipeline.sensors.instruments_sensor` keeps in
sync with the configuration).
"""

import datetime as dt

import dagster as dg

from cb_storage_dagster.adapters.partitions import (
    INSTRUMENTS_PARTITIONS_NAME,
    decode_instrument,
    encode_multi_key,
)
from cb_storage_dagster.pipeline.jobs import market_data_job
from cb_storage_dagster.storage.keys import PartitionSlot

__all__ = [
    "DAILY_CRON",
    "SCHEDULES",
    "daily_market_data_schedule",
    "previous_utc_day",
    "run_requests_for_day",
]

DAILY_CRON = "30 0 * * *"
"""00:30 UTC: half an hour after the day closed, so late trades of the source have landed."""


def previous_utc_day(moment: dt.datetime) -> dt.date:
    """The UTC day before ``moment`` (a naive ``moment`` is taken as UTC).

    >>> previous_utc_day(dt.datetime(2024, 3, 1, 0, 30, tzinfo=dt.timezone.utc))
    datetime.date(2024, 2, 29)
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).date() - dt.timedelta(days=1)


def run_requests_for_day(instruments: list[str], day: dt.date) -> list[dg.RunRequest]:
    """One run request per instrument for ``day``; the run key makes a re-evaluated tick
    launch nothing twice."""
    requests = []
    for instrument in instruments:
        partition_key = encode_multi_key(PartitionSlot(*decode_instrument(instrument), day))
        requests.append(dg.RunRequest(run_key=str(partition_key), partition_key=partition_key))
    return requests


@dg.schedule(
    name="daily_market_data_schedule",
    job=market_data_job,
    cron_schedule=DAILY_CRON,
    execution_timezone="UTC",
    description=(
        "Every day at 00:30 UTC: materializes the previous UTC day of every registered "
        "instrument (one run per instrument)."
    ),
)
def daily_market_data_schedule(
    context: dg.ScheduleEvaluationContext,
) -> list[dg.RunRequest] | dg.SkipReason:
    """Yesterday's partition of every instrument of the ``instruments`` dynamic partitions."""
    moment = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    day = previous_utc_day(moment)
    instruments = sorted(context.instance.get_dynamic_partitions(INSTRUMENTS_PARTITIONS_NAME))
    if not instruments:
        return dg.SkipReason(
            f"No instruments registered in the '{INSTRUMENTS_PARTITIONS_NAME}' partitions yet; "
            "turn on instruments_sensor (or add partitions) and the next tick will run."
        )
    return run_requests_for_day(instruments, day)


SCHEDULES = [daily_market_data_schedule]
