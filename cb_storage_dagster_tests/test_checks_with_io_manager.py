"""The blocking asset checks with the real IO manager: ``dagster.materialize`` on local disk.

``materialize_to_memory`` (test_pipeline_assets.py) swaps the IO manager for an in-memory
one, so the storage's own validation never runs there. Here both layers run: rows that can
never be right (a negative price) are refused by the IO manager before anything is written;
rows that are storable but incomplete (a day without trades) are written, and the blocking
check stops the candles from being built from them. The checks read their asset back
through the IO manager, so they judge what was stored.
"""

import datetime as dt

import dagster as dg
import pytest

from cb_storage_dagster.orchestration import SyntheticMarketDataSource
from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
from cb_storage_dagster.orchestration.partitions import instruments_partitions
from cb_storage_dagster.orchestration.resources import LocalStorageResource
from cb_storage_dagster.storage import StorageManagerImpl

RANGE = {
    "dagster/asset_partition_range_start": "2024-01-02|binance:BTC",
    "dagster/asset_partition_range_end": "2024-01-04|binance:BTC",
}
DAYS = [dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4)]


class NegativePriceSource(SyntheticMarketDataSource):
    def fetch_trades(self, exchange, coin, day):
        trades = super().fetch_trades(exchange, coin, day)
        trades.loc[5, "price"] = -1.0
        return trades


class MissingDaySource(SyntheticMarketDataSource):
    def fetch_trades(self, exchange, coin, day):
        trades = super().fetch_trades(exchange, coin, day)
        return trades.iloc[:0] if day == DAYS[1] else trades


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(instruments_partitions.name, ["binance:BTC"])
        yield instance


@pytest.fixture
def io_manager(tmp_path) -> MarketDataIOManager:
    return MarketDataIOManager(storage=LocalStorageResource(root_path=str(tmp_path / "store")))


@pytest.fixture
def run_pipeline(instrument_pipeline):
    def run(instance, io_manager, source) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [*instrument_pipeline.assets.all, *instrument_pipeline.checks.all], instance=instance, tags=RANGE,
            raise_on_error=False, resources={"market_data_io_manager": io_manager, "market_data_source": source},
        )

    return run


def materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def check_outcomes(result) -> dict[str, bool]:
    return {f"{e.asset_key.to_user_string()}/{e.check_name}": e.passed for e in result.get_asset_check_evaluations()}


def stored_days(manager: StorageManagerImpl, table: str, data_type: str) -> dict[dt.date, int]:
    if not manager.backend.exists(table):
        return {}
    frame = manager.read_partitions(data_type, None, table=table).to_pandas()
    return frame.groupby("date").size().to_dict()


def test_good_data_is_stored_and_every_check_passes_on_what_was_stored(instance, io_manager, run_pipeline):
    result = run_pipeline(instance, io_manager, SyntheticMarketDataSource(trades_per_day=2880))
    assert result.success
    # order_book is skipped by a daily run: exchanges keep no order-book history
    assert materialized(result) == {"trades", "ohlcv_1m", "ohlcv_1d"}
    assert all(check_outcomes(result).values()) and len(check_outcomes(result)) == 6
    manager = io_manager.manager
    assert stored_days(manager, "trades", "trades") == dict.fromkeys(DAYS, 2880)
    assert stored_days(manager, "ohlcv_1d", "ohlcv") == dict.fromkeys(DAYS, 1)


def test_rows_that_can_never_be_right_are_refused_by_the_io_manager_before_any_check(instance, io_manager, run_pipeline):
    result = run_pipeline(instance, io_manager, NegativePriceSource(trades_per_day=2880))

    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "trades"
    assert "InvalidDataError" in failure.step_failure_data.error.message
    assert "trades" not in materialized(result) and "ohlcv_1m" not in materialized(result)
    assert not any(key.startswith("trades/") for key in check_outcomes(result))  # nothing to check
    assert not io_manager.manager.backend.exists("trades")  # nothing written


def test_storable_but_incomplete_data_is_stored_and_the_blocking_check_stops_the_candles(instance, io_manager, run_pipeline):
    result = run_pipeline(instance, io_manager, MissingDaySource(trades_per_day=2880))

    assert not result.success
    assert "trades" in materialized(result)
    assert check_outcomes(result)["trades/every_partition_has_rows"] is False
    assert "ohlcv_1m" not in materialized(result) and "ohlcv_1d" not in materialized(result)
    manager = io_manager.manager
    assert stored_days(manager, "trades", "trades") == {DAYS[0]: 2880, DAYS[2]: 2880}
    assert stored_days(manager, "ohlcv_1m", "ohlcv") == {}  # no candles from incomplete trades
