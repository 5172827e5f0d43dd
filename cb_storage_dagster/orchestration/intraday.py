"""The day as it happens: intraday merges of trades and candles, and order-book snapshots.

Both schedules run during the UTC day and *merge* into that day's partitions (run tag
``cb_storage/write_mode=merge``), one run per tick for every registered instrument (a
partition range: the day x all instruments):

* :data:`intraday_market_data_schedule` (every :data:`INTRADAY_INTERVAL_MINUTES`): the
  ``trades`` of the window ``[tick - INTRADAY_LOOKBACK, tick)`` and the ``ohlcv_1m``
  candles built from every trade of the day stored so far. The window overlaps the previous
  tick's, so a late trade or a late tick is still merged; rows already stored are no-ops.
* :data:`order_book_snapshot_schedule` (every ``SNAPSHOT_INTERVAL_MINUTES``): one book per
  instrument, stamped with the tick, merged into the day (exchanges keep no order-book
  history, so this is the only way order books are stored).

Why merged rows plus the nightly run are exactly the day's rows: the nightly
``daily_market_data_schedule`` *replaces* the finished day's trades and candles with the
source's full day, which removes whatever the intraday merges left (for instance a trade the
exchange later corrected); order books are never replaced (the daily asset skips them), so
the day keeps exactly the snapshots merged into it.
"""

import datetime as dt

import dagster as dg

from cb_storage_dagster.domain.keys import PartitionSlot, decode_instrument
from cb_storage_dagster.orchestration.assets import (
    SNAPSHOT_INTERVAL_MINUTES,
    ohlcv_1m,
    order_book,
    trades,
)
from cb_storage_dagster.orchestration.checks import ohlcv_1m_invariants, order_book_is_valid, trades_are_valid
from cb_storage_dagster.orchestration.partitions import (
    INSTRUMENTS_PARTITIONS_NAME,
    encode_multi_key,
)
from cb_storage_dagster.orchestration.run_tags import snapshot_tags, window_tags

__all__ = [
    "INTRADAY_INTERVAL_MINUTES",
    "INTRADAY_JOBS",
    "INTRADAY_LOOKBACK",
    "INTRADAY_SCHEDULES",
    "intraday_market_data_job",
    "intraday_market_data_schedule",
    "intraday_run_request",
    "order_book_snapshot_job",
    "order_book_snapshot_schedule",
    "snapshot_run_request",
]

INTRADAY_INTERVAL_MINUTES = 15
INTRADAY_LOOKBACK = dt.timedelta(minutes=2 * INTRADAY_INTERVAL_MINUTES)
"""Each tick re-fetches the previous tick's window too: merging it again costs nothing when
unchanged and catches trades the exchange reported late or a tick that was missed."""


def _every(minutes: int) -> str:
    if minutes < 1 or 60 % minutes:
        raise ValueError(f"An interval of {minutes} minutes does not divide the hour; use 1-60 minutes dividing 60.")
    return "0 * * * *" if minutes == 60 else f"*/{minutes} * * * *"


intraday_market_data_job = dg.define_asset_job(
    name="intraday_market_data_job",
    # The day is not over: only the row-level checks apply (coverage and "every partition
    # has rows" are for finished days and run with the nightly job).
    selection=dg.AssetSelection.assets(trades, ohlcv_1m).without_checks()
    | dg.AssetSelection.checks(trades_are_valid, ohlcv_1m_invariants),
    description="Merges the newest trades of today and their 1-minute candles into today's partitions.",
)

order_book_snapshot_job = dg.define_asset_job(
    name="order_book_snapshot_job",
    selection=dg.AssetSelection.assets(order_book).without_checks() | dg.AssetSelection.checks(order_book_is_valid),
    description="Takes one order-book snapshot per instrument and merges it into today's partitions.",
)


def _day_range_request(
    instruments: list[str], day: dt.date, run_key: str, tags: dict[str, str]
) -> dg.RunRequest:
    """One run over ``day`` x every instrument (a partition range in registration order)."""
    first = encode_multi_key(PartitionSlot(*decode_instrument(instruments[0]), day))
    last = encode_multi_key(PartitionSlot(*decode_instrument(instruments[-1]), day))
    return dg.RunRequest(
        run_key=run_key,
        tags={
            **tags,
            "dagster/asset_partition_range_start": str(first),
            "dagster/asset_partition_range_end": str(last),
        },
    )


def intraday_run_request(instruments: list[str], tick: dt.datetime) -> dg.RunRequest:
    """The intraday run of ``tick``: the window ``[tick - INTRADAY_LOOKBACK, tick)``, clipped
    to the UTC day of its last instant (the 00:00 tick closes the previous day).

    >>> tick = dt.datetime(2024, 1, 2, 0, 0, tzinfo=dt.UTC)
    >>> intraday_run_request(["binance:BTC"], tick).tags["cb_storage/window_start"]
    '2024-01-01T23:30:00+00:00'
    """
    end = tick.astimezone(dt.UTC).replace(second=0, microsecond=0)
    day = (end - dt.timedelta(microseconds=1)).date()
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    start = max(end - INTRADAY_LOOKBACK, midnight)
    return _day_range_request(instruments, day, f"intraday:{end.isoformat()}", window_tags(start, end))


def snapshot_run_request(instruments: list[str], tick: dt.datetime) -> dg.RunRequest:
    """The snapshot run of ``tick``: every instrument's book, stamped ``tick``, into its day."""
    at = tick.astimezone(dt.UTC).replace(microsecond=0)
    return _day_range_request(instruments, at.date(), f"order_book_snapshot:{at.isoformat()}", snapshot_tags(at))


def _registered(context: dg.ScheduleEvaluationContext) -> list[str]:
    # Registration order (not sorted): a partition range spans instruments in that order.
    return list(context.instance.get_dynamic_partitions(INSTRUMENTS_PARTITIONS_NAME))


def _no_instruments() -> dg.SkipReason:
    return dg.SkipReason(
        f"No instruments registered in the '{INSTRUMENTS_PARTITIONS_NAME}' partitions yet; "
        "turn on instruments_sensor (or add partitions) and the next tick will run."
    )


@dg.schedule(
    name="intraday_market_data_schedule",
    job=intraday_market_data_job,
    cron_schedule=_every(INTRADAY_INTERVAL_MINUTES),
    execution_timezone="UTC",
    description=(
        f"Every {INTRADAY_INTERVAL_MINUTES} minutes: merges the newest trades (the last "
        f"{int(INTRADAY_LOOKBACK.total_seconds() // 60)} minutes) and today's 1-minute candles "
        "into today's partition of every instrument; the nightly schedule replaces the day once it is over."
    ),
)
def intraday_market_data_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    instruments = _registered(context)
    if not instruments:
        return _no_instruments()
    return intraday_run_request(instruments, context.scheduled_execution_time or dt.datetime.now(dt.UTC))


@dg.schedule(
    name="order_book_snapshot_schedule",
    job=order_book_snapshot_job,
    cron_schedule=_every(SNAPSHOT_INTERVAL_MINUTES),
    execution_timezone="UTC",
    description=(
        f"Every {SNAPSHOT_INTERVAL_MINUTES} minutes: merges one order-book snapshot of every "
        "instrument into today's partition (exchanges keep no order-book history)."
    ),
)
def order_book_snapshot_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    instruments = _registered(context)
    if not instruments:
        return _no_instruments()
    return snapshot_run_request(instruments, context.scheduled_execution_time or dt.datetime.now(dt.UTC))


INTRADAY_JOBS = [intraday_market_data_job, order_book_snapshot_job]
INTRADAY_SCHEDULES = [intraday_market_data_schedule, order_book_snapshot_schedule]
