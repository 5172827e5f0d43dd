"""The embedded synthetic market-data source: deterministic, canonical and plausible."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from cb_storage_dagster.domain.errors import InvalidKeyError
from cb_storage_dagster.sources.base import ORDER_BOOK_COLUMNS, TRADE_COLUMNS, MarketDataSource
from cb_storage_dagster.sources.synthetic import SyntheticMarketDataSource

DAY = dt.date(2024, 1, 2)


@pytest.fixture
def source() -> SyntheticMarketDataSource:
    return SyntheticMarketDataSource()


@pytest.fixture
def btc_trades(source: SyntheticMarketDataSource) -> pd.DataFrame:
    return source.fetch_trades("binance", "BTC", DAY)


@pytest.fixture
def btc_book(source: SyntheticMarketDataSource) -> pd.DataFrame:
    return source.fetch_order_book("binance", "BTC", DAY)


class TestDeterminism:
    def test_same_instrument_day_gives_identical_trades_and_books(self, source):
        first = source.fetch_trades("binance", "ETH", DAY)
        again = SyntheticMarketDataSource().fetch_trades("binance", "ETH", DAY)
        pd.testing.assert_frame_equal(first, again)
        pd.testing.assert_frame_equal(
            source.fetch_order_book("binance", "ETH", DAY),
            SyntheticMarketDataSource().fetch_order_book("binance", "ETH", DAY),
        )

    def test_known_values_are_stable_across_processes(self, btc_trades):
        # Seeded from a BLAKE2 hash, not Python's salted hash(): pinned values must not move.
        # (The price moved once, on purpose, when the intraday path went to a ten-second grid
        # and the exchange-day became one vectorized draw: issue 17.)
        first = btc_trades.iloc[0]
        assert first["trade_id"] == "binance-BTC-20240102-000001"
        assert str(first["timestamp"]) == "2024-01-02 00:00:25.414024+00:00"
        assert first["price"] == pytest.approx(38669.72)

    def test_other_day_exchange_coin_or_seed_gives_other_data(self, source, btc_trades):
        for other in (
            source.fetch_trades("binance", "BTC", DAY + dt.timedelta(days=1)),
            source.fetch_trades("coinbase", "BTC", DAY),
            source.fetch_trades("binance", "ETH", DAY),
            SyntheticMarketDataSource(seed=1).fetch_trades("binance", "BTC", DAY),
        ):
            assert not np.array_equal(other["price"].to_numpy(), btc_trades["price"].to_numpy())

    def test_price_path_continues_across_midnight(self, source, btc_trades):
        next_day = source.fetch_trades("binance", "BTC", DAY + dt.timedelta(days=1))
        last_close, next_open = btc_trades["price"].iloc[-1], next_day["price"].iloc[0]
        assert abs(next_open / last_close - 1) < 0.01

    def test_exchanges_quote_the_same_coin_at_nearly_the_same_price(self, source, btc_trades):
        coinbase = source.fetch_trades("coinbase", "BTC", DAY)
        assert coinbase["price"].median() == pytest.approx(btc_trades["price"].median(), rel=0.005)


class TestTrades:
    def test_have_exactly_the_canonical_columns_and_dtypes(self, btc_trades):
        assert list(btc_trades.columns) == TRADE_COLUMNS
        assert str(btc_trades["timestamp"].dtype) == "datetime64[us, UTC]"
        assert btc_trades["price"].dtype == np.float64
        assert btc_trades["amount"].dtype == np.float64
        for column in ("exchange", "coin", "trade_id", "side"):
            assert pd.api.types.is_string_dtype(btc_trades[column]), column
        assert (btc_trades["exchange"] == "binance").all()
        assert (btc_trades["coin"] == "BTC").all()

    def test_default_count_is_2880_and_configurable(self, btc_trades):
        assert len(btc_trades) == 2880
        small = SyntheticMarketDataSource(trades_per_day=10).fetch_trades("binance", "BTC", DAY)
        assert len(small) == 10

    def test_timestamps_are_sorted_and_spread_over_the_whole_utc_day(self, btc_trades):
        ts = btc_trades["timestamp"]
        assert ts.is_monotonic_increasing
        assert ts.min() >= pd.Timestamp("2024-01-02", tz="UTC")
        assert ts.max() < pd.Timestamp("2024-01-03", tz="UTC")
        assert ts.dt.hour.nunique() == 24
        assert ts.dt.floor("min").nunique() == 1440  # every minute of the day has trades

    def test_trade_ids_are_unique_and_numbered_from_one(self, btc_trades):
        assert btc_trades["trade_id"].is_unique
        assert btc_trades["trade_id"].iloc[-1] == "binance-BTC-20240102-002880"

    def test_prices_sizes_and_sides_are_plausible(self, btc_trades):
        assert (btc_trades["price"] > 0).all() and (btc_trades["amount"] > 0).all()
        assert btc_trades["price"].between(40_000 / 3, 40_000 * 3).all()
        assert btc_trades["price"].max() / btc_trades["price"].min() < 1.5  # one day's range
        assert set(btc_trades["side"]) == {"buy", "sell"}
        assert 0.4 < (btc_trades["side"] == "buy").mean() < 0.6
        notional = btc_trades["price"] * btc_trades["amount"]
        assert 100 < notional.median() < 2_500  # lognormal around ~500 in quote currency
        assert notional.max() > 10 * notional.median()  # heavy right tail

    @pytest.mark.parametrize(("coin", "base"), [("BTC", 40_000), ("ETH", 2_500), ("SOL", 100)])
    def test_known_coins_trade_near_their_reference_price(self, source, coin, base):
        for day in (DAY, dt.date(2024, 6, 30), dt.date(2025, 3, 1)):
            median = source.fetch_trades("binance", coin, day)["price"].median()
            assert base / 3 < median < base * 3

    def test_other_coins_get_a_stable_price_from_their_name(self, source):
        doge = source.fetch_trades("kraken", "DOGE", DAY)["price"]
        assert 0.01 < doge.median() < 10_000
        assert doge.equals(source.fetch_trades("kraken", "DOGE", DAY)["price"])


class TestOrderBook:
    def test_has_exactly_the_canonical_columns_and_dtypes(self, btc_book):
        assert list(btc_book.columns) == ORDER_BOOK_COLUMNS
        assert str(btc_book["timestamp"].dtype) == "datetime64[us, UTC]"
        assert btc_book["level"].dtype == np.int32
        assert btc_book["price"].dtype == np.float64
        assert btc_book["amount"].dtype == np.float64

    def test_a_snapshot_every_hour_with_ten_levels_per_side(self, btc_book):
        snapshots = btc_book["timestamp"].drop_duplicates()
        assert len(snapshots) == 24
        assert (snapshots.diff().dropna() == pd.Timedelta(hours=1)).all()
        assert snapshots.iloc[0] == pd.Timestamp("2024-01-02", tz="UTC")
        assert len(btc_book) == 24 * 2 * 10
        per_side = btc_book.groupby(["timestamp", "side"])["level"].apply(list)
        assert all(levels == list(range(10)) for levels in per_side)

    def test_interval_and_depth_are_configurable(self):
        book = SyntheticMarketDataSource(snapshot_interval_minutes=15, depth=3).fetch_order_book(
            "binance", "BTC", DAY
        )
        assert book["timestamp"].nunique() == 96
        assert sorted(book["level"].unique()) == [0, 1, 2]

    def test_levels_move_away_from_the_mid_and_the_book_is_not_crossed(self, btc_book):
        for _, snapshot in btc_book.groupby("timestamp"):
            bids = snapshot[snapshot["side"] == "bid"].sort_values("level")["price"]
            asks = snapshot[snapshot["side"] == "ask"].sort_values("level")["price"]
            assert bids.is_monotonic_decreasing and bids.is_unique
            assert asks.is_monotonic_increasing and asks.is_unique
            assert bids.iloc[0] < asks.iloc[0]
            spread = asks.iloc[0] / bids.iloc[0] - 1
            assert 0 < spread < 0.001  # a few basis points
        assert (btc_book["amount"] > 0).all()

    def test_mid_price_agrees_with_the_trades(self, btc_book, btc_trades):
        assert btc_book["price"].median() == pytest.approx(btc_trades["price"].median(), rel=0.01)


class TestInterface:
    def test_base_class_methods_are_not_implemented(self):
        base = MarketDataSource()
        with pytest.raises(NotImplementedError):
            base.fetch_trades("binance", "BTC", DAY)
        with pytest.raises(NotImplementedError):
            base.fetch_order_book("binance", "BTC", DAY)

    def test_invalid_names_are_refused_before_generating(self, source):
        with pytest.raises(InvalidKeyError):
            source.fetch_trades("binance", "BTC' OR '1'='1", DAY)

    @pytest.mark.parametrize(
        "settings",
        [{"trades_per_day": 0}, {"snapshot_interval_minutes": 0}, {"depth": 0}],
    )
    def test_nonsensical_settings_raise_a_clear_error(self, settings):
        source = SyntheticMarketDataSource(**settings)
        with pytest.raises(ValueError, match=next(iter(settings))):
            source.fetch_trades("binance", "BTC", DAY)
            source.fetch_order_book("binance", "BTC", DAY)


class TestExchangeDayInOneCall:
    def test_many_coins_at_once_are_row_for_row_each_coins_own_trades(self, source):
        day = dt.date(2024, 1, 2)
        both = source.fetch_trades_many("binance", ["BTC", "DOGE"], day)
        for coin in ["BTC", "DOGE"]:
            alone = source.fetch_trades("binance", coin, day)
            pd.testing.assert_frame_equal(both[both["coin"] == coin].reset_index(drop=True), alone)

    def test_a_coins_trades_do_not_depend_on_the_other_coins_asked(self, source):
        day = dt.date(2024, 1, 2)
        few = source.fetch_trades_many("binance", ["ETH"], day)
        many = source.fetch_trades_many("binance", ["ADA", "ETH", "XRP"], day)
        pd.testing.assert_frame_equal(many[many["coin"] == "ETH"].reset_index(drop=True), few)

    def test_an_invalid_coin_anywhere_in_the_list_refuses_the_whole_call(self, source):
        with pytest.raises(ValueError, match="coin"):
            source.fetch_trades_many("binance", ["BTC", "../etc"], dt.date(2024, 1, 2))

    def test_the_books_mid_price_is_the_trades_mid_price(self, source):
        day = dt.date(2024, 1, 2)
        trades = source.fetch_trades("binance", "SOL", day)
        book = source.fetch_order_book("binance", "SOL", day)
        assert book["price"].median() == pytest.approx(trades["price"].median(), rel=0.01)
