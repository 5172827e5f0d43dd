"""The market-data assets: raw trades and order books, and the candles built from them.

:func:`build_market_data_assets` builds them over the partitions and with the backfill policy
of one profile (:func:`~cb_storage_dagster.orchestration.profiles.build_pipeline` decides
both): UTC day x instrument (the ``instrument`` profile) or UTC day x exchange (the
``exchange`` profile, where one partition is every configured instrument of an exchange-day).
No asset exists at module level: every pipeline builds its own. A run covers one partition or
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
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from cb_storage_dagster.domain.chunks import MarketDataChunks
from cb_storage_dagster.domain.keys import DataType, PartitionSlot
from cb_storage_dagster.orchestration.asset_metadata import per_instrument_metadata
from cb_storage_dagster.orchestration.chunked_fetch import fetch_run_in_chunks, transform_in_chunks
from cb_storage_dagster.orchestration.failures import permanent_failures
from cb_storage_dagster.orchestration.freshness import with_daily_freshness
from cb_storage_dagster.orchestration.run_context import run_slots, tag_value
from cb_storage_dagster.orchestration.run_tags import run_window, snapshot_instant
from cb_storage_dagster.settings import PipelineSettings
from cb_storage_dagster.sources.base import MarketDataSource
from cb_storage_dagster.transforms import (
    TRADE_COLUMNS_FOR_CANDLES,
    empty_frame,
    resample_ohlcv,
    trades_to_ohlcv,
)

__all__ = [
    "MARKET_DATA_RETRY_POLICY",
    "MarketDataAssets",
    "NO_ORDER_BOOK_HISTORY",
    "SNAPSHOT_INTERVAL_MINUTES",
    "build_market_data_assets",
    "pool_of",
]

SNAPSHOT_INTERVAL_MINUTES = 15
"""Minutes between order-book snapshots (the order_book_snapshot_schedule's interval)."""

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


@dataclass(frozen=True)
class MarketDataAssets:
    """The four market-data assets of one partition profile.

    Example:
        >>> from cb_storage_dagster.orchestration.partitions import market_data_partitions
        >>> built = build_market_data_assets(
        ...     market_data_partitions(), backfill_policy=dg.BackfillPolicy.multi_run(31))
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
        """The instrument-days of the run (see :func:`run_slots`)."""
        return run_slots(context, self.coins)

    @property
    def chunked(self) -> bool:
        """Whether the assets exchange :class:`MarketDataChunks` (the exchange profile)."""
        return self.coins is not None


def build_market_data_assets(
    partitions_def: dg.PartitionsDefinition,
    coins: Mapping[str, Sequence[str]] | None = None,
    *,
    backfill_policy: dg.BackfillPolicy,
    chunk_instruments: int | None = None,
) -> MarketDataAssets:
    """``trades``, ``order_book``, ``ohlcv_1m`` and ``ohlcv_1d`` over ``partitions_def``.

    ``partitions_def`` is date x instrument (``coins`` unused) or date x exchange, where
    ``coins`` maps each exchange to the coins one of its exchange-day partitions fetches.
    ``backfill_policy`` cuts a UI backfill into runs (the profile's choice, see
    :func:`~cb_storage_dagster.orchestration.profiles.backfill_policy_of`).

    With ``coins`` (the exchange profile) the assets work in chunks of ``chunk_instruments``
    instruments x one day (default ``CB_STORAGE_CHUNK_INSTRUMENTS``): trades are fetched
    block by block with per-instrument isolation (:mod:`.chunked_fetch`), candles are built
    per chunk, and the IO manager streams each table in one commit, so a run's memory follows
    the chunk size, not instruments x days.
    """
    chunked = coins is not None
    block_size = chunk_instruments or PipelineSettings.load().chunk_instruments
    frames: type = MarketDataChunks if chunked else pd.DataFrame

    def slots_of(context: dg.AssetExecutionContext) -> list[PartitionSlot]:
        return run_slots(context, coins)

    def options(table: str) -> dict[str, object]:
        # What every market-data asset shares: partitions, storage, backfill batches,
        # retries, and the writer pool of its table.
        return {
            "partitions_def": partitions_def,
            "io_manager_key": IO_MANAGER_KEY,
            "kinds": KINDS,
            "backfill_policy": backfill_policy,
            "retry_policy": MARKET_DATA_RETRY_POLICY,
            "pool": pool_of(table),
        }

    def fetch_for_run(
        context: dg.AssetExecutionContext,
        data_type: DataType,
        fetch: Callable[[str, str, dt.date], pd.DataFrame],
    ) -> pd.DataFrame:
        with permanent_failures(context.instance, context.run.run_id):  # bad keys/data: fail once, no retry
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

    def trades(context: dg.AssetExecutionContext, market_data_source: MarketDataSource):
        """Every trade of one instrument and UTC day, as the market-data source reports it.

        An intraday run (tagged with a window by the intraday schedule) fetches only the
        window's trades, which the IO manager merges into the day. In the exchange profile a
        run is fetched in chunks, and an instrument that fails for good is left out (its
        stored rows stay) and listed in ``failed_instruments``.

        Columns: exchange, coin, timestamp, trade_id, price, amount, side ("buy"/"sell").
        """
        window = tag_value(run_window, context)
        if window is None and chunked:
            return fetch_run_in_chunks(context, market_data_source, slots_of(context), block_size)
        if window is None:
            return fetch_for_run(context, DataType.TRADES, market_data_source.fetch_trades)
        start, end = window

        def fetch_window(exchange: str, coin: str, day: dt.date) -> pd.DataFrame:
            midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            lo, hi = max(start, midnight), min(end, midnight + dt.timedelta(days=1))
            if lo >= hi:
                return empty_frame(DataType.TRADES)
            return market_data_source.fetch_trades_between(exchange, coin, lo, hi)

        frame = fetch_for_run(context, DataType.TRADES, fetch_window)
        return MarketDataChunks.of([frame], slots_of(context)) if chunked else frame

    trades = dg.asset(name="trades", group_name=RAW_GROUP, metadata={"data_type": DataType.TRADES.value},
                      **options("trades"))(_annotated(trades, frames))

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
        at = tag_value(snapshot_instant, context)
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

    def ohlcv_1m(context: dg.AssetExecutionContext, trades):
        """One-minute candles built from the trades; minutes without trades have no candle.
        In the exchange profile they are built chunk by chunk while the IO manager writes.

        Columns: exchange, coin, timestamp (candle open, UTC), open, high, low, close, volume.
        """
        if isinstance(trades, MarketDataChunks):
            chunks, metadata = transform_in_chunks(  # only the columns candles need are read
                trades.select(TRADE_COLUMNS_FOR_CANDLES), lambda frame: trades_to_ohlcv(frame, "1min"),
                slots_of(context), gaps=True)
            context.add_output_metadata(metadata)
            return chunks
        candles = trades_to_ohlcv(trades, "1min")
        context.add_output_metadata(per_instrument_metadata(candles, slots_of(context), gaps=True))
        return candles

    ohlcv_1m = dg.asset(name="ohlcv_1m", group_name=CANDLES_GROUP, metadata={"data_type": DataType.OHLCV.value},
                        **options("ohlcv_1m"))(_annotated(ohlcv_1m, frames))

    def ohlcv_1d(context: dg.AssetExecutionContext, ohlcv_1m):
        """One daily candle per instrument and UTC day, combined from the one-minute candles
        (chunk by chunk in the exchange profile).

        Columns: exchange, coin, timestamp (midnight UTC), open, high, low, close, volume.
        """
        if isinstance(ohlcv_1m, MarketDataChunks):
            return transform_in_chunks(ohlcv_1m, lambda frame: resample_ohlcv(frame, "1D"), slots_of(context))[0]
        return resample_ohlcv(ohlcv_1m, "1D")

    ohlcv_1d = dg.asset(name="ohlcv_1d", group_name=CANDLES_GROUP, metadata={"data_type": DataType.OHLCV.value},
                        **options("ohlcv_1d"))(_annotated(ohlcv_1d, frames))

    trades, ohlcv_1m, ohlcv_1d = (with_daily_freshness(a) for a in (trades, ohlcv_1m, ohlcv_1d))
    return MarketDataAssets(trades, order_book, ohlcv_1m, ohlcv_1d, partitions_def, coins)


NO_ORDER_BOOK_HISTORY = (
    "Exchanges keep no order-book history, so order_book cannot be fetched for a past day "
    "(nor replaced by a daily run or a backfill). Its partitions fill up during the day from "
    "the order_book_snapshot_schedule, which merges a snapshot of every instrument every "
    "{interval} minutes; turn that schedule on to collect order books from now on."
)


def _annotated(fn: Callable[..., object], frames: type) -> Callable[..., object]:
    """``fn`` with its market-data input and its output annotated ``frames`` (a frame in the
    instrument profile, :class:`MarketDataChunks` in the exchange profile): Dagster reads the
    annotations, and the IO manager streams an input annotated ``MarketDataChunks``."""
    hints = {"context": dg.AssetExecutionContext, "return": frames}
    for name in list(inspect.signature(fn).parameters)[1:]:
        if name != "market_data_source":
            hints[name] = frames
        else:
            hints[name] = MarketDataSource
    fn.__annotations__ = hints
    return fn
