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

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

import dagster as dg

from cb_storage_dagster.orchestration.assets import (
    SNAPSHOT_INTERVAL_MINUTES,
    ohlcv_1m,
    order_book,
    trades,
)
from cb_storage_dagster.orchestration.checks import ohlcv_1m_invariants, order_book_is_valid, trades_are_valid
from cb_storage_dagster.orchestration.run_tags import snapshot_tags, window_tags
from cb_storage_dagster.orchestration.schedules import no_instruments_skip, range_tags, registered_instruments

if TYPE_CHECKING:
    from cb_storage_dagster.orchestration.dagster_internals import AssetJob

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


def _merge_schedule(
    name: str,
    job: AssetJob,
    minutes: int,
    description: str,
    run_request: Callable[[list[str], dt.datetime], dg.RunRequest],
) -> dg.ScheduleDefinition:
    """A schedule that, every ``minutes`` (UTC), asks ``run_request`` for the tick's run over
    every registered instrument, or skips while none is registered."""

    @dg.schedule(
        name=name, job=job, cron_schedule=_every(minutes), execution_timezone="UTC", description=description
    )
    def merge_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        instruments = registered_instruments(context)
        if not instruments:
            return no_instruments_skip()
        return run_request(instruments, context.scheduled_execution_time or dt.datetime.now(dt.UTC))

    return merge_schedule


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
    return dg.RunRequest(
        run_key=f"intraday:{end.isoformat()}", tags={**window_tags(start, end), **range_tags(instruments, day)}
    )


def snapshot_run_request(instruments: list[str], tick: dt.datetime) -> dg.RunRequest:
    """The snapshot run of ``tick``: every instrument's book, stamped ``tick``, into its day."""
    at = tick.astimezone(dt.UTC).replace(microsecond=0)
    return dg.RunRequest(
        run_key=f"order_book_snapshot:{at.isoformat()}", tags={**snapshot_tags(at), **range_tags(instruments, at.date())}
    )


intraday_market_data_schedule = _merge_schedule(
    "intraday_market_data_schedule",
    intraday_market_data_job,
    INTRADAY_INTERVAL_MINUTES,
    f"Every {INTRADAY_INTERVAL_MINUTES} minutes: merges the newest trades (the last "
    f"{int(INTRADAY_LOOKBACK.total_seconds() // 60)} minutes) and today's 1-minute candles "
    "into today's partition of every instrument; the nightly schedule replaces the day once it is over.",
    intraday_run_request,
)

order_book_snapshot_schedule = _merge_schedule(
    "order_book_snapshot_schedule",
    order_book_snapshot_job,
    SNAPSHOT_INTERVAL_MINUTES,
    f"Every {SNAPSHOT_INTERVAL_MINUTES} minutes: merges one order-book snapshot of every "
    "instrument into today's partition (exchanges keep no order-book history).",
    snapshot_run_request,
)

INTRADAY_JOBS = [intraday_market_data_job, order_book_snapshot_job]
INTRADAY_SCHEDULES = [intraday_market_data_schedule, order_book_snapshot_schedule]
