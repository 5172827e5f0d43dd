"""CB_STORAGE_SOURCE picks the definitions' market-data source; bad ccxt settings stop the code
location at load with a message naming what to fix."""

from __future__ import annotations

import importlib

import pytest

from cb_storage_dagster.domain.errors import SourceConfigError
from cb_storage_dagster.sources.ccxt.source import CcxtMarketDataSource
from cb_storage_dagster.sources.selection import market_data_source_from_env
from cb_storage_dagster.sources.synthetic import SyntheticMarketDataSource


@pytest.fixture
def load_definitions(monkeypatch, tmp_path):
    def load(**env: str):
        monkeypatch.setenv("CB_STORAGE_LOCAL_ROOT_PATH", str(tmp_path / "data"))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        import cb_storage_dagster.definitions as module

        return importlib.reload(module).defs

    yield load
    monkeypatch.delenv("CB_STORAGE_SOURCE", raising=False)
    import cb_storage_dagster.definitions as module

    importlib.reload(module)  # leave the module as the default environment builds it


def test_the_synthetic_source_stays_the_default(load_definitions, monkeypatch):
    monkeypatch.delenv("CB_STORAGE_SOURCE", raising=False)
    assert isinstance(load_definitions().resources["market_data_source"], SyntheticMarketDataSource)


def test_ccxt_is_selected_and_configured_from_the_environment(load_definitions):
    defs = load_definitions(
        CB_STORAGE_SOURCE="ccxt", CB_STORAGE_CCXT_DEFAULT_QUOTE="USDC",
        CB_STORAGE_CCXT_SYMBOLS="kraken:BTC=BTC/USD", CB_STORAGE_CCXT_API_URLS="binance=http://127.0.0.1:9/binance",
        CB_STORAGE_CCXT_MAX_ATTEMPTS="3", CB_STORAGE_CCXT_PAGE_LIMIT="200",
    )
    source = defs.resources["market_data_source"]
    assert isinstance(source, CcxtMarketDataSource)
    assert source.symbol_for("binance", "ETH") == "ETH/USDC" and source.symbol_for("kraken", "BTC") == "BTC/USD"
    assert source.api_urls == {"binance": "http://127.0.0.1:9/binance"}
    assert (source.max_attempts, source.page_limit) == (3, 200)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CB_STORAGE_SOURCE": "kaggle"}, "CB_STORAGE_SOURCE='kaggle' is not a source"),
        ({"CB_STORAGE_CCXT_SYMBOLS": "kraken:BTC=XBT-USD"}, "not a spot symbol"),
        ({"CB_STORAGE_CCXT_SYMBOLS": "krakenBTC=BTC/USD"}, "write EXCHANGE:COIN"),
        ({"CB_STORAGE_CCXT_DEFAULT_QUOTE": "usd"}, "default quote currency 'usd'"),
        ({"CB_STORAGE_CCXT_TIMEOUT_MS": "ten"}, "CB_STORAGE_CCXT_TIMEOUT_MS='ten' is not a number"),
        ({"CB_STORAGE_CCXT_API_URLS": "binance"}, "write EXCHANGE=URL"),
        ({"CB_STORAGE_CCXT_MAX_ATTEMPTS": "0"}, "max_attempts must be at least 1"),
    ],
)
def test_bad_source_settings_fail_at_load_saying_what_to_fix(env, message):
    with pytest.raises(SourceConfigError) as info:
        market_data_source_from_env({"CB_STORAGE_SOURCE": "ccxt", **env})
    assert message in str(info.value)


def test_the_definitions_refuse_to_load_with_a_bad_source_setting(load_definitions):
    with pytest.raises(SourceConfigError, match="not a spot symbol"):
        load_definitions(CB_STORAGE_SOURCE="ccxt", CB_STORAGE_CCXT_SYMBOLS="kraken:BTC=btc")


def test_a_source_without_a_candle_api_builds_fetch_ohlcv_from_its_trades():
    import datetime as dt

    from cb_storage_dagster.transforms import trades_to_ohlcv

    source = SyntheticMarketDataSource(trades_per_day=500)
    day = dt.date(2024, 1, 2)
    candles = source.fetch_ohlcv("binance", "BTC", day)
    assert candles.equals(trades_to_ohlcv(source.fetch_trades("binance", "BTC", day), "1min"))
    assert 0 < len(candles) <= 500
