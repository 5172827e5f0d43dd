"""The code location loads, is wired to the configured backend, and runs end to end in-process."""

from __future__ import annotations

import importlib

import dagster as dg
import pytest

from cb_storage_dagster.storage import ConfigurationError, StorageManagerImpl
from cb_storage_dagster_tests.support.data import at


@pytest.fixture
def load_definitions(monkeypatch, tmp_path):
    def load(**env: str) -> dg.Definitions:
        monkeypatch.setenv("CB_STORAGE_LOCAL_ROOT_PATH", str(tmp_path / "data"))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        import cb_storage_dagster.definitions as module

        return importlib.reload(module).defs

    return load


def test_definitions_load_with_every_piece(load_definitions):
    defs = load_definitions()
    keys = {spec.key.to_user_string() for spec in defs.resolve_all_asset_specs()}
    assert keys == {"trades", "order_book", "ohlcv_1m", "ohlcv_1d"}
    assert defs.resolve_job_def("market_data_job") is not None
    assert defs.resolve_schedule_def("daily_market_data_schedule") is not None
    assert defs.resolve_job_def("delta_maintenance_job") is not None
    assert defs.resolve_schedule_def("weekly_delta_maintenance").cron_schedule == "0 3 * * 0"
    assert defs.resolve_sensor_def("instruments_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    repository = defs.get_repository_def()
    assert set(repository.get_top_level_resources()) >= {"market_data_io_manager", "market_data_source", "storage"}


@pytest.mark.parametrize(("env", "layout"), [
    ({}, "instrument"),
    ({"CB_STORAGE_PARTITIONING": "exchange"}, "exchange"),
    ({"CB_STORAGE_PARTITIONING": "exchange", "CB_STORAGE_DELTA_LAYOUT": "instrument"}, "instrument"),
    ({"CB_STORAGE_DELTA_LAYOUT": "exchange"}, "exchange"),
])
def test_new_tables_get_the_profiles_layout_unless_one_is_configured(load_definitions, monkeypatch, env, layout):
    for name in ("CB_STORAGE_PARTITIONING", "CB_STORAGE_DELTA_LAYOUT"):
        monkeypatch.delenv(name, raising=False)
    defs = load_definitions(**env)
    assert defs.resources["market_data_io_manager"].manager.delta.default_layout == layout


def test_a_misconfigured_environment_fails_at_load_naming_the_variable(load_definitions):
    with pytest.raises(ConfigurationError, match="CB_STORAGE_AZURE_CONTAINER_NAME"):
        load_definitions(CB_STORAGE_BACKEND_TYPE="azure", CB_STORAGE_AZURE_ACCOUNT_NAME="acct")


def test_azure_secrets_are_passed_as_env_vars_not_values(load_definitions, monkeypatch):
    key = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="
    defs = load_definitions(
        CB_STORAGE_BACKEND_TYPE="azure", CB_STORAGE_AZURE_ACCOUNT_NAME="acct",
        CB_STORAGE_AZURE_CONTAINER_NAME="market-data", CB_STORAGE_AZURE_ACCOUNT_KEY=key,
    )
    storage = defs.resources["storage"]
    assert isinstance(storage.account_key, dg.EnvVar) and key not in repr(storage)


def test_the_pipeline_runs_in_process_and_the_tables_are_readable(load_definitions, tmp_path):
    defs = load_definitions()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("instruments", ["binance:BTC"])
        result = defs.resolve_job_def("market_data_job").execute_in_process(
            instance=instance, partition_key="2024-01-02|binance:BTC")
        assert result.success
    manager = StorageManagerImpl(defs.resources["storage"].get_backend())
    key = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}
    candles = manager.get_range(key, at(2024, 1, 2), at(2024, 1, 3), table="ohlcv_1m")
    daily = manager.get_range(key, at(2024, 1, 2), at(2024, 1, 3), table="ohlcv_1d")
    assert 1300 <= len(candles) <= 1440 and len(daily) == 1
    assert daily["volume"].iloc[0] == pytest.approx(candles["volume"].sum())
