"""StorageConfig: CB_STORAGE_* variables build the backend and manager, or fail clearly."""

from __future__ import annotations

import pytest

from cb_storage_dagster.storage import ConfigurationError, LocalFileBackend, StorageConfig


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("CB_STORAGE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(os.path.dirname(__file__))  # no stray .env file


def test_local_backend_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CB_STORAGE_LOCAL_ROOT_PATH", str(tmp_path))
    monkeypatch.setenv("CB_STORAGE_DEFAULT_FORMAT", "parquet")
    manager = StorageConfig.load().build_manager()
    assert isinstance(manager.backend, LocalFileBackend)
    assert manager.backend.root_path == tmp_path.resolve()
    assert manager.default_format == "parquet"


def test_local_without_a_root_names_the_variable():
    with pytest.raises(ConfigurationError, match="CB_STORAGE_LOCAL_ROOT_PATH"):
        StorageConfig.load()


def test_azure_without_a_container_names_the_variable(monkeypatch):
    monkeypatch.setenv("CB_STORAGE_BACKEND_TYPE", "azure")
    monkeypatch.setenv("CB_STORAGE_AZURE_ACCOUNT_NAME", "acct")
    with pytest.raises(ConfigurationError, match="CB_STORAGE_AZURE_CONTAINER_NAME"):
        StorageConfig.load()


def test_an_unknown_backend_type_names_the_variable(monkeypatch):
    monkeypatch.setenv("CB_STORAGE_BACKEND_TYPE", "s3")
    with pytest.raises(ConfigurationError, match="CB_STORAGE_BACKEND_TYPE"):
        StorageConfig.load()


def test_secrets_never_show_in_repr_or_errors(monkeypatch):
    secret = "c2VjcmV0LWtleS1kby1ub3QtbG9n"
    monkeypatch.setenv("CB_STORAGE_BACKEND_TYPE", "azure")
    monkeypatch.setenv("CB_STORAGE_AZURE_ACCOUNT_KEY", secret)
    with pytest.raises(ConfigurationError) as raised:
        StorageConfig.load()
    assert secret not in str(raised.value)
    monkeypatch.setenv("CB_STORAGE_AZURE_CONTAINER_NAME", "market-data")
    monkeypatch.setenv("CB_STORAGE_AZURE_ACCOUNT_NAME", "acct")
    config = StorageConfig.load()
    assert secret not in repr(config) and secret not in str(config.model_dump())


@pytest.mark.azure
def test_azure_backend_from_the_environment(monkeypatch, azurite):
    from cb_storage_dagster_tests.support.data import at, ohlcv

    monkeypatch.setenv("CB_STORAGE_BACKEND_TYPE", "azure")
    monkeypatch.setenv("CB_STORAGE_AZURE_CONTAINER_NAME", "from-env")
    monkeypatch.setenv("CB_STORAGE_AZURE_ACCOUNT_NAME", azurite.account_name)
    monkeypatch.setenv("CB_STORAGE_AZURE_ACCOUNT_KEY", azurite.account_key)
    monkeypatch.setenv("CB_STORAGE_AZURE_ENDPOINT", azurite.blob_endpoint)
    manager = StorageConfig.load().build_manager()
    key = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}
    manager.save_entry(key, ohlcv("2024-01-02"))
    assert len(manager.get_range(key, at(2024, 1, 2), at(2024, 1, 3))) == 10
    assert azurite.account_key not in repr(manager)
