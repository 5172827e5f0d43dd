"""The market-data assets: raw trades and order books, and the candles built from them.

Every asset is partitioned by UTC day x instrument (:func:`market_data_partitions`, the
``instrument`` profile: the module-level assets below) or, built by
:func:`build_market_data_assets`, by UTC day x exchange (the ``exchange`` profile, where one
partition is every configured instrument of an exchange-day). A run covers one partition or
several (a range or a batch of a backfill): each asset produces the rows of *every*
instrument-day of its run in one frame, and the ``market_data_io_manager`` writes them in one
commit per table, one table per asset (it reads ``data_type`` and the optional ``format``
from the asset metadata). Each asset joins the concurrency pool of its table
(:func:`pool_of`), which bounds how many steps write one table at once.

Lineage (group in brackets)::

    trades [raw_market_data] ──> ohlcv_1m [candles] ──> ohlcv_1d [candles]
    order_book [raw_market_data]
"""

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import dagster as dg
import pandas as pd

from cb_storage_dagster.domain.keys import DataType, PartitionSlot
from cb_storage_dagster.orchestration.asset_metadata import per_instrument_metadata
from cb_storage_dagster.orchestration.failures import storage_failures
from cb_storage_dagster.orchestration.partitions import market_data_partitions, slots_of_keys
from cb_storage_dagster.orchestration.run_tags import run_window, snapshot_instant
from cb_storage_dagster.settings import PipelineSettings
from cb_storage_dagster.sources.base import MarketDataSource
from cb_storage_dagster.transforms import empty_frame, resample_ohlcv, trades_to_ohlcv

__all__ = [
    "ASSETS",
    "MarketDataAssets",
    "MARKET_DATA_BACKFILL_POLICY",
    "MARKET_DATA_PARTITIONS",
    "MARKET_DATA_RETRY_POLICY",
    "INSTRUMENT_PROFILE_ASSETS",
    "NO_ORDER_BOOK_HISTORY",
    "SNAPSHOT_INTERVAL_MINUTES",
    "ohlcv_1d",
    "build_market_data_assets",
    "ohlcv_1m",
    "order_book",
    "pool_of",
    "run_partition_slots",
    "trades",
]

T = TypeVar("T")

SNAPSHOT_INTERVAL_MINUTES = 15
"""Minutes between order-book snapshots (the order_book_snapshot_schedule's interval)."""

MARKET_DATA_PARTITIONS = market_data_partitions(end_offset=1)
"""UTC day x instrument, shared by every asset and check of the ``instrument`` profile. Today
is a partition too: the intraday and order-book snapshot schedules merge into it during the
day, and the nightly schedule replaces it once it is over."""

MARKET_DATA_BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=31)
"""A UI backfill writes up to a month of partitions per run: one commit per batch instead
of one per day, while a failed run only redoes its own batch."""


def market_data_backfill_policy() -> dg.BackfillPolicy:
    """:data:`MARKET_DATA_BACKFILL_POLICY`, or one run per range when
    ``CB_STORAGE_BACKFILL_SINGLE_RUN=true`` (what ``dg launch --partition-range`` requires: it
    refuses assets whose policy is not single-run)."""
    if PipelineSettings.load().backfill_single_run:
        return dg.BackfillPolicy.single_run()
    return MARKET_DATA_BACKFILL_POLICY

MARKET_DATA_RETRY_POLICY = dg.RetryPolicy(
    max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
"""Retries transient failures (source hiccups, storage commit conflicts) after ~5 s, ~10 s; a
non-transient storage error (bad data, bad key) fails the step once (``orchestration/failures.py``)."""

IO_MANAGER_KEY = "market_data_io_manager"
RAW_GROUP = "raw_market_data"
CANDLES_GROUP = "candles"
KINDS = {"delta", "pandas"}


def pool_of(table: str) -> str:
    """The Dagster concurrency pool of the steps that write ``table``.

    dagster.yaml limits every pool (``concurrency: pools: default_limit``), so at most that
    many steps commit to one Delta table at the same moment; the rest wait in the queue.

    >>> pool_of("ohlcv_1m")
    'delta_ohlcv_1m'
    """
    return f"delta_{table}"


def run_partition_slots(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    coins: Mapping[str, Sequence[str]] | None = None,
) -> list[PartitionSlot]:
    """The (exchange, coin, UTC day) slots of every partition of the run, sorted.

    A run covers one partition (``context.partition_key``) or several (a range, or a batch
    of a backfill); ``context.partition_keys`` lists them in both cases. An exchange-day
    partition stands for every coin ``coins`` lists for its exchange.
    """
    return slots_of_keys(context.partition_keys, coins)


@dataclass(frozen=True)
class MarketDataAssets:
    """The four market-data assets of one partition profile.

    Example:
        >>> built = build_market_data_assets(MARKET_DATA_PARTITIONS)
        >>> [a.key.to_user_string() for a in built.all]
        ['trades', 'order_book', 'ohlcv_1m', 'ohlcv_1d']
    """

    trades: dg.AssetsDefinition
    order_book: dg.AssetsDefinition
    ohlcv_1m: dg.AssetsDefinition
    ohlcv_1d: dg.AssetsDefinition
    partitions_def: dg.PartitionsDefinition
    coins: Mapping[str, Sequence[str]] | None = None
    """For the exchange profile: the coins of each exchange that a partition stands for."""

    @property
    def all(self) -> list[dg.AssetsDefinition]:
        return [self.trades, self.order_book, self.ohlcv_1m, self.ohlcv_1d]

    def slots(self, context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[PartitionSlot]:
        """The instrument-days of the run (see :func:`run_partition_slots`)."""
        return run_partition_slots(context, self.coins)


def build_market_data_assets(
    partitions_def: dg.PartitionsDefinition,
    coins: Mapping[str, Sequence[str]] | None = None,
) -> MarketDataAssets:
    """``trades``, ``order_book``, ``ohlcv_1m`` and ``ohlcv_1d`` over ``partitions_def``.

    ``partitions_def`` is date x instrument (``coins`` unused) or date x exchange, where
    ``coins`` maps each exchange to the coins one of its exchange-day partitions fetches.
    """

    def slots_of(context: dg.AssetExecutionContext) -> list[PartitionSlot]:
        return run_partition_slots(context, coins)

    def options(table: str) -> dict[str, object]:
        # What every market-data asset shares: partitions, storage, backfill batches,
        # retries, and the writer pool of its table.
        return {
            "partitions_def": partitions_def,
            "io_manager_key": IO_MANAGER_KEY,
            "kinds": KINDS,
            "backfill_policy": market_data_backfill_policy(),
            "retry_policy": MARKET_DATA_RETRY_POLICY,
            "pool": pool_of(table),
        }

    def fetch_for_run(
        context: dg.AssetExecutionContext,
        data_type: DataType,
        fetch: Callable[[str, str, dt.date], pd.DataFrame],
    ) -> pd.DataFrame:
        with storage_failures(context.instance, context.run.run_id):  # bad keys/data: fail once, no retry
            slots = slots_of(context)
            frames = [fetch(slot.exchange, slot.coin, slot.date) for slot in slots]
        frames = [frame for frame in frames if not frame.empty]
        data = pd.concat(frames, ignore_index=True) if frames else empty_frame(data_type)
        metadata: dict[str, object] = {"partition_count": len(context.partition_keys)}
        if slots:
            metadata.update({
                "instruments": sorted({f"{slot.exchange}:{slot.coin}" for slot in slots})[:100],
                "instrument_count": len({(slot.exchange, slot.coin) for slot in slots}),
                "first_day": slots[0].date.isoformat(),
                "last_day": slots[-1].date.isoformat(),
            })
        metadata.update(per_instrument_metadata(data, slots))
        context.add_output_metadata(metadata)
        return data

    @dg.asset(name="trades", group_name=RAW_GROUP, metadata={"data_type": DataType.TRADES.value},
              **options("trades"))
    def trades(context: dg.AssetExecutionContext, market_data_source: MarketDataSource) -> pd.DataFrame:
        """Every trade of one instrument and UTC day, as the market-data source reports it.

        An intraday run (tagged with a window by the intraday schedule) fetches only the
        window's trades, which the IO manager merges into the day.

        Columns: exchange, coin, timestamp, trade_id, price, amount, side ("buy"/"sell").
        """
        window = _tag_value(run_window, context)
        if window is None:
            return fetch_for_run(context, DataType.TRADES, market_data_source.fetch_trades)
        start, end = window

        def fetch_window(exchange: str, coin: str, day: dt.date) -> pd.DataFrame:
            midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            lo, hi = max(start, midnight), min(end, midnight + dt.timedelta(days=1))
            if lo >= hi:
                return empty_frame(DataType.TRADES)
            return market_data_source.fetch_trades_between(exchange, coin, lo, hi)

        return fetch_for_run(context, DataType.TRADES, fetch_window)

    @dg.asset(name="order_book", group_name=RAW_GROUP, metadata={"data_type": DataType.ORDER_BOOK.value},
              output_required=False, **options("order_book"))
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
        wrong = [slot for slot in slots_of(context) if slot.date != at.date()]
        if wrong:
            raise dg.Failure(
                f"An order-book snapshot taken at {at.isoformat()} belongs to {at.date()}, not to "
                f"{', '.join(sorted({s.date.isoformat() for s in wrong}))}. Run the snapshot for "
                "today's partitions only.",
                allow_retries=False,  # the same tags fail the same way
            )
        yield dg.Output(
            fetch_for_run(
                context, DataType.ORDER_BOOK,
                lambda exchange, coin, _day: market_data_source.fetch_order_book_snapshot(exchange, coin, at),
            )
        )

    @dg.asset(name="ohlcv_1m", group_name=CANDLES_GROUP, metadata={"data_type": DataType.OHLCV.value},
              **options("ohlcv_1m"))
    def ohlcv_1m(context: dg.AssetExecutionContext, trades: pd.DataFrame) -> pd.DataFrame:
        """One-minute candles built from the trades; minutes without trades have no candle.

        Columns: exchange, coin, timestamp (candle open, UTC), open, high, low, close, volume.
        """
        candles = trades_to_ohlcv(trades, "1min")
        context.add_output_metadata(per_instrument_metadata(candles, slots_of(context), gaps=True))
        return candles

    @dg.asset(name="ohlcv_1d", group_name=CANDLES_GROUP, metadata={"data_type": DataType.OHLCV.value},
              **options("ohlcv_1d"))
    def ohlcv_1d(ohlcv_1m: pd.DataFrame) -> pd.DataFrame:
        """One daily candle per instrument and UTC day, combined from the one-minute candles.

        Columns: exchange, coin, timestamp (midnight UTC), open, high, low, close, volume.
        """
        return resample_ohlcv(ohlcv_1m, "1D")

    return MarketDataAssets(trades, order_book, ohlcv_1m, ohlcv_1d, partitions_def, coins)


NO_ORDER_BOOK_HISTORY = (
    "Exchanges keep no order-book history, so order_book cannot be fetched for a past day "
    "(nor replaced by a daily run or a backfill). Its partitions fill up during the day from "
    "the order_book_snapshot_schedule, which merges a snapshot of every instrument every "
    "{interval} minutes; turn that schedule on to collect order books from now on."
)


def _tag_value(parse: Callable[[Mapping[str, str]], T], context: dg.AssetExecutionContext) -> T:
    try:
        return parse(context.run.tags)
    except ValueError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from None


INSTRUMENT_PROFILE_ASSETS = build_market_data_assets(MARKET_DATA_PARTITIONS)
"""The ``instrument`` profile's assets (what ``make run`` loads by default)."""

trades = INSTRUMENT_PROFILE_ASSETS.trades
order_book = INSTRUMENT_PROFILE_ASSETS.order_book
ohlcv_1m = INSTRUMENT_PROFILE_ASSETS.ohlcv_1m
ohlcv_1d = INSTRUMENT_PROFILE_ASSETS.ohlcv_1d

ASSETS = [trades, order_book, ohlcv_1m, ohlcv_1d]
