"""A UTC day of one instrument from an exchange, as canonical frames (plain Python, no Dagster).

:class:`ExchangeDayFetcher` turns ``(exchange, coin, day)`` into the exchange's symbol, refuses
days that cannot have data, pages through the day with :mod:`.paging` and returns the
pipeline's canonical columns. A day the exchange reports only in part (the instrument was
listed mid-day, or the day is today) is returned as it is; the asset checks show the gap.

Example:
    >>> fetcher = ExchangeDayFetcher(SymbolMap.build("USDT"), client_for=my_clients.get)  # doctest: +SKIP
    >>> fetcher.trades("binance", "BTC", dt.date(2024, 3, 1))  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pandas as pd

from cb_storage_dagster.domain.errors import DayOutOfRangeError, SourceRequestError
from cb_storage_dagster.domain.keys import DataType
from cb_storage_dagster.sources.ccxt.client import CcxtExchangeClient
from cb_storage_dagster.sources.ccxt.paging import page_candles, page_trades
from cb_storage_dagster.sources.ccxt.symbols import SymbolMap
from cb_storage_dagster.transforms import canonical_columns, empty_frame

__all__ = ["ExchangeDayFetcher"]

DAY_MS = 86_400_000


class ExchangeDayFetcher:
    """Fetches whole UTC days of candles and trades (and current order books) per instrument."""

    def __init__(
        self,
        symbols: SymbolMap,
        client_for: Callable[[str], CcxtExchangeClient],
        *,
        order_book_depth: int = 20,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
    ) -> None:
        self.symbols = symbols
        self.client_for = client_for
        self.order_book_depth = order_book_depth
        self.clock = clock
        self._listing_ms: dict[tuple[str, str], int | None] = {}

    # -- public ---------------------------------------------------------------------------
    def ohlcv(self, exchange: str, coin: str, day: dt.date) -> pd.DataFrame:
        """The day's one-minute candles, exactly those opening in the day, sorted."""
        client, symbol, start, end = self._prepare(exchange, coin, day)
        rows = page_candles(
            lambda since, until, limit: client.candles(symbol, since_ms=since, until_ms=until, limit=limit),
            start, end, limit=client.profile.candle_limit,
        )
        if not rows:
            self._refuse_if_before_listing(client, exchange, coin, symbol, day, end)
            return empty_frame(DataType.OHLCV)
        frame = pd.DataFrame([list(r[:6]) for r in rows], columns=["ms", "open", "high", "low", "close", "volume"])
        return _canonical(frame, exchange, coin, DataType.OHLCV)

    def trades(self, exchange: str, coin: str, day: dt.date) -> pd.DataFrame:
        """The day's public trades, each trade id once, sorted by time."""
        client, symbol, start, end = self._prepare(exchange, coin, day)
        trades = page_trades(
            lambda since, until, limit: client.trades(symbol, since_ms=since, until_ms=until, limit=limit),
            start, end, limit=client.profile.trade_limit, window_ms=client.profile.trade_window_ms,
        )
        if not trades:
            self._refuse_if_before_listing(client, exchange, coin, symbol, day, end)
            return empty_frame(DataType.TRADES)
        frame = pd.DataFrame(
            {
                "ms": [int(t["timestamp"]) for t in trades],
                "trade_id": [str(t["id"]) for t in trades],
                "price": [t["price"] for t in trades],
                "amount": [t["amount"] for t in trades],
                "side": [t["side"] for t in trades],
            }
        )
        return _canonical(frame, exchange, coin, DataType.TRADES)

    def order_book(self, exchange: str, coin: str, day: dt.date) -> pd.DataFrame:
        """One snapshot of the current order book, for today only: exchanges keep no book history."""
        today = self.clock().date()
        if day != today:
            raise DayOutOfRangeError(
                f"{exchange}:{coin}: order books have no history on exchanges, so {day} cannot be "
                f"fetched; only today ({today}) can be snapshot."
            )
        client, symbol, _, _ = self._prepare(exchange, coin, day)
        book = client.order_book(symbol, self.order_book_depth)
        taken_ms = book.get("timestamp") or client.milliseconds()
        rows: list[dict[str, Any]] = []
        for side, levels in (("bid", book.get("bids", [])), ("ask", book.get("asks", []))):
            for level, entry in enumerate(levels[: self.order_book_depth]):
                rows.append({"ms": taken_ms, "side": side, "level": level, "price": entry[0], "amount": entry[1]})
        if not rows:
            return empty_frame(DataType.ORDER_BOOK)
        return _canonical(pd.DataFrame(rows), exchange, coin, DataType.ORDER_BOOK)

    # -- checks ---------------------------------------------------------------------------
    def _prepare(self, exchange: str, coin: str, day: dt.date) -> tuple[CcxtExchangeClient, str, int, int]:
        today = self.clock().date()
        if day > today:
            raise DayOutOfRangeError(
                f"{exchange}:{coin}: {day} is in the future (today is {today} UTC); only days up to "
                "today can be fetched."
            )
        client = self.client_for(exchange)
        symbol = self.symbols.symbol(exchange, coin)
        if symbol not in client.markets():
            raise SourceRequestError(
                f"{exchange}:{coin} maps to the symbol {symbol!r}, which {exchange} does not list. Set "
                f"a symbol override (e.g. '{exchange}:{coin}={coin}/USD') or another default quote currency."
            )
        start = int(dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp() * 1000)
        return client, symbol, start, start + DAY_MS

    def _refuse_if_before_listing(
        self, client: CcxtExchangeClient, exchange: str, coin: str, symbol: str, day: dt.date, end_ms: int
    ) -> None:
        """An empty day before the instrument's first candle is refused; an empty day after it is
        returned (and stored) as empty."""
        listing = self._listing(client, exchange, coin, symbol)
        if listing is not None and listing >= end_ms:
            first = dt.datetime.fromtimestamp(listing / 1000, dt.timezone.utc)
            raise DayOutOfRangeError(
                f"{exchange}:{coin} ({symbol}) has no data before its listing: its first candle is at "
                f"{first:%Y-%m-%d %H:%M} UTC, after {day}. Backfill from {first.date()} on."
            )

    def _listing(self, client: CcxtExchangeClient, exchange: str, coin: str, symbol: str) -> int | None:
        key = (exchange, coin)
        if key not in self._listing_ms:
            created = client.markets()[symbol].get("created")
            if created is None and client.profile.candles_from_listing:
                first = client.candles(symbol, since_ms=0, until_ms=client.milliseconds(), limit=1)
                created = int(first[0][0]) if first else None
            self._listing_ms[key] = int(created) if created is not None else None
        return self._listing_ms[key]


def _canonical(frame: pd.DataFrame, exchange: str, coin: str, data_type: DataType) -> pd.DataFrame:
    frame = frame.assign(
        exchange=exchange,
        coin=coin,
        timestamp=pd.to_datetime(frame["ms"].astype("int64"), unit="ms", utc=True).astype("datetime64[us, UTC]"),
    )
    columns = canonical_columns(data_type)
    result = frame[columns].reset_index(drop=True)
    floats = [c for c in ("open", "high", "low", "close", "volume", "price", "amount") if c in columns]
    result[floats] = result[floats].astype("float64")
    if "level" in columns:
        result["level"] = result["level"].astype("int32")
    return result.astype({c: "str" for c in ("exchange", "coin", "trade_id", "side") if c in columns})
