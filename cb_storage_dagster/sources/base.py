"""The interface every market-data source implements: one instrument and one UTC day per call.

The pipeline's raw assets ask a :class:`MarketDataSource` resource for one instrument-day at a
time. Two implementations ship: :class:`~cb_storage_dagster.sources.synthetic.SyntheticMarketDataSource`
(the default, no network) and :class:`~cb_storage_dagster.sources.ccxt.source.CcxtMarketDataSource`
(real exchanges).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import dagster as dg
import pandas as pd

from cb_storage_dagster.domain.keys import DataType
from cb_storage_dagster.transforms import canonical_columns, canonical_dtypes, trades_to_ohlcv

__all__ = ["ORDER_BOOK_COLUMNS", "TRADE_COLUMNS", "MarketDataSource"]

TRADE_COLUMNS = canonical_columns(DataType.TRADES)
"""Canonical trade columns, in order."""

ORDER_BOOK_COLUMNS = canonical_columns(DataType.ORDER_BOOK)
"""Canonical order-book snapshot columns, in order."""


class MarketDataSource(dg.ConfigurableResource):
    """Interface of a market-data source: one instrument and one UTC day per call.

    Implementations return pandas DataFrames with exactly the canonical columns
    (:data:`TRADE_COLUMNS`, :data:`ORDER_BOOK_COLUMNS`); timestamps are
    ``datetime64[us, UTC]`` and lie inside ``day``. The storage layer derives the ``date``
    partition column itself.

    Example:
        >>> class MyExchange(MarketDataSource):
        ...     api_url: str
        ...
        ...     def fetch_trades(self, exchange, coin, day):
        ...         ...  # call the exchange, return the canonical columns
    """

    def fetch_trades(self, exchange: str, coin: str, day: dt.date) -> pd.DataFrame:
        """All trades of ``exchange``/``coin`` on the UTC day ``day``, sorted by time."""
        raise NotImplementedError(f"{type(self).__name__} does not implement fetch_trades.")

    def fetch_trades_many(self, exchange: str, coins: Sequence[str], day: dt.date) -> pd.DataFrame:
        """Trades of several coins of one exchange-day in one frame, coin after coin.

        The default calls :meth:`fetch_trades` per coin; a source that can draw or fetch an
        exchange-day at once (the synthetic source does) overrides it.
        """
        frames = [self.fetch_trades(exchange, coin, day) for coin in coins]
        if not frames:
            return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in canonical_dtypes(DataType.TRADES).items()})
        return pd.concat(frames, ignore_index=True)

    def fetch_order_book(self, exchange: str, coin: str, day: dt.date) -> pd.DataFrame:
        """Order-book snapshots of ``exchange``/``coin`` taken during the UTC day ``day``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement fetch_order_book.")

    def fetch_ohlcv(self, exchange: str, coin: str, day: dt.date) -> pd.DataFrame:
        """One-minute candles of ``exchange``/``coin`` opening in the UTC day ``day``.

        A source whose venue has a candle API overrides this; the default builds the candles
        from :meth:`fetch_trades` (minutes without trades have no candle).
        """
        return trades_to_ohlcv(self.fetch_trades(exchange, coin, day), "1min")

    def fetch_trades_between(
        self, exchange: str, coin: str, start: dt.datetime, end: dt.datetime
    ) -> pd.DataFrame:
        """Trades with ``start <= timestamp < end`` (both inside one UTC day): what an
        intraday run merges. The default fetches the day and keeps the window; a source
        that can ask the exchange for a time range should override it."""
        day = start.astimezone(dt.UTC).date()
        trades = self.fetch_trades(exchange, coin, day)
        inside = (trades["timestamp"] >= start) & (trades["timestamp"] < end)
        return trades.loc[inside].reset_index(drop=True)

    def fetch_order_book_snapshot(self, exchange: str, coin: str, at: dt.datetime) -> pd.DataFrame:
        """The book of ``exchange``/``coin`` as one snapshot, every row stamped ``at``.

        Exchanges keep no order-book history: a live source takes the book when it is called
        and stamps it with ``at`` (the scheduled instant), so a re-run of the same tick
        replaces that snapshot instead of adding another.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not implement fetch_order_book_snapshot."
        )
