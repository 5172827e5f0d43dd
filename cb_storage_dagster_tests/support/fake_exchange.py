"""A local fake crypto exchange: Binance spot and Kraken REST market-data endpoints on 127.0.0.1.

Written from the exchanges' public REST documentation, covering exactly what ccxt's
``load_markets``, ``fetch_ohlcv``, ``fetch_trades`` and ``fetch_order_book`` call:

* Binance spot (``/binance/api/v3/...``): ``exchangeInfo``, ``klines`` (``startTime`` /
  ``endTime`` / ``limit``, at most 1,000), ``aggTrades`` (a ``startTime``..``endTime`` window of
  at most one hour, at most 1,000 trades), ``depth``; errors as ``{"code": -1121, "msg": ...}``.
* Kraken (``/kraken/0/public/...``): ``AssetPairs``, ``Assets``, ``OHLC`` (``since`` in seconds,
  at most 720 entries), ``Trades`` (``since`` in seconds, ``count`` at most 1,000, times as
  fractional seconds), ``Depth``; errors as ``{"error": ["EQuery:Unknown asset pair"]}``.

The market is deterministic: every minute from an instrument's listing on has one to three
trades (some sharing a millisecond, so page edges fall inside a millisecond), and each minute's
candle is built from that minute's trades, so candles built from the trades equal the
exchange's klines. :meth:`FakeExchange.expected_trades` / :meth:`expected_candles` /
:meth:`expected_book` give the ground truth a test compares stored rows with.

Faults are switched per test: :meth:`FakeExchange.add_fault` queues a 429 with Retry-After,
a 503, a timeout (the answer is delayed past the client's timeout) or a malformed page for the
next requests of one endpoint; ``unknown_symbols`` makes an exchange answer "invalid symbol".

Example:
    >>> with FakeExchange() as fake:  # doctest: +SKIP
    ...     fake.add_fault("klines", "rate_limit", retry_after=1)
    ...     urls = fake.api_urls()  # {"binance": "http://127.0.0.1:PORT/binance", ...}
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

MINUTE_MS = 60_000
DAY_MS = 86_400_000

FaultKind = Literal["rate_limit", "unavailable", "timeout", "malformed"]


@dataclass(frozen=True)
class FakeMarket:
    """One spot instrument of the fake exchange (``exchange_id`` is the venue's own symbol)."""

    exchange: str
    exchange_id: str
    base: str
    quote: str
    listed_ms: int
    base_price: float


def _ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp() * 1000)


DEFAULT_MARKETS = (
    FakeMarket("binance", "BTCUSDT", "BTC", "USDT", _ms("2020-01-01T00:00:00"), 42_000.0),
    FakeMarket("binance", "ETHUSDT", "ETH", "USDT", _ms("2020-01-01T00:00:00"), 2_300.0),
    # Listed at noon on 2024-03-02: that day is only half reported, earlier days not at all.
    FakeMarket("binance", "NEWUSDT", "NEW", "USDT", _ms("2024-03-02T12:00:00"), 1.5),
    FakeMarket("kraken", "XBTUSD", "XBT", "USD", _ms("2020-01-01T00:00:00"), 42_010.0),
    FakeMarket("kraken", "ETHUSD", "ETH", "USD", _ms("2020-01-01T00:00:00"), 2_301.0),
)


@dataclass(frozen=True)
class FakeTrade:
    id: int
    ms: int
    price: str
    amount: str
    side: str  # "buy" / "sell" (the taker's side)


def minute_trades(market: FakeMarket, minute: int) -> list[FakeTrade]:
    """The trades of one absolute minute (``ms // 60_000``), sorted by time then id."""
    count = 1 + (minute * 7919) % 3
    offsets = sorted((minute * 104_729 + j * 7_727) % MINUTE_MS for j in range(count))
    if count > 1 and minute % 5 == 0:
        offsets[1] = offsets[0]  # two trades in one millisecond
    trades = []
    for j, offset in enumerate(offsets):
        drift = 1.0 + 0.002 * math.sin(minute / 37.0) + 0.0001 * ((minute * 31 + j * 17) % 10)
        price = f"{market.base_price * drift:.2f}"
        amount = f"{((minute * 13 + j * 29) % 997 + 1) / 1000:.3f}"
        side = "buy" if (minute + j) % 2 == 0 else "sell"
        trades.append(FakeTrade(minute * 4 + j, minute * MINUTE_MS + offset, price, amount, side))
    return trades


def trades_between(
    market: FakeMarket, start_ms: int, end_ms: int, now_ms: int, limit: int | None = None
) -> list[FakeTrade]:
    """The first ``limit`` trades with ``start_ms <= time < end_ms`` (clipped to listing and "now")."""
    start_ms, end_ms = max(start_ms, market.listed_ms), min(end_ms, now_ms)
    result: list[FakeTrade] = []
    for minute in range(start_ms // MINUTE_MS, (end_ms + MINUTE_MS - 1) // MINUTE_MS):
        result.extend(t for t in minute_trades(market, minute) if start_ms <= t.ms < end_ms)
        if limit is not None and len(result) >= limit:
            return result[:limit]
    return result


def candle(market: FakeMarket, minute: int) -> tuple[int, str, str, str, str, str]:
    """The one-minute candle ``(open_ms, open, high, low, close, volume)`` of one minute."""
    trades = minute_trades(market, minute)
    prices = [Decimal(t.price) for t in trades]
    volume = sum((Decimal(t.amount) for t in trades), Decimal(0))
    return (minute * MINUTE_MS, trades[0].price, str(max(prices)), str(min(prices)), trades[-1].price, str(volume))


def candles_between(
    market: FakeMarket, start_ms: int, end_ms: int, now_ms: int, limit: int | None = None
) -> list[tuple]:
    """The first ``limit`` candles whose open time lies in ``[start_ms, end_ms)`` (up to "now")."""
    first = max(start_ms, market.listed_ms)
    first_minute = (first + MINUTE_MS - 1) // MINUTE_MS
    last_minute = (min(end_ms, now_ms + 1) - 1) // MINUTE_MS
    if limit is not None:
        last_minute = min(last_minute, first_minute + limit - 1)
    return [candle(market, m) for m in range(first_minute, last_minute + 1)]


@dataclass
class _Fault:
    kind: FaultKind
    retry_after: int
    delay: float


@dataclass
class FakeExchange:
    """The fake exchange's HTTP server (a context manager; a free port on 127.0.0.1).

    ``limits`` caps each endpoint's page size (defaults are the real venues' maxima);
    ``requests`` counts the requests served per endpoint.
    """

    markets: tuple[FakeMarket, ...] = DEFAULT_MARKETS
    now_ms: int | None = None
    limits: dict[str, int] = field(default_factory=dict)
    unknown_symbols: set[str] = field(default_factory=set)
    requests: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._faults: dict[str, list[_Fault]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> FakeExchange:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                fake._handle(self)

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-exchange", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (a thread of this process, not a child process) and join the thread."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            assert not self._thread.is_alive(), "the fake exchange's server thread did not end"
            self._thread = None

    def __enter__(self) -> FakeExchange:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake exchange first"
        return int(self._server.server_address[1])

    def api_urls(self) -> dict[str, str]:
        """The base URL per exchange id, for ``CcxtMarketDataSource(api_urls=...)``."""
        return {name: f"http://127.0.0.1:{self.port}/{name}" for name in ("binance", "kraken")}

    # -- test switches ------------------------------------------------------------------
    def add_fault(
        self, endpoint: str, kind: FaultKind, *, times: int = 1, retry_after: int = 1, delay: float = 3.0
    ) -> None:
        """Answer the next ``times`` requests to ``endpoint`` (e.g. ``"klines"``) with a fault."""
        with self._lock:
            self._faults.setdefault(endpoint, []).extend(_Fault(kind, retry_after, delay) for _ in range(times))

    def market(self, exchange: str, exchange_id: str) -> FakeMarket:
        return next(m for m in self.markets if m.exchange == exchange and m.exchange_id == exchange_id)

    def current_ms(self) -> int:
        return self.now_ms if self.now_ms is not None else int(time.time() * 1000)

    # -- ground truth ---------------------------------------------------------------------
    def expected_trades(self, exchange: str, exchange_id: str, day: dt.date) -> list[FakeTrade]:
        start = _ms(day.isoformat() + "T00:00:00")
        return trades_between(self.market(exchange, exchange_id), start, start + DAY_MS, self.current_ms())

    def expected_candles(self, exchange: str, exchange_id: str, day: dt.date) -> list[tuple]:
        start = _ms(day.isoformat() + "T00:00:00")
        return candles_between(self.market(exchange, exchange_id), start, start + DAY_MS, self.current_ms())

    def expected_book(self, exchange: str, exchange_id: str, depth: int) -> tuple[list[list[str]], list[list[str]]]:
        """The ``(bids, asks)`` the book endpoints serve now, ``[price, amount]`` per level, best first."""
        return _book(self.market(exchange, exchange_id), self.current_ms(), depth)

    # -- HTTP ---------------------------------------------------------------------------
    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        segments = parts.path.strip("/").split("/")
        exchange, endpoint = segments[0], segments[-1]
        with self._lock:
            self.requests[endpoint] += 1
            queue = self._faults.get(endpoint)
            fault = queue.pop(0) if queue else None
        if fault is not None:
            if fault.kind == "rate_limit":
                return _send(request, 429, {"code": -1003, "msg": "Too many requests."},
                             headers={"Retry-After": str(fault.retry_after)})
            if fault.kind == "unavailable":
                return _send_raw(request, 503, b"Service Unavailable", content_type="text/plain")
            if fault.kind == "malformed":
                return _send_raw(request, 200, b'[[1704153600000, "42000.00", "4201')
            time.sleep(fault.delay)  # fault injection, not synchronisation: answer only after the client gave up
        try:
            if exchange == "binance":
                status, body = self._binance(endpoint, query)
            elif exchange == "kraken":
                status, body = self._kraken(endpoint, query)
            else:
                status, body = 404, {"error": f"no exchange {exchange!r}"}
        except ValueError as exc:  # a malformed parameter from the client
            status, body = 400, {"code": -1100, "msg": str(exc)} if exchange == "binance" else {"error": [f"EGeneral:Invalid arguments:{exc}"]}
        _send(request, status, body)

    def _limit(self, endpoint: str, requested: str | None, default: int, maximum: int) -> int:
        cap = min(maximum, self.limits.get(endpoint, maximum))
        return min(int(requested) if requested else default, cap)

    def _binance(self, endpoint: str, q: dict[str, str]) -> tuple[int, Any]:
        if endpoint == "exchangeInfo":
            return 200, {"timezone": "UTC", "serverTime": self.current_ms(), "rateLimits": [], "exchangeFilters": [],
                         "symbols": [_binance_symbol(m) for m in self.markets if m.exchange == "binance"]}
        if endpoint == "time":
            return 200, {"serverTime": self.current_ms()}
        symbol = q.get("symbol", "")
        known = {m.exchange_id for m in self.markets if m.exchange == "binance"}
        if symbol not in known or symbol in self.unknown_symbols:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        market = self.market("binance", symbol)
        now = self.current_ms()
        if endpoint == "klines":
            if q.get("interval") != "1m":
                return 400, {"code": -1120, "msg": "Invalid interval."}
            limit = self._limit("klines", q.get("limit"), 500, 1000)
            start = int(q.get("startTime", now - limit * MINUTE_MS))
            end = int(q["endTime"]) + 1 if "endTime" in q else now + 1
            rows = []
            for open_ms, o, h, low, c, v in candles_between(market, start, end, now, limit):
                rows.append([open_ms, o, h, low, c, v, open_ms + MINUTE_MS - 1, "0", 0, "0", "0", "0"])
            return 200, rows
        if endpoint == "aggTrades":
            limit = self._limit("aggTrades", q.get("limit"), 500, 1000)
            if "startTime" in q and "endTime" in q:
                start, end = int(q["startTime"]), int(q["endTime"])
                if end - start > 3_600_000:
                    return 400, {"code": -1127, "msg": "More than 1 hours between startTime and endTime."}
            else:
                start, end = now - 3_600_000, now
            rows = [{"a": t.id, "p": t.price, "q": t.amount, "f": t.id, "l": t.id, "T": t.ms,
                     "m": t.side == "sell", "M": True}
                    for t in trades_between(market, start, end + 1, now, limit)]
            return 200, rows
        if endpoint == "depth":
            limit = self._limit("depth", q.get("limit"), 100, 5000)
            bids, asks = _book(market, now, limit)
            return 200, {"lastUpdateId": now, "bids": bids, "asks": asks}
        return 404, {"code": -1, "msg": f"unknown endpoint {endpoint}"}

    def _kraken(self, endpoint: str, q: dict[str, str]) -> tuple[int, Any]:
        kraken = [m for m in self.markets if m.exchange == "kraken"]
        if endpoint == "AssetPairs":
            return 200, {"error": [], "result": {m.exchange_id: _kraken_pair(m) for m in kraken}}
        if endpoint == "Assets":
            assets = sorted({a for m in kraken for a in (m.base, m.quote)})
            return 200, {"error": [], "result": {a: {"aclass": "currency", "altname": a, "decimals": 10,
                                                     "display_decimals": 5, "status": "enabled"} for a in assets}}
        if endpoint == "Time":
            return 200, {"error": [], "result": {"unixtime": self.current_ms() // 1000}}
        pair = q.get("pair", "")
        if pair not in {m.exchange_id for m in kraken} or pair in self.unknown_symbols:
            return 200, {"error": ["EQuery:Unknown asset pair"]}
        market = self.market("kraken", pair)
        now = self.current_ms()
        if endpoint == "OHLC":
            if q.get("interval", "1") != "1":
                return 200, {"error": ["EGeneral:Invalid arguments"]}
            limit = self._limit("OHLC", None, 720, 720)
            # Kraken answers the entries *after* ``since`` (seconds).
            since = (int(q["since"]) + 1) * 1000 if "since" in q else now - limit * MINUTE_MS
            rows = [[open_ms // 1000, o, h, low, c, c, v, 1]
                    for open_ms, o, h, low, c, v in candles_between(market, since, now + 1, now, limit)]
            last = rows[-1][0] if rows else since // 1000
            return 200, {"error": [], "result": {pair: rows, "last": last}}
        if endpoint == "Trades":
            limit = self._limit("Trades", q.get("count"), 1000, 1000)
            since = int(q["since"]) * 1000 if "since" in q else now - 3_600_000
            trades = trades_between(market, since, now + 1, now, limit)
            rows = [[t.price, t.amount, f"{t.ms / 1000:.4f}", "b" if t.side == "buy" else "s", "l", "", t.id]
                    for t in trades]
            last = str(trades[-1].ms * 1_000_000) if trades else str(since * 1_000_000)
            return 200, {"error": [], "result": {pair: rows, "last": last}}
        if endpoint == "Depth":
            limit = self._limit("Depth", q.get("count"), 100, 500)
            bids, asks = _book(market, now, limit)
            now_s = f"{now / 1000:.3f}"
            return 200, {"error": [], "result": {pair: {"bids": [[p, a, now_s] for p, a in bids],
                                                       "asks": [[p, a, now_s] for p, a in asks]}}}
        return 200, {"error": [f"EGeneral:Unknown method {endpoint}"]}


def _book(market: FakeMarket, now_ms: int, depth: int) -> tuple[list[list[str]], list[list[str]]]:
    mid = market.base_price * (1.0 + 0.002 * math.sin((now_ms // MINUTE_MS) / 37.0))
    bids = [[f"{mid * (1 - 0.0001 * (i + 1)):.2f}", f"{0.1 * (i + 1):.3f}"] for i in range(depth)]
    asks = [[f"{mid * (1 + 0.0001 * (i + 1)):.2f}", f"{0.1 * (i + 1):.3f}"] for i in range(depth)]
    return bids, asks


def _binance_symbol(m: FakeMarket) -> dict[str, Any]:
    return {
        "symbol": m.exchange_id, "status": "TRADING", "baseAsset": m.base, "baseAssetPrecision": 8,
        "quoteAsset": m.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True, "ocoAllowed": True,
        "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "9000.000", "stepSize": "0.001"},
        ],
        "permissions": [], "permissionSets": [["SPOT"]],
    }


def _kraken_pair(m: FakeMarket) -> dict[str, Any]:
    return {
        "altname": m.exchange_id, "wsname": f"{m.base}/{m.quote}", "aclass_base": "currency", "base": m.base,
        "aclass_quote": "currency", "quote": m.quote, "lot": "unit", "cost_decimals": 5, "pair_decimals": 2,
        "lot_decimals": 8, "lot_multiplier": 1, "leverage_buy": [], "leverage_sell": [],
        "fees": [[0, 0.26]], "fees_maker": [[0, 0.16]], "fee_volume_currency": "ZUSD",
        "margin_call": 80, "margin_stop": 40, "ordermin": "0.0001", "costmin": "0.5", "tick_size": "0.01",
        "status": "online",
    }


def _send(request: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    _send_raw(request, status, json.dumps(body).encode(), headers)


def _send_raw(request: BaseHTTPRequestHandler, status: int, payload: bytes,
              headers: dict[str, str] | None = None, content_type: str = "application/json") -> None:
    try:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(payload)
    except (BrokenPipeError, ConnectionResetError):  # the client timed out and went away
        pass
