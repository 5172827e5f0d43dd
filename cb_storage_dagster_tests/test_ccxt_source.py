"""CcxtMarketDataSource against the local fake exchange (Binance spot and Kraken REST formats):
exact days through paging, retries of transient faults, clear refusals of permanent ones."""

from __future__ import annotations

import datetime as dt
import time

import dagster as dg
import pandas as pd
import pytest

from cb_storage_dagster.sources.ccxt.source import CcxtMarketDataSource
from cb_storage_dagster.transforms import canonical_dtypes, trades_to_ohlcv
from cb_storage_dagster_tests.support.fake_exchange import FakeExchange

DAY = dt.date(2024, 3, 1)
# (instrument, the fake's own market id): Kraken quotes BTC in USD, through an override.
VENUES = [("binance", "BTC", "BTCUSDT"), ("kraken", "BTC", "XBTUSD")]


def make_source(fake: FakeExchange, **settings) -> CcxtMarketDataSource:
    defaults = {"api_urls": fake.api_urls(), "symbol_overrides": {"kraken:BTC": "BTC/USD", "kraken:ETH": "ETH/USD"},
                "rate_limit_ms": 1, "timeout_ms": 2_000, "max_wait_seconds": 10}
    return CcxtMarketDataSource(**{**defaults, **settings})


def expected_trades(fake, exchange, coin, market_id, day=DAY) -> pd.DataFrame:
    rows = fake.expected_trades(exchange, market_id, day)
    return pd.DataFrame({
        "exchange": exchange, "coin": coin,
        "timestamp": pd.to_datetime([t.ms for t in rows], unit="ms", utc=True).astype("datetime64[us, UTC]"),
        "trade_id": [str(t.id) for t in rows], "price": [float(t.price) for t in rows],
        "amount": [float(t.amount) for t in rows], "side": [t.side for t in rows],
    }).astype(canonical_dtypes("trades"))


def expected_candles(fake, exchange, coin, market_id, day=DAY) -> pd.DataFrame:
    rows = fake.expected_candles(exchange, market_id, day)
    return pd.DataFrame({
        "exchange": exchange, "coin": coin,
        "timestamp": pd.to_datetime([r[0] for r in rows], unit="ms", utc=True).astype("datetime64[us, UTC]"),
        **{name: [float(r[i]) for r in rows] for i, name in enumerate(["open", "high", "low", "close", "volume"], 1)},
    }).astype(canonical_dtypes("ohlcv"))


@pytest.mark.parametrize(("exchange", "coin", "market_id"), VENUES)
def test_a_day_of_trades_is_exactly_the_exchanges_each_trade_once(fake, exchange, coin, market_id):
    trades = make_source(fake).fetch_trades(exchange, coin, DAY)
    pd.testing.assert_frame_equal(trades, expected_trades(fake, exchange, coin, market_id))
    assert trades["trade_id"].is_unique and len(trades) == 2880


@pytest.mark.parametrize(("exchange", "coin", "market_id"), VENUES)
def test_a_day_of_candles_is_exactly_the_exchanges_1440_minutes(fake, exchange, coin, market_id):
    candles = make_source(fake).fetch_ohlcv(exchange, coin, DAY)
    pd.testing.assert_frame_equal(candles, expected_candles(fake, exchange, coin, market_id))
    assert len(candles) == 1440
    # The fake's candles are built from its trades, as an exchange's are.
    from_trades = trades_to_ohlcv(make_source(fake).fetch_trades(exchange, coin, DAY), "1min")
    pd.testing.assert_frame_equal(from_trades.reset_index(drop=True), candles, check_exact=False, rtol=1e-12)


def test_small_pages_cover_the_day_with_page_edges_inside_a_millisecond(fake):
    fake.limits.update({"klines": 100, "aggTrades": 50})
    source = make_source(fake, page_limit=100)
    source_small_trades = make_source(fake, page_limit=50)
    assert len(source.fetch_ohlcv("binance", "BTC", DAY)) == 1440
    assert fake.requests["klines"] == 15  # 1440 candles / 100 per page
    trades = source_small_trades.fetch_trades("binance", "BTC", DAY)
    pd.testing.assert_frame_equal(trades, expected_trades(fake, "binance", "BTC", "BTCUSDT"))
    assert fake.requests["aggTrades"] > 24 * 2  # several full pages per one-hour window


def test_a_429_with_retry_after_is_waited_out_and_retried(fake):
    fake.add_fault("klines", "rate_limit", retry_after=1)
    source = make_source(fake)
    started = time.monotonic()
    candles = source.fetch_ohlcv("binance", "BTC", DAY)
    assert time.monotonic() - started >= 1.0
    assert len(candles) == 1440 and fake.requests["klines"] == 3  # 2 pages + the refused one


@pytest.mark.parametrize("kind", ["timeout", "malformed", "unavailable"])
@pytest.mark.parametrize(("exchange", "endpoint"), [("binance", "aggTrades"), ("kraken", "Trades")])
def test_a_transient_fault_is_retried_and_the_day_is_still_exact(fake, kind, exchange, endpoint):
    fake.add_fault(endpoint, kind, times=2, delay=1.5)
    source = make_source(fake, timeout_ms=500)
    market_id = dict((e, m) for e, _, m in VENUES)[exchange]
    trades = source.fetch_trades(exchange, "BTC", DAY)
    pd.testing.assert_frame_equal(trades, expected_trades(fake, exchange, "BTC", market_id))


def test_a_fault_outlasting_the_budget_is_a_retryable_failure(fake):
    fake.add_fault("klines", "unavailable", times=10)
    with pytest.raises(dg.Failure) as info:
        make_source(fake, max_attempts=3).fetch_ohlcv("binance", "BTC", DAY)
    assert info.value.allow_retries is True
    assert "binance:BTC" in info.value.description and "3 attempt" in info.value.description
    assert fake.requests["klines"] == 3


@pytest.mark.parametrize(("exchange", "market_id", "endpoint"), [("binance", "ETHUSDT", "aggTrades"),
                                                                  ("kraken", "ETHUSD", "Trades")])
def test_a_symbol_the_exchange_rejects_fails_at_once_naming_the_instrument(fake, exchange, market_id, endpoint):
    fake.unknown_symbols.add(market_id)  # listed by the markets endpoint, refused by the data endpoint
    with pytest.raises(dg.Failure) as info:
        make_source(fake).fetch_trades(exchange, "ETH", DAY)
    assert info.value.allow_retries is False
    assert f"{exchange}:ETH" in info.value.description and "refused" in info.value.description
    assert fake.requests[endpoint] == 1  # not retried


def test_an_instrument_the_exchange_does_not_list_says_how_to_map_it(fake):
    with pytest.raises(dg.Failure, match="binance:DOGE maps to the symbol 'DOGE/USDT'.*symbol override") as info:
        make_source(fake).fetch_trades("binance", "DOGE", DAY)
    assert info.value.allow_retries is False


def test_a_day_in_the_future_is_refused_before_any_request(fake):
    tomorrow = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1)
    with pytest.raises(dg.Failure, match="in the future") as info:
        make_source(fake).fetch_ohlcv("binance", "BTC", tomorrow)
    assert info.value.allow_retries is False and sum(fake.requests.values()) == 0


def test_a_day_before_the_listing_is_refused_and_the_listing_day_is_partial(fake):
    source = make_source(fake)
    with pytest.raises(dg.Failure, match="before its listing.*2024-03-02 12:00") as info:
        source.fetch_trades("binance", "NEW", dt.date(2024, 3, 1))
    assert info.value.allow_retries is False
    listing_day = dt.date(2024, 3, 2)
    candles = source.fetch_ohlcv("binance", "NEW", listing_day)
    assert len(candles) == 720 and candles["timestamp"].min() == pd.Timestamp("2024-03-02 12:00", tz="UTC")
    pd.testing.assert_frame_equal(
        source.fetch_trades("binance", "NEW", listing_day), expected_trades(fake, "binance", "NEW", "NEWUSDT", listing_day))


def test_order_books_are_snapshots_of_today_only(fake):
    source = make_source(fake, order_book_depth=5)
    today = dt.datetime.now(dt.timezone.utc).date()
    book = source.fetch_order_book("kraken", "BTC", today)
    assert book["side"].tolist() == ["bid"] * 5 + ["ask"] * 5 and book["level"].tolist() == [0, 1, 2, 3, 4] * 2
    assert book["timestamp"].nunique() == 1 and book["timestamp"].iloc[0].date() == today
    assert book["price"].iloc[0] < book["price"].iloc[5]  # best bid below best ask
    with pytest.raises(dg.Failure, match="no history") as info:
        source.fetch_order_book("kraken", "BTC", DAY)
    assert info.value.allow_retries is False


def test_a_snapshot_for_the_snapshot_schedule_is_the_current_book_stamped_with_the_tick(fake):
    source = make_source(fake, order_book_depth=3)
    tick = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    book = source.fetch_order_book_snapshot("binance", "BTC", tick)
    assert len(book) == 6 and set(book["timestamp"]) == {pd.Timestamp(tick)}
    assert book["side"].tolist() == ["bid"] * 3 + ["ask"] * 3
    with pytest.raises(dg.Failure, match="no history"):
        source.fetch_order_book_snapshot("binance", "BTC", dt.datetime(2024, 3, 1, 12, tzinfo=dt.timezone.utc))
