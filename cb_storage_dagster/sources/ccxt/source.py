"""Real exchange data through ccxt: the :class:`CcxtMarketDataSource` Dagster resource.

A thin adapter: the exchange-independent work (symbol mapping, paging, de-duplication, retry
budget, refusing impossible days) lives in :mod:`cb_storage_dagster.sources.ccxt`; this
module only holds the configuration and turns the source's errors into Dagster failures:
a transient one (the exchange still unavailable after the retry budget) into a retryable
``dg.Failure``, which the assets' retry policy tries again later; a permanent one (unknown
symbol, refused request, a day in the future or before the listing) into
``dg.Failure(allow_retries=False)`` naming the instrument and the day.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import dagster as dg
import pandas as pd
from pydantic import Field, PrivateAttr, model_validator

from cb_storage_dagster.domain.errors import SourceConfigError, SourceError
from cb_storage_dagster.domain.keys import parse_date, validate_name
from cb_storage_dagster.retry import RetryPolicy
from cb_storage_dagster.sources.base import MarketDataSource
from cb_storage_dagster.sources.ccxt.client import RetryBudget
from cb_storage_dagster.sources.ccxt.symbols import SymbolMap

__all__ = ["CcxtMarketDataSource"]

_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")


class CcxtMarketDataSource(MarketDataSource):
    """Candles, trades and order books of real exchanges through ccxt (public data, no API keys).

    An instrument ``exchange:COIN`` is fetched from the ccxt exchange named ``exchange`` as the
    symbol ``COIN/<default_quote>``, unless ``symbol_overrides`` names it. A day is fetched
    page by page with the exchange's page limit and returned exactly: rows inside the UTC day,
    each candle and trade once.

    Example:
        >>> source = CcxtMarketDataSource(default_quote="USDT", symbol_overrides={"kraken:BTC": "BTC/USD"})
        >>> source.symbol_for("binance", "BTC"), source.symbol_for("kraken", "BTC")
        ('BTC/USDT', 'BTC/USD')
        >>> trades = source.fetch_trades("binance", "BTC", dt.date(2024, 3, 1))  # doctest: +SKIP
    """

    default_quote: str = Field(default="USDT", description="Quote currency of every coin without an override.")
    symbol_overrides: dict[str, str] = Field(
        default_factory=dict, description='Exact symbols per instrument, e.g. {"kraken:BTC": "BTC/USD"}.'
    )
    api_urls: dict[str, str] = Field(
        default_factory=dict,
        description="Per ccxt exchange id, a base URL replacing the exchange's API hosts (a proxy, or a test "
        'server), e.g. {"binance": "http://127.0.0.1:8123/binance"}.',
    )
    timeout_ms: int = Field(default=10_000, description="Timeout of one HTTP request, in milliseconds.")
    rate_limit_ms: float | None = Field(
        default=None, description="Milliseconds between requests; None keeps ccxt's value for the exchange."
    )
    page_limit: int | None = Field(
        default=None, description="Rows per request, at most the exchange's own maximum (the default)."
    )
    max_attempts: int = Field(default=5, description="Attempts per request for transient failures.")
    max_wait_seconds: float = Field(default=60.0, description="Total backoff per request before giving up.")
    order_book_depth: int = Field(default=20, description="Order-book levels per side in a snapshot.")

    _clients: dict = PrivateAttr(default_factory=dict)
    _fetcher: object | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _validate(self) -> CcxtMarketDataSource:
        self._symbols()  # raises SourceConfigError with what to fix
        self._retry_budget()
        for exchange, url in self.api_urls.items():
            if not _URL.match(url):
                raise SourceConfigError(
                    f"api_urls[{exchange!r}] = {url!r} is not an http(s) URL such as 'http://127.0.0.1:8123/binance'."
                )
        if self.timeout_ms <= 0 or self.order_book_depth < 1 or (self.page_limit is not None and self.page_limit < 1):
            raise SourceConfigError("timeout_ms must be positive, order_book_depth and page_limit at least 1.")
        return self

    # -- MarketDataSource -------------------------------------------------------------------
    def fetch_trades(self, exchange: str, coin: str, day: dt.date) -> pd.DataFrame:
        """The exchange's public trades of the UTC day (see the class docstring)."""
        return self._run("trades", exchange, coin, day, lambda f: f.trades)

    def fetch_ohlcv(self, exchange: str, coin: str, day: dt.date) -> pd.DataFrame:
        """The exchange's one-minute candles of the UTC day."""
        return self._run("candles", exchange, coin, day, lambda f: f.ohlcv)

    def fetch_order_book(self, exchange: str, coin: str, day: dt.date) -> pd.DataFrame:
        """A snapshot of the current order book; only today can be fetched (no history exists)."""
        return self._run("order book", exchange, coin, day, lambda f: f.order_book)

    def fetch_order_book_snapshot(self, exchange: str, coin: str, at: dt.datetime) -> pd.DataFrame:
        """The exchange's current book, every row stamped ``at`` (the scheduled instant), so a
        re-run of the same snapshot tick replaces that snapshot instead of adding another."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise dg.Failure(f"Snapshot instant {at!r} has no time zone; use an aware UTC datetime.",
                             allow_retries=False)
        at = at.astimezone(dt.UTC).replace(microsecond=0)
        book = self._run("order book", exchange, coin, at.date(), lambda f: f.order_book)
        return book.assign(timestamp=pd.Timestamp(at))

    def symbol_for(self, exchange: str, coin: str) -> str:
        """The exchange symbol that ``exchange:coin`` is fetched as."""
        return self._symbols().symbol(exchange, coin)

    def now(self) -> dt.datetime:
        """The current UTC instant, which decides what "today" is: later days are refused and
        only today's order book can be snapshot. A subclass may pin it (the tests do, to take
        a snapshot of a fixed day)."""
        return dt.datetime.now(dt.UTC)

    # -- adapter ----------------------------------------------------------------------------
    def _symbols(self) -> SymbolMap:
        return SymbolMap.build(self.default_quote, self.symbol_overrides)

    def _retry_budget(self) -> RetryPolicy:
        return RetryBudget(max_attempts=self.max_attempts, max_wait_seconds=self.max_wait_seconds)

    def _day_fetcher(self):
        from cb_storage_dagster.sources.ccxt.day import ExchangeDayFetcher

        if self._fetcher is None:
            self._fetcher = ExchangeDayFetcher(
                self._symbols(), self._client, order_book_depth=self.order_book_depth, clock=self.now
            )
        return self._fetcher

    def _client(self, exchange: str):
        from cb_storage_dagster.sources.ccxt.client import CcxtExchangeClient

        if exchange not in self._clients:
            self._clients[exchange] = CcxtExchangeClient(
                exchange,
                api_url=self.api_urls.get(exchange),
                timeout_ms=self.timeout_ms,
                rate_limit_ms=self.rate_limit_ms,
                page_limit=self.page_limit,
                retry=self._retry_budget(),
            )
        return self._clients[exchange]

    def _run(self, what: str, exchange: str, coin: str, day: dt.date | str, pick: Callable) -> pd.DataFrame:
        exchange, coin, day = validate_name(exchange, "exchange"), validate_name(coin, "coin"), parse_date(day, "day")
        try:
            return pick(self._day_fetcher())(exchange, coin, day)
        except SourceError as exc:
            verdict = "may succeed when retried" if exc.transient else "will not succeed when retried"
            raise dg.Failure(
                description=f"Fetching {what} of {exchange}:{coin} for {day} failed ({verdict}): {exc}",
                metadata={"instrument": f"{exchange}:{coin}", "day": day.isoformat(),
                          "error": type(exc).__name__, "transient": exc.transient},
                allow_retries=exc.transient,
            ) from exc
