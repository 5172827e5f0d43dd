"""The one module that speaks ccxt: build an exchange, call it with retries, classify failures.

:class:`CcxtExchangeClient` wraps one ccxt exchange (public market data only, no API keys):

* ccxt's rate limiter stays on (``enableRateLimit``), so requests are spaced as the exchange
  asks;
* every call goes through :func:`call_with_retry`, the project's one backoff loop
  (:func:`cb_storage_dagster.retry.run_with_retries`) bounded by the source's
  :func:`RetryBudget` (attempts and total wait per request). What is ccxt-specific is the
  classification, here: ccxt's ``NetworkError`` family (``RateLimitExceeded``,
  ``DDoSProtection``, ``ExchangeNotAvailable``, ``RequestTimeout``), ``BadResponse`` and a
  page that is not JSON are transient (a ``Retry-After`` header is honoured); any other ccxt
  error (``BadSymbol``, ``AuthenticationError``, ``BadRequest``, ...) is permanent and raised
  at once as :class:`SourceRequestError`;
* ``api_url`` re-bases every API URL of the exchange (``exchange.urls["api"]``) on another
  host, keeping the paths: how tests point ccxt at the local fake exchange, or a deployment at a
  proxy.

Example:
    >>> client = CcxtExchangeClient("binance", api_url="http://127.0.0.1:8123/binance")  # doctest: +SKIP
    >>> client.candles("BTC/USDT", since_ms=1709251200000, until_ms=1709251259999, limit=1)  # doctest: +SKIP
    [[1709251200000, 41935.79, 41935.79, 41935.79, 41935.79, 0.117]]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

from cb_storage_dagster.domain.errors import (
    RetriesExhaustedError,
    SourceConfigError,
    SourceRequestError,
    SourceUnavailableError,
)
from cb_storage_dagster.retry import RetryPolicy, RetryStats, Transient, run_with_retries

__all__ = [
    "EXCHANGE_PROFILES",
    "CcxtExchangeClient",
    "ExchangeProfile",
    "RetryBudget",
    "call_with_retry",
    "rebase_api_urls",
]

T = TypeVar("T")


def RetryBudget(  # a factory named as the budget it builds: the policy class is RetryPolicy
    *, max_attempts: int = 5, max_wait_seconds: float = 60.0, base_delay: float = 0.5, max_delay: float = 15.0
) -> RetryPolicy:
    """The source's retry budget per request, as the project's one :class:`RetryPolicy`:
    ``max_attempts`` attempts, at most ``max_wait_seconds`` of waiting in all, a backoff of
    ``base_delay`` x 2^(retry-1) capped at ``max_delay``, +-25% jitter.

    Raises :class:`SourceConfigError` for an impossible budget.

    >>> RetryBudget(max_attempts=3).max_attempts, RetryBudget().max_wait_seconds
    (3, 60.0)
    """
    if max_attempts < 1 or max_wait_seconds < 0 or base_delay < 0:
        raise SourceConfigError(
            f"Invalid retry budget RetryBudget(max_attempts={max_attempts!r}, max_wait_seconds={max_wait_seconds!r}, "
            f"base_delay={base_delay!r}, max_delay={max_delay!r}): max_attempts must be at least 1 and the delays "
            "not negative."
        )
    return RetryPolicy(
        attempts=max_attempts, max_attempts=max_attempts, backoff_seconds=base_delay, max_backoff_seconds=max_delay,
        max_wait_seconds=max_wait_seconds, jitter=(0.75, 1.25),
    )


def call_with_retry(
    operation: Callable[[], T],
    classify: Callable[[BaseException], Transient | None],
    budget: RetryPolicy,
    *,
    describe: str = "the request",
    sleep: Callable[[float], None] = time.sleep,
    stats: RetryStats | None = None,
) -> T:
    """Run ``operation`` through the one backoff loop; a failure still transient when
    ``budget`` runs out becomes :class:`SourceUnavailableError` (transient: the orchestrator
    may retry the whole step later), chained to it. Permanent failures (``classify`` returns
    None) pass through untouched.

    >>> def down():
    ...     raise TimeoutError("slow")
    >>> call_with_retry(down, lambda exc: Transient(), RetryBudget(max_attempts=2, base_delay=0.0),
    ...                 describe="binance fetch_ohlcv(BTC/USDT)")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    cb_storage_dagster.domain.errors.SourceUnavailableError: binance fetch_ohlcv(BTC/USDT) still failed after 2 attempt(s) and 0.0 s of waiting, which exhausts 2 attempts: TimeoutError: slow. The exchange ...
    """
    try:
        return run_with_retries(operation, policy=budget, classify=classify, describe=describe, sleep=sleep,
                                stats=stats)
    except RetriesExhaustedError as gave_up:
        last = gave_up.__cause__
        raise SourceUnavailableError(
            f"{gave_up}: {type(last).__name__}: {last}. The exchange may be down or rate-limiting; "
            "the run can be retried later."
        ) from last


@dataclass(frozen=True)
class ExchangeProfile:
    """What paging needs to know about an exchange's public market-data API.

    ``candle_limit`` / ``trade_limit``: rows per request at most (the exchange's documented
    maximum); ``trade_window_ms``: longest time window of one trades request, if bounded;
    ``candles_from_listing``: asking for candles since time 0 returns the first candle ever
    (so the listing time can be found); ``supports_until``: ccxt maps an ``until`` parameter
    to the exchange's end time (elsewhere it would be sent on as an unknown parameter);
    ``options``: ccxt options for this exchange.
    """

    candle_limit: int = 500
    trade_limit: int = 500
    trade_window_ms: int | None = None
    candles_from_listing: bool = False
    supports_until: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)


EXCHANGE_PROFILES: dict[str, ExchangeProfile] = {
    # Spot only: ccxt would also load the futures markets from two more hosts.
    "binance": ExchangeProfile(1000, 1000, 3_600_000, True, True, {"fetchMarkets": {"types": ["spot"]}}),
    # Kraken's OHLC endpoint keeps only the latest 720 candles; trades go back to the listing.
    "kraken": ExchangeProfile(720, 1000, None, False),
}
"""Profiles of the exchanges tested against the fake exchange; others get the defaults."""


class MalformedResponseError(Exception):
    """The exchange answered 200 with a body that is not JSON (ccxt would read it as no data)."""


def rebase_api_urls(urls: Any, base_url: str) -> Any:
    """``urls`` (ccxt's ``urls["api"]``: a string or nested dict) with every scheme+host replaced.

    >>> rebase_api_urls({"public": "https://api.binance.com/api/v3"}, "http://127.0.0.1:9/binance")
    {'public': 'http://127.0.0.1:9/binance/api/v3'}
    """
    if isinstance(urls, Mapping):
        return {key: rebase_api_urls(value, base_url) for key, value in urls.items()}
    if isinstance(urls, str):
        return base_url.rstrip("/") + urlsplit(urls).path
    return urls


class CcxtExchangeClient:
    """One ccxt exchange, called with retries."""

    def __init__(
        self,
        exchange_id: str,
        *,
        api_url: str | None = None,
        timeout_ms: int = 10_000,
        rate_limit_ms: float | None = None,
        page_limit: int | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import ccxt  # heavy (hundreds of exchange modules): imported only when a client is built

        if exchange_id not in ccxt.exchanges:
            raise SourceConfigError(
                f"ccxt has no exchange {exchange_id!r}: use one of ccxt.exchanges (e.g. 'binance', 'kraken')."
            )
        self.exchange_id = exchange_id
        self.profile = EXCHANGE_PROFILES.get(exchange_id, ExchangeProfile())
        if page_limit is not None:  # smaller pages only: a larger one than the exchange's cap looks complete
            self.profile = replace(
                self.profile,
                candle_limit=min(page_limit, self.profile.candle_limit),
                trade_limit=min(page_limit, self.profile.trade_limit),
            )
        config: dict[str, Any] = {
            "enableRateLimit": True,
            "timeout": timeout_ms,
            "options": dict(self.profile.options),
        }
        if rate_limit_ms is not None:
            config["rateLimit"] = rate_limit_ms
        self.exchange = getattr(ccxt, exchange_id)(config)
        self.exchange.enableLastHttpResponse = True
        self.exchange.enableLastJsonResponse = True
        self.exchange.enableLastResponseHeaders = True
        if api_url:
            self.exchange.urls["api"] = rebase_api_urls(self.exchange.urls["api"], api_url)
        self.retry = retry or RetryBudget()
        self.sleep = sleep
        self._ccxt = ccxt
        self._markets_loaded = False

    # -- calls ----------------------------------------------------------------------------
    def markets(self) -> dict[str, Any]:
        """The exchange's markets by unified symbol (loaded once)."""
        if not self._markets_loaded:
            self._call("load_markets", self.exchange.load_markets)
            self._markets_loaded = True
        return self.exchange.markets

    def candles(self, symbol: str, *, since_ms: int, until_ms: int, limit: int) -> list[list[Any]]:
        """One page of one-minute candles from ``since_ms`` (``until_ms`` inclusive, where supported)."""
        params = {"until": until_ms} if self.profile.supports_until else {}
        return self._call(
            f"fetch_ohlcv({symbol})", lambda: self.exchange.fetch_ohlcv(symbol, "1m", since_ms, limit, params)
        )

    def trades(self, symbol: str, *, since_ms: int, until_ms: int, limit: int) -> list[dict[str, Any]]:
        """One page of public trades from ``since_ms`` (``until_ms`` inclusive, where supported)."""
        params = {"until": until_ms} if self.profile.supports_until else {}
        return self._call(
            f"fetch_trades({symbol})", lambda: self.exchange.fetch_trades(symbol, since_ms, limit, params)
        )

    def order_book(self, symbol: str, depth: int) -> dict[str, Any]:
        """The current order book, ``depth`` levels per side."""
        return self._call(f"fetch_order_book({symbol})", lambda: self.exchange.fetch_order_book(symbol, depth))

    def milliseconds(self) -> int:
        return int(self.exchange.milliseconds())

    # -- retries --------------------------------------------------------------------------
    def _call(self, what: str, operation: Callable[[], T]) -> T:
        def attempt() -> T:
            # Reset what ccxt remembers of the previous answer: a timeout leaves it in place.
            self.exchange.last_http_response = None
            self.exchange.last_json_response = None
            self.exchange.last_response_headers = None
            result = operation()
            body = self.exchange.last_http_response
            if body and self.exchange.last_json_response is None:
                raise MalformedResponseError(f"the answer is not JSON: {body[:80]!r}")
            return result

        try:
            return call_with_retry(
                attempt, self._classify, self.retry, describe=f"{self.exchange_id} {what}", sleep=self.sleep
            )
        except self._ccxt.BaseError as exc:  # permanent: classify() said so
            raise SourceRequestError(f"{self.exchange_id} {what} was refused: {type(exc).__name__}: {exc}") from exc

    def _classify(self, exc: BaseException) -> Transient | None:
        ccxt = self._ccxt
        if isinstance(exc, MalformedResponseError | ccxt.NetworkError | ccxt.BadResponse):
            rate_limited = isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded)
            return Transient(self._retry_after() if rate_limited else None)
        return None

    def _retry_after(self) -> float | None:
        headers = self.exchange.last_response_headers or {}
        value = headers.get("Retry-After") or headers.get("retry-after")
        try:
            return max(0.0, float(value)) if value is not None else None
        except ValueError:  # an HTTP date: fall back to the computed backoff
            return None
