"""MarketDataIOManager merge mode: asset metadata ``write_mode`` and the run tag that
overrides it, under real ``dagster.materialize`` runs on local disk and on Azurite."""

import dagster as dg
import pandas as pd
import pytest

from cb_storage_dagster.orchestration.io_manager import WRITE_MODE_TAG, MarketDataIOManager
from cb_storage_dagster.orchestration.partitions import (
    decode_multi_key,
    instruments_partitions,
    market_data_partitions,
)
from cb_storage_dagster.orchestration.resources import LocalStorageResource
from cb_storage_dagster_tests.support.data import ohlcv

PARTITIONS = market_data_partitions("2024-01-01")
PARTITION = "2024-01-02|binance:BTC"
OFFSET_TAG = "test/offset_minutes"


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(instruments_partitions.name, ["binance:BTC"])
        yield instance


def ten_minutes(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """Ten candles of the run's partition from the minute the run's tag says (a later batch
    revises the prices of the minutes it shares with an earlier one)."""
    slot = decode_multi_key(context.partition_key)
    offset = int(context.run.tags.get(OFFSET_TAG, "0"))
    return ohlcv(slot.date, 10, offset_minutes=offset, price=100.0 + 10 * offset)


@dg.asset(partitions_def=PARTITIONS, io_manager_key="market_data_io_manager",
          metadata={"data_type": "ohlcv", "write_mode": "merge"})
def merged_candles(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return ten_minutes(context)


@dg.asset(partitions_def=PARTITIONS, io_manager_key="market_data_io_manager", metadata={"data_type": "ohlcv"})
def candles(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return ten_minutes(context)


def materialize(asset, storage, instance, offset: int, **tags: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [asset], partition_key=PARTITION, instance=instance, raise_on_error=False,
        tags={OFFSET_TAG: str(offset), **tags},
        resources={"market_data_io_manager": MarketDataIOManager(storage=storage, default_format="delta")},
    )


def metadata_of(result: dg.ExecuteInProcessResult) -> dict:
    event = result.get_asset_materialization_events()[0]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def stored(storage, table: str) -> pd.DataFrame:
    return MarketDataIOManager(storage=storage).manager.read_partitions("ohlcv", None, table=table).to_pandas()


def test_write_mode_merge_in_asset_metadata_upserts_and_a_rerun_changes_nothing(storage, instance):
    assert materialize(merged_candles, storage, instance, 0).success
    second = materialize(merged_candles, storage, instance, 5)
    assert second.success
    info = metadata_of(second)
    assert (info["write_mode"], info["rows_merged"], info["rows_inserted"], info["rows_updated"]) == (
        "merge", 10, 5, 5)
    assert "dagster/row_count" not in info  # the partition holds 15 rows, not the batch's 10
    assert info["table_version"] == 2

    again = materialize(merged_candles, storage, instance, 5)

    assert (metadata_of(again)["rows_inserted"], metadata_of(again)["rows_updated"]) == (0, 0)
    assert metadata_of(again)["table_version"] == 2  # no new version
    frame = stored(storage, "merged_candles")
    assert len(frame) == 15 and frame["timestamp"].is_unique
    assert frame["open"].tolist() == [100.0, 101.0, 102.0, 103.0, 104.0] + [150.0 + i for i in range(10)]


def test_the_run_tag_makes_one_run_merge_and_replace_stays_the_default(storage, instance):
    assert materialize(candles, storage, instance, 0).success
    assert materialize(candles, storage, instance, 5, **{WRITE_MODE_TAG: "merge"}).success
    assert len(stored(storage, "candles")) == 15

    replaced = materialize(candles, storage, instance, 30)  # no tag: replace the partition

    assert replaced.success and metadata_of(replaced)["dagster/row_count"] == 10
    assert len(stored(storage, "candles")) == 10


def test_merge_into_a_parquet_table_fails_the_step_with_the_reason(tmp_path, instance):
    storage = LocalStorageResource(root_path=str(tmp_path / "store"))  # refused before any I/O
    parquet = dg.asset(
        name="parquet_candles", partitions_def=PARTITIONS, io_manager_key="market_data_io_manager",
        metadata={"data_type": "ohlcv", "format": "parquet", "write_mode": "merge"},
    )(ten_minutes)

    result = materialize(parquet, storage, instance, 0)

    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    text = failure.message + "".join(c.message for c in [failure.cause] if c)
    assert "stored as parquet, which cannot merge" in text
    assert not (tmp_path / "store" / "parquet_candles").exists()
