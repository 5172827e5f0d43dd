"""Specification of the writers' checkpoint cadence (storage/delta/tables.py): a new process
opens a table from a checkpoint plus a few JSON commits, because writers checkpoint every
``checkpoint_interval`` commits themselves, not only weekly maintenance. Proven by the files
in ``_delta_log``, on local disk and Azurite."""

from __future__ import annotations

import re

import pytest
from deltalake import DeltaTable

from cb_storage_dagster.domain.schemas import storage_schema
from cb_storage_dagster.storage import ConfigurationError, DataType, StorageConfig, StorageManagerImpl
from cb_storage_dagster_tests.support.data import ohlcv

KEY = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}
CHECKPOINT = re.compile(r"_delta_log/(\d{20})\.checkpoint\.parquet$")
COMMIT = re.compile(r"_delta_log/(\d{20})\.json$")


def log_files(manager: StorageManagerImpl) -> tuple[list[int], list[int]]:
    """Versions that have a checkpoint, and versions that have a JSON commit."""
    items = manager.backend.list_items("ohlcv/_delta_log")
    return ([int(m.group(1)) for i in items if (m := CHECKPOINT.search(i))],
            [int(m.group(1)) for i in items if (m := COMMIT.search(i))])


def write_days(manager: StorageManagerImpl, count: int, *, mode: str = "replace", price: float = 100.0) -> None:
    for i in range(count):
        day = f"2024-01-{1 + i % 28:02d}"
        manager.save_entry({**KEY, "date": day}, ohlcv(day, n=3, price=price), mode=mode)


@pytest.mark.parametrize("layout", ["instrument", "exchange"])
def test_tables_we_create_are_checkpointed_by_delta_rs_every_interval(backend, layout):
    manager = StorageManagerImpl(backend, default_layout=layout, checkpoint_interval=5)
    write_days(manager, 12)
    manager.delete_range(KEY, *_january())
    checkpoints, commits = log_files(manager)
    assert max(commits) == 13
    assert checkpoints == [4, 9]  # delta-rs: (version + 1) % 5 == 0, for writes and deletes alike
    assert max(commits) - max(checkpoints) < 5
    assert manager.delta.open("ohlcv").metadata().configuration["delta.checkpointInterval"] == "5"


def test_a_table_without_the_property_is_checkpointed_by_our_writers(backend):
    """A table created by another tool (delta-rs' default interval of 100): our writers
    checkpoint at each multiple of the interval, so opens stay short there too."""
    manager = StorageManagerImpl(backend, checkpoint_interval=4)
    DeltaTable.create(manager.table_uri("ohlcv"), storage_schema(DataType.OHLCV),
                      partition_by=["exchange", "coin", "month"],
                      storage_options=backend.get_storage_options())
    write_days(manager, 9)
    write_days(manager, 1, mode="merge", price=200.0)
    checkpoints, commits = log_files(manager)
    assert max(commits) == 10
    assert checkpoints == [4, 8]
    reopened = StorageManagerImpl(backend)
    assert reopened.get_range(KEY, *_january())["open"].tolist()[:3] == [200.0, 201.0, 202.0]


def _january():
    import datetime as dt

    utc = dt.timezone.utc
    return dt.datetime(2024, 1, 1, tzinfo=utc), dt.datetime(2024, 2, 1, tzinfo=utc)


def test_the_interval_is_a_setting_checked_when_read(tmp_path):
    config = StorageConfig.load({"CB_STORAGE_LOCAL_ROOT_PATH": str(tmp_path), "CB_STORAGE_CHECKPOINT_INTERVAL": "7"})
    assert config.build_manager().delta.tables.checkpoint_interval == 7
    with pytest.raises(ConfigurationError, match="CB_STORAGE_CHECKPOINT_INTERVAL"):
        StorageConfig.load({"CB_STORAGE_LOCAL_ROOT_PATH": str(tmp_path), "CB_STORAGE_CHECKPOINT_INTERVAL": "0"})
