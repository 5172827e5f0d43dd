"""The exchange-independent parts of the ccxt source, without any exchange: symbol mapping,
paging a day with de-duplication at page edges, and the retry budget."""

from __future__ import annotations

import bisect

import pytest

from cb_storage_dagster.domain.errors import (
    SourceConfigError,
    SourceRequestError,
    SourceUnavailableError,
)
from cb_storage_dagster.retry import RetryStats, Transient
from cb_storage_dagster.sources.ccxt.client import RetryBudget, call_with_retry
from cb_storage_dagster.sources.ccxt.paging import PageStats, page_candles, page_trades
from cb_storage_dagster.sources.ccxt.symbols import SymbolMap, parse_symbol_overrides

MIN = 60_000
DAY = 1440 * MIN


# -- symbols ---------------------------------------------------------------------------------
def test_a_coin_trades_against_the_default_quote_unless_overridden():
    symbols = SymbolMap.build("USDT", {"kraken:BTC": "BTC/USD"})
    assert symbols.symbol("binance", "BTC") == "BTC/USDT"
    assert symbols.symbol("kraken", "BTC") == "BTC/USD"
    assert symbols.symbol("kraken", "ETH") == "ETH/USDT"


@pytest.mark.parametrize(
    ("quote", "overrides", "message"),
    [
        ("usdt", {}, "default quote currency 'usdt'"),
        ("", {}, "default quote currency ''"),
        ("USDT", {"kraken-BTC": "BTC/USD"}, "write EXCHANGE:COIN"),
        ("USDT", {"kraken:BTC'--": "BTC/USD"}, "kraken:BTC'--"),
        ("USDT", {"kraken:BTC": "BTCUSD"}, "write it as BASE/QUOTE"),
    ],
)
def test_a_bad_symbol_configuration_is_refused_saying_what_to_write(quote, overrides, message):
    with pytest.raises(SourceConfigError, match=message.replace("'", ".")):
        SymbolMap.build(quote, overrides)


def test_overrides_parse_from_the_environment_form():
    assert parse_symbol_overrides(" kraken:BTC=BTC/USD ,kraken:ETH=ETH/USD,") == {
        "kraken:BTC": "BTC/USD", "kraken:ETH": "ETH/USD"}
    with pytest.raises(SourceConfigError, match="no '='"):
        parse_symbol_overrides("kraken:BTC")


# -- paging ----------------------------------------------------------------------------------
class CandleVenue:
    """Candles every minute of [first, last); ``since``/``until`` honoured, ``cap`` per page."""

    def __init__(self, first: int, last: int, cap: int, honour_until: bool = True):
        self.rows = [[t, 1.0, 2.0, 0.5, 1.5, 3.0] for t in range(first, last, MIN)]
        self.cap, self.honour_until, self.calls = cap, honour_until, []

    def __call__(self, since, until, limit):
        self.calls.append((since, until, limit))
        end = until if self.honour_until else 10**15
        return [r for r in self.rows if since <= r[0] <= end][: min(limit, self.cap)]


def test_candles_of_a_day_come_in_pages_and_exactly_the_day():
    venue = CandleVenue(-10 * MIN, DAY + 10 * MIN, cap=500)
    stats = PageStats()
    rows = page_candles(venue, 0, DAY, limit=500, stats=stats)
    assert [r[0] for r in rows] == list(range(0, DAY, MIN))
    assert stats.pages == 3 and [c[0] for c in venue.calls] == [0, 500 * MIN, 1000 * MIN]


def test_candles_from_a_venue_ignoring_until_are_cut_at_midnight():
    venue = CandleVenue(0, 2 * DAY, cap=1000, honour_until=False)
    rows = page_candles(venue, 0, DAY, limit=1000)
    assert len(rows) == 1440 and rows[-1][0] == DAY - MIN


def test_overlapping_candle_pages_keep_each_timestamp_once():
    rows = [[t, 1.0, 1.0, 1.0, 1.0, 1.0] for t in range(0, DAY, MIN)]

    def overlapping(since, until, limit):  # every page repeats the two previous candles
        return [r for r in rows if since - 2 * MIN <= r[0] <= until][:limit]

    stats = PageStats()
    got = page_candles(overlapping, 0, DAY, limit=300, stats=stats)
    assert [r[0] for r in got] == list(range(0, DAY, MIN)) and stats.duplicates > 0


def test_a_day_listed_at_noon_is_returned_from_noon_and_an_empty_day_stops_at_once():
    venue = CandleVenue(DAY // 2, DAY, cap=1000)
    assert [r[0] for r in page_candles(venue, 0, DAY, limit=1000)][:1] == [DAY // 2]
    empty = CandleVenue(2 * DAY, 3 * DAY, cap=1000)
    assert page_candles(empty, 0, DAY, limit=1000) == [] and len(empty.calls) == 1


def trade_tape(n_per_ms: int = 3, step: int = 1000, end: int = DAY) -> list[dict]:
    """``n_per_ms`` trades every ``step`` ms: page edges fall inside a millisecond."""
    return [{"id": str(i), "timestamp": (i // n_per_ms) * step} for i in range(end // step * n_per_ms)]


class TradeVenue:
    """Trades from ``since`` (rounded down to ``since_resolution``), at most ``cap`` a page; with
    ``window``, ``until`` is honoured and a longer window refused (as Binance does)."""

    def __init__(self, tape, cap, window=None, since_resolution=1):
        self.tape, self.cap, self.window, self.res, self.calls = tape, cap, window, since_resolution, []
        self.times = [t["timestamp"] for t in tape]

    def __call__(self, since, until, limit):
        self.calls.append((since, until))
        if self.window is not None:
            assert until - since < self.window, "window too long"
        since = since // self.res * self.res  # e.g. Kraken takes seconds
        first = bisect.bisect_left(self.times, since)
        page = self.tape[first: first + min(limit, self.cap)]
        return [t for t in page if self.window is None or t["timestamp"] <= until]


def test_windowed_trades_page_inside_a_millisecond_without_loss_or_duplicates():
    tape = trade_tape(n_per_ms=3, step=1000)
    venue = TradeVenue(tape, cap=100, window=3_600_000)
    stats = PageStats()
    got = page_trades(venue, 0, DAY, limit=100, window_ms=3_600_000, stats=stats)
    assert [t["id"] for t in got] == [t["id"] for t in tape]
    assert stats.duplicates > 0 and stats.pages > 24


def test_trades_paged_by_a_coarse_since_drop_the_repeats_by_id():
    end = 3 * 3_600_000
    tape = trade_tape(n_per_ms=2, step=250, end=end)  # 8 trades per second; `since` in whole seconds
    venue = TradeVenue(tape + [{"id": "late", "timestamp": end + 5}], cap=1000, since_resolution=1000)
    got = page_trades(venue, 0, end, limit=1000)
    assert [t["id"] for t in got] == [t["id"] for t in tape]


def test_more_trades_in_one_millisecond_than_a_page_is_refused_not_looped():
    tape = [{"id": str(i), "timestamp": 5} for i in range(50)]
    with pytest.raises(SourceRequestError, match="share the time"):
        page_trades(TradeVenue(tape, cap=10, window=3_600_000), 0, DAY, limit=10, window_ms=3_600_000)


# -- retry -----------------------------------------------------------------------------------
class Flaky:
    def __init__(self, failures: list[Exception]):
        self.failures, self.calls = list(failures), 0

    def __call__(self):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "page"


def transient_timeouts(exc):
    return Transient(getattr(exc, "retry_after", None)) if isinstance(exc, TimeoutError) else None


def test_transient_failures_are_retried_with_growing_backoff():
    sleeps: list[float] = []
    budget = RetryBudget(max_attempts=4, base_delay=1.0, max_delay=10.0)
    assert call_with_retry(Flaky([TimeoutError(), TimeoutError()]), transient_timeouts, budget, sleep=sleeps.append) == "page"
    assert len(sleeps) == 2 and 0.75 <= sleeps[0] <= 1.25 and 1.5 <= sleeps[1] <= 2.5


def test_a_retry_after_hint_replaces_the_backoff():
    hinted = TimeoutError("429")
    hinted.retry_after = 7.0
    sleeps: list[float] = []
    call_with_retry(Flaky([hinted]), transient_timeouts, RetryBudget(max_wait_seconds=10), sleep=sleeps.append)
    assert sleeps == [7.0]


def test_the_budget_bounds_attempts_then_raises_a_transient_error():
    flaky, stats = Flaky([TimeoutError("slow")] * 10), RetryStats()
    with pytest.raises(SourceUnavailableError, match="3 attempt") as info:
        call_with_retry(flaky, transient_timeouts, RetryBudget(max_attempts=3, base_delay=0.01),
                        sleep=lambda s: None, stats=stats, describe="binance fetch_ohlcv(BTC/USDT)")
    assert flaky.calls == 3 and stats.retries == 2 and info.value.transient
    assert "binance fetch_ohlcv(BTC/USDT)" in str(info.value)


def test_the_budget_bounds_the_waiting_too():
    hinted = TimeoutError("429")
    hinted.retry_after = 120.0  # longer than the whole budget: give up now, do not sleep
    sleeps: list[float] = []
    with pytest.raises(SourceUnavailableError, match="wait budget of 30 s"):
        call_with_retry(Flaky([hinted]), transient_timeouts, RetryBudget(max_wait_seconds=30), sleep=sleeps.append)
    assert sleeps == []


def test_permanent_failures_are_not_retried():
    flaky = Flaky([KeyError("bad symbol")])
    with pytest.raises(KeyError):
        call_with_retry(flaky, transient_timeouts, RetryBudget(), sleep=lambda s: None)
    assert flaky.calls == 1


def test_a_budget_without_attempts_is_refused():
    with pytest.raises(SourceConfigError, match="max_attempts"):
        RetryBudget(max_attempts=0)
