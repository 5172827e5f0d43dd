"""The day as it happens: intraday merges of trades and candles, and order-book snapshots.

Both schedules run during the UTC day and *merge* into that day's partitions (run tag
``cb_storage/write_mode=merge``). :func:`build_intraday_schedules` builds them for either
profile over that pipeline's jobs; what differs is only which partitions a tick's runs cover:

* ``instrument`` profile: one run per tick for every registered instrument (a partition
  range: the day x all instruments of the ``instruments`` dynamic partitions);
* ``exchange`` profile: one run per exchange per tick (the exchange-day partition, every
  configured instrument of the exchange, one commit per table).

The schedules:

* ``intraday_market_data_schedule`` (every :data:`INTRADAY_INTERVAL_MINUTES`): the
  ``trades`` of the window ``[tick - INTRADAY_LOOKBACK, tick)`` and the ``ohlcv_1m``
  candles built from every trade of the day stored so far. The window overlaps the previous
  tick's, so a late trade or a late tick is still merged; rows already stored are no-ops.
* ``order_book_snapshot_schedule`` (every ``SNAPSHOT_INTERVAL_MINUTES``): one book per
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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import dagster as dg

from cb_storage_dagster.orchestration.assets import SNAPSHOT_INTERVAL_MINUTES
from cb_storage_dagster.orchestration.jobs import MarketDataJobs
from cb_storage_dagster.orchestration.partitions import DATE_DIMENSION, EXCHANGE_DIMENSION, PartitionProfile
from cb_storage_dagster.orchestration.run_tags import snapshot_tags, window_tags
from cb_storage_dagster.orchestration.schedules import no_instruments_skip, range_tags, registered_instruments

if TYPE_CHECKING:
    from cb_storage_dagster.orchestration.dagster_internals import AssetJob

__all__ = [
    "INTRADAY_INTERVAL_MINUTES",
    "INTRADAY_LOOKBACK",
    "build_intraday_schedules",
    "exchange_intraday_run_requests",
    "exchange_snapshot_run_requests",
    "intraday_run_request",
    "intraday_window",
    "snapshot_run_request",
]

INTRADAY_INTERVAL_MINUTES = 15
INTRADAY_LOOKBACK = dt.timedelta(minutes=2 * INTRADAY_INTERVAL_MINUTES)
"""Each tick re-fetches the previous tick's window too: merging it again costs nothing when
unchanged and catches trades the exchange reported late or a tick that was missed."""

TickRequests = Callable[[dg.ScheduleEvaluationContext, dt.datetime], list[dg.RunRequest] | dg.SkipReason]
"""The runs of one tick of a merge schedule (or why there are none)."""


def _every(minutes: int) -> str:
    if minutes < 1 or 60 % minutes:
        raise ValueError(f"An interval of {minutes} minutes does not divide the hour; use 1-60 minutes dividing 60.")
    return "0 * * * *" if minutes == 60 else f"*/{minutes} * * * *"


def _merge_schedule(
    name: str, job: AssetJob, minutes: int, description: str, requests: TickRequests
) -> dg.ScheduleDefinition:
    """A schedule that, every ``minutes`` (UTC), launches the runs ``requests`` asks for."""

    @dg.schedule(
        name=name, job=job, cron_schedule=_every(minutes), execution_timezone="UTC", description=description
    )
    def merge_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        return requests(context, context.scheduled_execution_time or dt.datetime.now(dt.UTC))

    return merge_schedule


def _over_registered_instruments(run_request: Callable[[list[str], dt.datetime], dg.RunRequest]) -> TickRequests:
    """The ``instrument`` profile: one run over every registered instrument, or a skip while
    none is registered."""

    def requests(context: dg.ScheduleEvaluationContext, tick: dt.datetime) -> list[dg.RunRequest] | dg.SkipReason:
        instruments = registered_instruments(context)
        if not instruments:
            return no_instruments_skip()
        return [run_request(instruments, tick)]

    return requests


def _per_exchange(
    exchanges: Sequence[str], run_requests: Callable[[Sequence[str], dt.datetime], list[dg.RunRequest]]
) -> TickRequests:
    """The ``exchange`` profile: one run per configured exchange."""
    return lambda _context, tick: run_requests(exchanges, tick)


def intraday_window(tick: dt.datetime) -> tuple[dt.date, dt.datetime, dt.datetime]:
    """``(day, start, end)`` of the intraday run of ``tick``: the window
    ``[tick - INTRADAY_LOOKBACK, tick)``, clipped to the UTC day of its last instant (the
    00:00 tick closes the previous day).

    >>> intraday_window(dt.datetime(2024, 1, 2, 0, 0, tzinfo=dt.UTC))[1].isoformat()
    '2024-01-01T23:30:00+00:00'
    """
    end = tick.astimezone(dt.UTC).replace(second=0, microsecond=0)
    day = (end - dt.timedelta(microseconds=1)).date()
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return day, max(end - INTRADAY_LOOKBACK, midnight), end


def intraday_run_request(instruments: list[str], tick: dt.datetime) -> dg.RunRequest:
    """The ``instrument`` profile's intraday run of ``tick``: the day of :func:`intraday_window`
    x every instrument registered from ``instruments[0]`` to ``instruments[-1]``.

    >>> tick = dt.datetime(2024, 1, 2, 0, 0, tzinfo=dt.UTC)
    >>> intraday_run_request(["binance:BTC"], tick).tags["cb_storage/window_start"]
    '2024-01-01T23:30:00+00:00'
    """
    day, start, end = intraday_window(tick)
    return dg.RunRequest(
        run_key=f"intraday:{end.isoformat()}", tags={**window_tags(start, end), **range_tags(instruments, day)}
    )


def exchange_intraday_run_requests(exchanges: Sequence[str], tick: dt.datetime) -> list[dg.RunRequest]:
    """The ``exchange`` profile's intraday runs of ``tick``: one per exchange, each over the
    exchange-day of :func:`intraday_window`.

    >>> tick = dt.datetime(2024, 1, 2, 12, 15, tzinfo=dt.UTC)
    >>> [str(r.partition_key) for r in exchange_intraday_run_requests(["binance", "kraken"], tick)]
    ['2024-01-02|binance', '2024-01-02|kraken']
    """
    day, start, end = intraday_window(tick)
    return [
        dg.RunRequest(run_key=f"intraday:{end.isoformat()}:{exchange}", partition_key=_exchange_day(day, exchange),
                      tags=window_tags(start, end))
        for exchange in exchanges
    ]


def snapshot_run_request(instruments: list[str], tick: dt.datetime) -> dg.RunRequest:
    """The snapshot run of ``tick``: every instrument's book, stamped ``tick``, into its day."""
    at = tick.astimezone(dt.UTC).replace(microsecond=0)
    return dg.RunRequest(
        run_key=f"order_book_snapshot:{at.isoformat()}", tags={**snapshot_tags(at), **range_tags(instruments, at.date())}
    )


def exchange_snapshot_run_requests(exchanges: Sequence[str], tick: dt.datetime) -> list[dg.RunRequest]:
    """The snapshot runs of ``tick`` in the ``exchange`` profile: one per exchange, each taking
    the book of every configured instrument of the exchange, stamped ``tick``."""
    at = tick.astimezone(dt.UTC).replace(microsecond=0)
    return [
        dg.RunRequest(run_key=f"order_book_snapshot:{at.isoformat()}:{exchange}",
                      partition_key=_exchange_day(at.date(), exchange), tags=snapshot_tags(at))
        for exchange in exchanges
    ]


def _exchange_day(day: dt.date, exchange: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({DATE_DIMENSION: day.isoformat(), EXCHANGE_DIMENSION: exchange})


def build_intraday_schedules(
    profile: PartitionProfile, jobs: MarketDataJobs, exchanges: Sequence[str] = ()
) -> list[dg.ScheduleDefinition]:
    """``intraday_market_data_schedule`` and ``order_book_snapshot_schedule`` of ``profile``
    over its ``jobs`` (``exchanges``: the static exchange keys of the ``exchange`` profile)."""
    if profile is PartitionProfile.EXCHANGE:
        keys = sorted(exchanges)
        intraday = _per_exchange(keys, exchange_intraday_run_requests)
        snapshots = _per_exchange(keys, exchange_snapshot_run_requests)
        each = "every configured instrument (one run per exchange)"
    else:
        intraday = _over_registered_instruments(intraday_run_request)
        snapshots = _over_registered_instruments(snapshot_run_request)
        each = "every registered instrument (one run)"
    lookback = int(INTRADAY_LOOKBACK.total_seconds() // 60)
    return [
        _merge_schedule(
            "intraday_market_data_schedule", jobs.intraday_market_data_job, INTRADAY_INTERVAL_MINUTES,
            f"Every {INTRADAY_INTERVAL_MINUTES} minutes: merges the newest trades (the last {lookback} "
            f"minutes) and today's 1-minute candles into today's partition of {each}; the nightly "
            "schedule replaces the day once it is over.",
            intraday,
        ),
        _merge_schedule(
            "order_book_snapshot_schedule", jobs.order_book_snapshot_job, SNAPSHOT_INTERVAL_MINUTES,
            f"Every {SNAPSHOT_INTERVAL_MINUTES} minutes: merges one order-book snapshot of {each} "
            "into today's partition (exchanges keep no order-book history).",
            snapshots,
        ),
    ]
