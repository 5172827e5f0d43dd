"""The exchange profile's materializations carry the run's coverage (complete / partial /
missing instruments per exchange-day) as Markdown, where the partition grid shows one square
per exchange-day; the same classification as ``cb-storage coverage``."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd

from cb_storage_dagster.orchestration import SyntheticMarketDataSource, build_pipeline

UNIVERSE = ["binance:BTC", "binance:ETH", "binance:SOL", "kraken:BTC"]


class HalfDayEthNoSol(SyntheticMarketDataSource):
    """Dense synthetic trades, except binance:ETH trades only until noon and binance:SOL not at all."""

    def fetch_trades(self, exchange: str, coin: str, day: dt.date) -> pd.DataFrame:
        frame = super().fetch_trades(exchange, coin, day)
        if (exchange, coin) == ("binance", "SOL"):
            return frame.iloc[0:0]
        if (exchange, coin) == ("binance", "ETH"):
            return frame[frame["timestamp"] < pd.Timestamp(day).tz_localize("UTC") + pd.Timedelta(hours=12)]
        return frame


def coverage_of(result: dg.ExecuteInProcessResult, asset: str) -> str:
    [event] = result.asset_materializations_for_node(asset)
    value = event.metadata["coverage"]
    assert isinstance(value, dg.MarkdownMetadataValue)
    return value.value


def test_an_exchange_day_shows_complete_partial_and_missing_instruments():
    pipeline = build_pipeline("exchange", UNIVERSE)
    result = dg.materialize_to_memory(
        [pipeline.assets.trades, pipeline.assets.ohlcv_1m],
        resources={"market_data_source": HalfDayEthNoSol(trades_per_day=8640)},
        partition_key=dg.MultiPartitionKey({"date": "2024-01-02", "exchange": "binance"}),
    )
    assert result.success
    candles = coverage_of(result, "ohlcv_1m")
    assert candles.splitlines()[0] == (
        "**Coverage of this run**: 1 complete, 1 partial, 1 missing of 3 instrument-days "
        "(a complete day has 1440 intervals)"
    )
    assert "| binance | 2024-01-02 | 1 | 1 | 1 | ETH (partial 720/1440), SOL (missing) |" in candles
    # trades have no cadence: any trade makes the day complete
    trades = coverage_of(result, "trades")
    assert "| binance | 2024-01-02 | 2 | 0 | 1 | SOL (missing) |" in trades
