"""The pipeline with the ccxt source against the fake exchange, through a real `dagster.materialize`
with the Delta IO manager: the tables hold exactly the exchange's rows, and a day the exchange
reports only in part is stored as it is, its gap shown in the minute-coverage check."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from deltalake import DeltaTable

from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
from cb_storage_dagster.orchestration.resources import LocalStorageResource
from cb_storage_dagster.transforms import canonical_columns
from cb_storage_dagster_tests.test_ccxt_source import expected_candles, expected_trades, make_source

INSTRUMENTS = ["binance:BTC", "kraken:BTC", "binance:NEW"]


@pytest.fixture(scope="module")
def definitions(instrument_pipeline) -> list:
    """``trades``, ``ohlcv_1m``, ``ohlcv_1d`` and the checks of trades and 1-minute candles."""
    assets = instrument_pipeline.assets
    checks = [c for c in instrument_pipeline.checks.all
              if {k.asset_key.to_user_string() for k in c.check_keys} <= {"trades", "ohlcv_1m"}]
    return [assets.trades, assets.ohlcv_1m, assets.ohlcv_1d, *checks]


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("instruments", INSTRUMENTS)
        yield instance


def materialize(definitions, fake, instance, root, partition_key: str) -> dg.ExecuteInProcessResult:
    storage = LocalStorageResource(root_path=str(root))
    return dg.materialize(
        definitions,
        resources={"market_data_source": make_source(fake), "storage": storage,
                   "market_data_io_manager": MarketDataIOManager(storage=storage)},
        instance=instance, partition_key=partition_key, raise_on_error=False,
    )


def stored(root, table: str) -> pd.DataFrame:
    """The table's rows in the canonical columns (without the derived layout columns)."""
    data = DeltaTable(str(root / table)).to_pyarrow_dataset().to_table().to_pandas()
    keys = ["exchange", "coin", "timestamp"] + (["trade_id"] if table == "trades" else [])
    columns = canonical_columns("trades" if table == "trades" else "ohlcv")
    return data[columns].sort_values(keys, ignore_index=True)


@pytest.mark.parametrize(("instrument", "market_id"), [("binance:BTC", "BTCUSDT"), ("kraken:BTC", "XBTUSD")])
def test_a_materialized_day_stores_exactly_the_exchanges_trades_and_candles(
    definitions, fake, instance, tmp_path, instrument, market_id
):
    exchange, coin = instrument.split(":")
    result = materialize(definitions, fake, instance, tmp_path, f"2024-03-01|{instrument}")
    assert result.success
    pd.testing.assert_frame_equal(stored(tmp_path, "trades"), expected_trades(fake, exchange, coin, market_id),
                                  check_dtype=False)
    # One-minute candles built from the stored trades equal the exchange's own klines.
    pd.testing.assert_frame_equal(stored(tmp_path, "ohlcv_1m"), expected_candles(fake, exchange, coin, market_id),
                                  check_dtype=False, check_exact=False, rtol=1e-12)
    assert len(stored(tmp_path, "ohlcv_1d")) == 1

    again = materialize(definitions, fake, instance, tmp_path, f"2024-03-01|{instrument}")  # idempotent
    assert again.success and len(stored(tmp_path, "trades")) == 2880


def test_a_day_listed_at_noon_is_stored_as_it_is_and_the_gap_shows_in_the_check(definitions, fake, instance, tmp_path):
    result = materialize(definitions, fake, instance, tmp_path, "2024-03-02|binance:NEW")
    assert result.success
    candles = stored(tmp_path, "ohlcv_1m")
    assert len(candles) == 720 and candles["timestamp"].min() == pd.Timestamp("2024-03-02 12:00", tz="UTC")
    coverage = next(e for e in result.get_asset_check_evaluations() if e.check_name == "minute_coverage")
    assert coverage.passed is False
    assert coverage.metadata["coverage_below_threshold"].value == {"binance/NEW/2024-03-02": 0.5}


def test_a_day_before_the_listing_fails_without_retry_and_stores_nothing(definitions, fake, instance, tmp_path):
    result = materialize(definitions, fake, instance, tmp_path, "2024-03-01|binance:NEW")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "before its listing" in failure.step_failure_data.error.message
    assert not (tmp_path / "trades").exists()
    # The permanent failure was not retried by the assets' retry policy.
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
