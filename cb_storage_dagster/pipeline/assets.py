"""The market-data assets: raw trades and order books, and the candles built from them.

Every asset is partitioned by UTC day x instrument (:func:`market_data_partitions`). A run
covers one partition or several (a range or a batch of a backfill): each asset produces
the rows of *every* partition of its run in one frame, and the ``market_data_io_manager``
writes them, one table per asset (it reads ``data_type`` and the optional ``format`` from
the asset metadata).

Lineage (group in brackets)::

    trades [raw_market_data] ──> ohlcv_1m [candles] ──> ohlcv_1d [candles]
    order_book [raw_market_data]
"""

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

import dagster as dg
import pandas as pd

from cb_storage_dagster.adapters.failures import storage_failures
from cb_storage_dagster.adapters.partitions import decode_multi_key, market_data_partitions
from cb_storage_dagster.pipeline.run_tags import run_window, snapshot_instant
from cb_storage_dagster.pipeline.sources import MarketDataSource
from cb_storage_dagster.pipeline.transforms import empty_frame, resample_ohlcv, trades_to_ohlcv
from cb_storage_dagster.storage.keys import DataType, PartitionSlot

__all__ = [
    "ASSETS",
    "MARKET_DATA_BACKFILL_POLICY",
    "MARKET_DATA_PARTITIONS",
    "MARKET_DATA_RETRY_POLICY",
    "ohlcv_1d",
    "ohlcv_1m",
    "order_book",
    "run_partition_slots",
    "trades",
]

T = TypeVar("T")

SNAPSHOT_INTERVAL_MINUTES = 15
"""Minutes between order-book snapshots (the order_book_snapshot_schedule's interval)."""

MARKET_DATA_PARTITIONS = market_data_partitions(end_offset=1)
"""UTC day x instrument, shared by every asset and check of the pipeline. Today is a
partition too: the intraday and order-book snapshot schedules merge into it during the day,
and the nightly schedule replaces it once it is over."""

MARKET_DATA_BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=31)
"""A UI backfill writes up to a month of partitions per run: one commit per batch instead
of one per day, while a failed run only redoes its own batch."""

MARKET_DATA_RETRY_POLICY = dg.RetryPolicy(
    max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
"""Retries transient failures (source hiccups, storage commit conflicts) after ~5 s, ~10 s; a
non-transient storage error (bad data, bad key) fails the step once (``adapters/failures.py``)."""

IO_MANAGER_KEY = "market_data_io_manager"
RAW_GROUP = "raw_market_data"
CANDLES_GROUP = "candles"
KINDS = {"delta", "pandas"}

_MARKET_DATA_ASSET = {
    "partitions_def": MARKET_DATA_PARTITIONS,
    "io_manager_key": IO_MANAGER_KEY,
    "kinds": KINDS,
    "backfill_policy": MARKET_DATA_BACKFILL_POLICY,
    "retry_policy": MARKET_DATA_RETRY_POLICY,
}
"""What every market-data asset shares: partitions, storage, backfill batches and retries."""


def run_partition_slots(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> list[PartitionSlot]:
    """The (exchange, coin, UTC day) slots of every partition of the run, sorted.

    A run covers one partition (``context.partition_key``) or several (a range, or a batch
    of a backfill); ``context.partition_keys`` lists them in both cases.
    """
    return sorted(decode_multi_key(key) for key in context.partition_keys)


def _fetch_for_run(
    context: dg.AssetExecutionContext,
    data_type: DataType,
    fetch: Callable[[str, str, dt.date], pd.DataFrame],
) -> pd.DataFrame:
    with storage_failures(context.instance, context.run.run_id):  # bad keys/data: fail once, no retry
        slots = run_partition_slots(context)
        frames = [fetch(slot.exchange, slot.coin, slot.date) for slot in slots]
    frames = [frame for frame in frames if not frame.empty]
    data = pd.concat(frames, ignore_index=True) if frames else empty_frame(data_type)
    context.add_output_metadata(
        {
            "partition_count": len(slots),
            "instruments": sorted({f"{slot.exchange}:{slot.coin}" for slot in slots}),
            "first_day": slots[0].date.isoformat(),
            "last_day": slots[-1].date.isoformat(),
        }
    )
    return data


@dg.asset(group_name=RAW_GROUP, metadata={"data_type": DataType.TRADES.value}, **_MARKET_DATA_ASSET)
def trades(context: dg.AssetExecutionContext, market_data_source: MarketDataSource) -> pd.DataFrame:
    """Every trade of one instrument and UTC day, as the market-data source reports it.

    An intraday run (tagged with a window by the intraday schedule) fetches only the
    window's trades, which the IO manager merges into the day.

    Columns: exchange, coin, timestamp, trade_id, price, amount, side ("buy"/"sell").
    """
    window = _tag_value(run_window, context)
    if window is None:
        return _fetch_for_run(context, DataType.TRADES, market_data_source.fetch_trades)
    start, end = window

    def fetch_window(exchange: str, coin: str, day: dt.date) -> pd.DataFrame:
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        lo, hi = max(start, midnight), min(end, midnight + dt.timedelta(days=1))
        if lo >= hi:
            return empty_frame(DataType.TRADES)
        return market_data_source.fetch_trades_between(exchange, coin, lo, hi)

    return _fetch_for_run(context, DataType.TRADES, fetch_window)


NO_ORDER_BOOK_HISTORY = (
    "Exchanges keep no order-book history, so order_book cannot be fetched for a past day "
    "(nor replaced by a daily run or a backfill). Its partitions fill up during the day from "
    "the order_book_snapshot_schedule, which merges a snapshot of every instrument every "
    "{interval} minutes; turn that schedule on to collect order books from now on."
)


@dg.asset(
    group_name=RAW_GROUP, metadata={"data_type": DataType.ORDER_BOOK.value},
    output_required=False, **_MARKET_DATA_ASSET,
)
def order_book(
    context: dg.AssetExecutionContext, market_data_source: MarketDataSource
) -> Iterator[dg.Output[pd.DataFrame]]:
    """Order-book snapshots of one instrument and UTC day (levels per side, 0 = best).

    Only runs of the order-book snapshot schedule materialize it: each merges one snapshot
    per instrument, stamped with the tick's instant, into that day. Any other run (the
    daily schedule, a backfill) skips it with a log message, since no history exists.

    Columns: exchange, coin, timestamp, side ("bid"/"ask"), level, price, amount.
    """
    at = _tag_value(snapshot_instant, context)
    if at is None:
        context.log.warning(NO_ORDER_BOOK_HISTORY.format(interval=SNAPSHOT_INTERVAL_MINUTES))
        return
    wrong = [slot for slot in run_partition_slots(context) if slot.date != at.date()]
    if wrong:
        raise dg.Failure(
            f"An order-book snapshot taken at {at.isoformat()} belongs to {at.date()}, not to "
            f"{', '.join(sorted({s.date.isoformat() for s in wrong}))}. Run the snapshot for "
            "today's partitions only.",
            allow_retries=False,  # the same tags fail the same way
        )
    yield dg.Output(
        _fetch_for_run(
            context, DataType.ORDER_BOOK,
            lambda exchange, coin, _day: market_data_source.fetch_order_book_snapshot(exchange, coin, at),
        )
    )


def _tag_value(parse: Callable[[Mapping[str, str]], T], context: dg.AssetExecutionContext) -> T:
    try:
        return parse(context.run.tags)
    except ValueError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from None


@dg.asset(group_name=CANDLES_GROUP, metadata={"data_type": DataType.OHLCV.value}, **_MARKET_DATA_ASSET)
def ohlcv_1m(trades: pd.DataFrame) -> pd.DataFrame:
    """One-minute candles built from the trades; minutes without trades have no candle.

    Columns: exchange, coin, timestamp (candle open, UTC), open, high, low, close, volume.
    """
    return trades_to_ohlcv(trades, "1min")


@dg.asset(group_name=CANDLES_GROUP, metadata={"data_type": DataType.OHLCV.value}, **_MARKET_DATA_ASSET)
def ohlcv_1d(ohlcv_1m: pd.DataFrame) -> pd.DataFrame:
    """One daily candle per instrument and UTC day, combined from the one-minute candles.

    Columns: exchange, coin, timestamp (midnight UTC), open, high, low, close, volume.
    """
    return resample_ohlcv(ohlcv_1m, "1D")


ASSETS = [trades, order_book, ohlcv_1m, ohlcv_1d]
