"""Trades to candles and candles to coarser candles, against hand-computed expectations."""

import pandas as pd
import pytest

from cb_storage_dagster.transforms import (
    OHLCV_COLUMNS,
    canonical_columns,
    canonical_dtypes,
    empty_frame,
    resample_ohlcv,
    trades_to_ohlcv,
)

CANONICAL_OHLCV_DTYPES = {
    "exchange": "str",
    "coin": "str",
    "timestamp": "datetime64[us, UTC]",
    "open": "float64",
    "high": "float64",
    "low": "float64",
    "close": "float64",
    "volume": "float64",
}


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def trades_frame(rows: list[tuple]) -> pd.DataFrame:
    """Trades from (exchange, coin, time, price, amount) tuples, in the given order."""
    frame = pd.DataFrame(rows, columns=["exchange", "coin", "timestamp", "price", "amount"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601").dt.as_unit("us")
    frame.insert(3, "trade_id", [f"t{i}" for i in range(len(frame))])
    frame["side"] = "buy"
    return frame


def candles_frame(rows: list[tuple]) -> pd.DataFrame:
    """Candles from (exchange, coin, time, open, high, low, close, volume) tuples."""
    frame = pd.DataFrame(rows, columns=OHLCV_COLUMNS)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    return frame.astype(CANONICAL_OHLCV_DTYPES)


# Two instruments over three minutes, deliberately out of time order, with a gap minute
# for ETH (00:01) and an exchange/coin order that differs from the input order.
TRADES = trades_frame(
    [
        ("binance", "ETH", "2024-01-02 00:02:10", 2510.0, 1.0),
        ("binance", "BTC", "2024-01-02 00:00:30", 40010.0, 0.2),
        ("binance", "BTC", "2024-01-02 00:00:05", 40000.0, 0.1),
        ("binance", "BTC", "2024-01-02 00:00:59.999999", 39990.0, 0.3),
        ("binance", "BTC", "2024-01-02 00:00:45", 40050.0, 0.05),
        ("binance", "ETH", "2024-01-02 00:00:00", 2500.0, 2.0),
        ("binance", "BTC", "2024-01-02 00:01:00", 40020.0, 0.5),
        ("binance", "BTC", "2024-01-02 00:02:30", 40030.0, 0.25),
        ("binance", "ETH", "2024-01-02 00:02:50", 2490.0, 0.5),
        ("binance", "BTC", "2024-01-02 00:01:40", 40040.0, 0.5),
        ("binance", "ETH", "2024-01-02 00:00:20", 2505.0, 3.0),
    ]
)

# Worked out by hand from TRADES:
# BTC 00:00 -> trades at :05 40000 (0.1), :30 40010 (0.2), :45 40050 (0.05), :59.999999 39990 (0.3)
# BTC 00:01 -> :00 40020 (0.5), :40 40040 (0.5);  BTC 00:02 -> :30 40030 (0.25)
# ETH 00:00 -> :00 2500 (2.0), :20 2505 (3.0);     ETH 00:02 -> :10 2510 (1.0), :50 2490 (0.5)
EXPECTED_1MIN = candles_frame(
    [
        ("binance", "BTC", "2024-01-02 00:00", 40000.0, 40050.0, 39990.0, 39990.0, 0.65),
        ("binance", "BTC", "2024-01-02 00:01", 40020.0, 40040.0, 40020.0, 40040.0, 1.0),
        ("binance", "BTC", "2024-01-02 00:02", 40030.0, 40030.0, 40030.0, 40030.0, 0.25),
        ("binance", "ETH", "2024-01-02 00:00", 2500.0, 2505.0, 2500.0, 2505.0, 5.0),
        ("binance", "ETH", "2024-01-02 00:02", 2510.0, 2510.0, 2490.0, 2490.0, 1.5),
    ]
)


class TestTradesToOhlcv:
    def test_one_minute_candles_match_the_hand_computed_ones(self):
        pd.testing.assert_frame_equal(trades_to_ohlcv(TRADES), EXPECTED_1MIN)

    def test_output_has_canonical_columns_dtypes_and_order(self):
        candles = trades_to_ohlcv(TRADES)
        assert list(candles.columns) == OHLCV_COLUMNS
        assert {c: str(t) for c, t in candles.dtypes.items()} == CANONICAL_OHLCV_DTYPES
        assert list(candles.index) == list(range(len(candles)))

    def test_minutes_without_trades_have_no_candle(self):
        eth = trades_to_ohlcv(TRADES).query("coin == 'ETH'")
        assert list(eth["timestamp"].dt.strftime("%H:%M")) == ["00:00", "00:02"]

    def test_two_minute_candles(self):
        expected = candles_frame(
            [
                ("binance", "BTC", "2024-01-02 00:00", 40000.0, 40050.0, 39990.0, 40040.0, 1.65),
                ("binance", "BTC", "2024-01-02 00:02", 40030.0, 40030.0, 40030.0, 40030.0, 0.25),
                ("binance", "ETH", "2024-01-02 00:00", 2500.0, 2505.0, 2500.0, 2505.0, 5.0),
                ("binance", "ETH", "2024-01-02 00:02", 2510.0, 2510.0, 2490.0, 2490.0, 1.5),
            ]
        )
        pd.testing.assert_frame_equal(trades_to_ohlcv(TRADES, "2min"), expected)

    def test_trades_at_the_same_instant_keep_their_input_order(self):
        same_time = trades_frame(
            [
                ("kraken", "SOL", "2024-01-02 10:00:00", 101.0, 1.0),
                ("kraken", "SOL", "2024-01-02 10:00:00", 99.0, 1.0),
            ]
        )
        candle = trades_to_ohlcv(same_time).iloc[0]
        assert (candle["open"], candle["close"]) == (101.0, 99.0)

    def test_timestamps_in_another_zone_are_bucketed_in_utc(self):
        trades = TRADES.head(1).assign(
            timestamp=pd.Series([pd.Timestamp("2024-01-02 01:02:10", tz="Europe/Berlin")])
        )
        assert trades_to_ohlcv(trades)["timestamp"].iloc[0] == utc("2024-01-02 00:02")

    def test_empty_trades_give_an_empty_canonical_frame(self):
        empty = trades_to_ohlcv(TRADES.iloc[:0])
        assert empty.empty
        assert {c: str(t) for c, t in empty.dtypes.items()} == CANONICAL_OHLCV_DTYPES

    def test_missing_columns_and_calendar_intervals_are_refused(self):
        with pytest.raises(ValueError, match="amount"):
            trades_to_ohlcv(TRADES.drop(columns="amount"))
        with pytest.raises(ValueError, match="interval"):
            trades_to_ohlcv(TRADES, "fortnightly")


class TestResampleOhlcv:
    def test_minutes_to_a_daily_candle_per_instrument(self):
        expected = candles_frame(
            [
                ("binance", "BTC", "2024-01-02", 40000.0, 40050.0, 39990.0, 40030.0, 1.9),
                ("binance", "ETH", "2024-01-02", 2500.0, 2510.0, 2490.0, 2490.0, 6.5),
            ]
        )
        pd.testing.assert_frame_equal(resample_ohlcv(EXPECTED_1MIN), expected)

    def test_resampling_equals_aggregating_the_trades_directly(self):
        for interval in ("2min", "1h", "1D"):
            pd.testing.assert_frame_equal(
                resample_ohlcv(trades_to_ohlcv(TRADES), interval),
                trades_to_ohlcv(TRADES, interval),
            )

    def test_days_stay_separate_and_unordered_input_is_sorted(self):
        candles = candles_frame(
            [
                ("x", "A", "2024-01-03 00:10", 5.0, 6.0, 4.0, 5.5, 1.0),
                ("x", "A", "2024-01-02 23:59", 3.0, 3.5, 2.5, 3.2, 2.0),
                ("x", "A", "2024-01-02 00:00", 2.0, 4.0, 1.0, 3.0, 1.0),
            ]
        )
        daily = resample_ohlcv(candles, "1D")
        expected = candles_frame(
            [
                ("x", "A", "2024-01-02", 2.0, 4.0, 1.0, 3.2, 3.0),
                ("x", "A", "2024-01-03", 5.0, 6.0, 4.0, 5.5, 1.0),
            ]
        )
        pd.testing.assert_frame_equal(daily, expected)

    def test_empty_candles_give_an_empty_canonical_frame(self):
        empty = resample_ohlcv(EXPECTED_1MIN.iloc[:0])
        assert empty.empty and list(empty.columns) == OHLCV_COLUMNS


class TestCanonicalFrames:
    def test_columns_and_dtypes_come_from_the_storage_schemas(self):
        assert canonical_columns("ohlcv") == OHLCV_COLUMNS
        assert canonical_columns("order_book") == [
            "exchange", "coin", "timestamp", "side", "level", "price", "amount"
        ]
        assert canonical_dtypes("ohlcv") == CANONICAL_OHLCV_DTYPES

    @pytest.mark.parametrize("data_type", ["ohlcv", "trades", "order_book"])
    def test_empty_frames_have_canonical_columns(self, data_type):
        frame = empty_frame(data_type)
        assert frame.empty and list(frame.columns) == canonical_columns(data_type)
        assert {c: str(t) for c, t in frame.dtypes.items()} == canonical_dtypes(data_type)


def pandas_reference(trades: pd.DataFrame, interval: str) -> pd.DataFrame:
    """What the candles mean, said with pandas' groupby on a stably sorted frame."""
    frame = trades.assign(timestamp=pd.to_datetime(trades["timestamp"], utc=True).dt.as_unit("us"))
    frame = frame.sort_values(["exchange", "coin", "timestamp"], kind="mergesort")
    buckets = frame["timestamp"].dt.floor(interval).rename("timestamp")
    candles = frame.groupby([frame["exchange"], frame["coin"], buckets], sort=True).agg(
        open=("price", "first"), high=("price", "max"), low=("price", "min"),
        close=("price", "last"), volume=("amount", "sum"),
    ).reset_index()
    return candles[OHLCV_COLUMNS].astype(CANONICAL_OHLCV_DTYPES).reset_index(drop=True)


class TestVectorizedCandlesMeanWhatPandasGroupbyMeans:
    """The fast path (Arrow keys, numpy reductions) gives exactly pandas' groupby result."""

    @pytest.mark.parametrize("seed", range(8))
    @pytest.mark.parametrize("interval", ["1min", "15min", "1D"])
    def test_random_unsorted_frames_with_ties_gaps_and_missing_values(self, seed, interval):
        import numpy as np

        rng = np.random.default_rng(seed)
        n = 3_000
        price = 100 + rng.random(n)
        price[rng.random(n) < 0.05] = np.nan
        amount = rng.random(n)
        amount[rng.random(n) < 0.05] = np.nan
        seconds = rng.integers(0, 2 * 86_400, n) // 7 * 7  # ties on purpose
        trades = pd.DataFrame({
            "exchange": rng.choice(["kraken", "binance", "okx"], n),
            "coin": rng.choice(["ETH", "BTC", "SOL", "ADA"], n),
            "timestamp": pd.Timestamp("2024-01-02", tz="UTC") + pd.to_timedelta(seconds, unit="s"),
            "price": price, "amount": amount,
        })
        candles = trades_to_ohlcv(trades, interval)
        pd.testing.assert_frame_equal(candles, pandas_reference(trades, interval))

    def test_rows_missing_an_instrument_or_a_time_belong_to_no_candle(self):
        trades = pd.DataFrame({
            "exchange": ["binance", None, "binance", "binance"],
            "coin": ["BTC", "BTC", None, "BTC"],
            "timestamp": [utc("2024-01-02 00:00:01"), utc("2024-01-02 00:00:02"),
                          utc("2024-01-02 00:00:03"), pd.NaT],
            "price": [1.0, 2.0, 3.0, 4.0], "amount": [1.0, 1.0, 1.0, 1.0],
        })
        candles = trades_to_ohlcv(trades)
        assert candles[["open", "close", "volume"]].values.tolist() == [[1.0, 1.0, 1.0]]

    def test_a_sorted_exchange_day_is_aggregated_without_reordering(self):
        import numpy as np

        per_coin = 500
        trades = pd.DataFrame({
            "exchange": "binance",
            "coin": np.repeat(["AAA", "BBB"], per_coin),
            "timestamp": pd.Timestamp("2024-01-02", tz="UTC")
            + pd.to_timedelta(np.tile(np.arange(per_coin) * 60, 2), unit="s"),
            "price": np.arange(2 * per_coin, dtype="float64"), "amount": 1.0,
        })
        candles = trades_to_ohlcv(trades)
        assert len(candles) == 2 * per_coin
        pd.testing.assert_frame_equal(candles, pandas_reference(trades, "1min"))

    def test_frames_read_back_from_storage_with_chunked_arrow_columns(self):
        """What an IO manager hands an asset: pandas columns backed by chunked Arrow arrays."""
        import pyarrow as pa

        trades = trades_frame([
            ("binance", "BTC", "2024-01-02 00:00:05", 10.0, 1.0),
            ("binance", "ETH", "2024-01-02 00:00:06", 20.0, 2.0),
        ])
        halves = [pa.Table.from_pandas(trades.iloc[i : i + 1], preserve_index=False) for i in (0, 1)]
        chunked = pa.concat_tables(halves).to_pandas(types_mapper=pd.ArrowDtype)
        assert isinstance(pa.array(chunked["coin"]), pa.ChunkedArray)
        pd.testing.assert_frame_equal(trades_to_ohlcv(chunked), trades_to_ohlcv(trades))
