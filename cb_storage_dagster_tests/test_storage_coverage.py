"""storage/coverage.py on real tables: both Delta layouts, trades (no cadence), a table that
does not exist, and the cadence taken from table names."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from cb_storage_dagster import StorageConfig
from cb_storage_dagster.domain.errors import NotFoundError, TimeRangeError
from cb_storage_dagster.storage.coverage import expected_per_day, measure_coverage

DAY = dt.date(2024, 1, 2)
UNIVERSE = [("binance", "BTC"), ("binance", "ETH"), ("binance", "SOL")]


def candles(minutes: int, every: str = "1min") -> pd.DataFrame:
    return pd.DataFrame({
        "timestamp": pd.date_range("2024-01-02", periods=minutes, freq=every, tz="UTC"),
        "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 1.0,
    })


@pytest.mark.parametrize("layout", ["instrument", "exchange"])
def test_both_layouts_give_the_same_report(tmp_path, layout):
    manager = StorageConfig(backend_type="local", local_root_path=tmp_path, delta_layout=layout).build_manager()
    manager.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}, candles(1440), table="ohlcv_1m")
    manager.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": "ETH"}, candles(60), table="ohlcv_1m")
    report = measure_coverage(manager, "ohlcv_1m", UNIVERSE, DAY, DAY + dt.timedelta(days=1))
    first, second = report.days
    assert (first.complete, first.partial, first.missing) == (["BTC"], ["ETH"], ["SOL"])
    assert [i.intervals for i in first.instruments] == [1440, 60, 0]
    assert second.missing == ["BTC", "ETH", "SOL"]
    assert report.totals() == {"complete": 1, "partial": 1, "missing": 4}


def test_a_five_minute_table_counts_five_minute_intervals(tmp_path):
    manager = StorageConfig(backend_type="local", local_root_path=tmp_path).build_manager()
    manager.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}, candles(288, "5min"), table="ohlcv_5m")
    report = measure_coverage(manager, "ohlcv_5m", [("binance", "BTC")], DAY, DAY)
    assert report.per_day == 288 and not report.has_gaps


def test_trades_have_no_cadence_any_row_is_complete(tmp_path):
    manager = StorageConfig(backend_type="local", local_root_path=tmp_path).build_manager()
    trades = pd.DataFrame({
        "timestamp": pd.to_datetime(["2024-01-02 10:00"], utc=True), "trade_id": ["1"],
        "price": [1.0], "amount": [1.0], "side": ["buy"],
    })
    manager.save_entry({"data_type": "trades", "exchange": "binance", "coin": "BTC"}, trades)
    report = measure_coverage(manager, "trades", UNIVERSE[:2], DAY, DAY)
    assert report.per_day is None
    assert (report.days[0].complete, report.days[0].missing) == (["BTC"], ["ETH"])


def test_bad_arguments_raise_typed_errors(tmp_path):
    manager = StorageConfig(backend_type="local", local_root_path=tmp_path).build_manager()
    with pytest.raises(NotFoundError, match="No table 'ohlcv_1m'"):
        measure_coverage(manager, "ohlcv_1m", UNIVERSE, DAY, DAY)
    with pytest.raises(TimeRangeError, match="before the first day"):
        measure_coverage(manager, "ohlcv_1m", UNIVERSE, DAY, DAY - dt.timedelta(days=1))


@pytest.mark.parametrize(("table", "per_day"), [
    ("ohlcv_1m", 1440), ("ohlcv_15m", 96), ("ohlcv_1h", 24), ("ohlcv_1d", 1), ("prefix/ohlcv_4h", 6),
    ("ohlcv_7m", None), ("ohlcv_0m", None), ("ohlcv", None), ("trades", None),
])
def test_the_cadence_comes_from_the_table_name(table, per_day):
    assert expected_per_day(table) == per_day
