"""Each partition's materialization carries its own row count, also in a range run.

Dagster copies an IO manager's output metadata onto the materialization of every partition of
the run; a range run over 3 days of 2,880 trades once reported the run's 8,640 rows as every
partition's ``dagster/row_count``. These tests read the events back from the instance, which
is what the UI shows.
"""

import dagster as dg
import pandas as pd
import pytest

from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
from cb_storage_dagster.orchestration.partitions import (
    daily_partitions,
    decode_multi_key,
    instruments_partitions,
    market_data_partitions,
)
from cb_storage_dagster.orchestration.resources import LocalStorageResource
from cb_storage_dagster_tests.support.data import trades

PARTITIONS = market_data_partitions("2024-01-01")
ROWS_ON = {"2024-01-02": 2880, "2024-01-03": 2880, "2024-01-04": 2880}
RANGE = {
    "dagster/asset_partition_range_start": "2024-01-02|binance:BTC",
    "dagster/asset_partition_range_end": "2024-01-04|binance:BTC",
}


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(instruments_partitions.name, ["binance:BTC", "binance:ETH"])
        yield instance


@pytest.fixture
def io_manager(tmp_path) -> MarketDataIOManager:
    return MarketDataIOManager(storage=LocalStorageResource(root_path=str(tmp_path / "store")))


def trades_asset(rows_on: dict[str, int], partitions_def=PARTITIONS) -> dg.AssetsDefinition:
    @dg.asset(name="trades", partitions_def=partitions_def, metadata={"data_type": "trades"},
              io_manager_key="market_data_io_manager")
    def _trades(context: dg.AssetExecutionContext) -> pd.DataFrame:
        frames = []
        for key in context.partition_keys:
            if isinstance(partitions_def, dg.MultiPartitionsDefinition):
                slot = decode_multi_key(key)
                frames.append(trades(slot.date, n=rows_on[slot.date.isoformat()], coin=slot.coin))
            else:
                frames += [trades(key, n=rows_on[key], coin=coin) for coin in ("BTC", "ETH")]
        return pd.concat(frames, ignore_index=True)

    return _trades


def stored_materializations(instance: dg.DagsterInstance) -> dict[str, dict]:
    """``{partition: metadata values}`` of the latest materialization of each partition."""
    records = instance.fetch_materializations(dg.AssetKey("trades"), limit=100).records
    latest: dict[str, dict] = {}
    for record in sorted(records, key=lambda r: r.storage_id):
        event = record.asset_materialization
        latest[str(event.partition)] = {k: v.value for k, v in event.metadata.items()}
    return latest


def test_a_three_day_range_run_reports_each_partitions_own_row_count(io_manager, instance):
    result = dg.materialize([trades_asset(ROWS_ON)], resources={"market_data_io_manager": io_manager},
                            instance=instance, tags=RANGE)
    assert result.success

    events = stored_materializations(instance)
    assert sorted(events) == [f"{day}|binance:BTC" for day in ROWS_ON]
    assert {p: m["dagster/row_count"] for p, m in events.items()} == {
        f"{day}|binance:BTC": 2880 for day in ROWS_ON
    }
    for metadata in events.values():
        assert metadata["run_row_count"] == 8640  # the run's total, under its own name
        assert metadata["rows_per_partition"] == {f"binance/BTC/{day}": 2880 for day in ROWS_ON}


def test_partitions_with_different_sizes_each_get_their_own_count(io_manager, instance):
    rows_on = {"2024-01-02": 2880, "2024-01-03": 0, "2024-01-04": 17}
    dg.materialize([trades_asset(rows_on)], resources={"market_data_io_manager": io_manager},
                   instance=instance, tags=RANGE)
    counts = {p: m["dagster/row_count"] for p, m in stored_materializations(instance).items()}
    assert counts == {f"{day}|binance:BTC": rows for day, rows in rows_on.items()}


def test_a_daily_partition_counts_the_rows_of_every_instrument_of_its_day(io_manager, instance):
    rows_on = {"2024-01-02": 5, "2024-01-03": 7}
    asset = trades_asset(rows_on, partitions_def=daily_partitions("2024-01-01"))
    dg.materialize([asset], resources={"market_data_io_manager": io_manager}, instance=instance,
                   tags={"dagster/asset_partition_range_start": "2024-01-02",
                         "dagster/asset_partition_range_end": "2024-01-03"})
    counts = {p: m["dagster/row_count"] for p, m in stored_materializations(instance).items()}
    assert counts == {"2024-01-02": 10, "2024-01-03": 14}  # BTC + ETH


def test_an_output_context_without_a_step_publishes_no_wrong_row_count(io_manager):
    context = dg.build_output_context(
        asset_key=dg.AssetKey("trades"), definition_metadata={"data_type": "trades"},
        partition_key="2024-01-02", asset_partitions_def=daily_partitions("2024-01-01"),
    )
    io_manager.handle_output(context, trades("2024-01-02", n=3))
    metadata = {k: v.value for k, v in context.get_logged_metadata().items()}
    assert "dagster/row_count" not in metadata
    assert metadata["run_row_count"] == 3 and metadata["rows_per_partition"] == {"binance/BTC/2024-01-02": 3}


def test_an_instrument_partition_counts_every_day_of_its_instrument(io_manager, instance):
    instruments = dg.StaticPartitionsDefinition(["binance:BTC", "binance:ETH"])

    @dg.asset(name="trades", partitions_def=instruments, metadata={"data_type": "trades"},
              io_manager_key="market_data_io_manager")
    def per_instrument(context: dg.AssetExecutionContext) -> pd.DataFrame:
        sizes = {"BTC": 3, "ETH": 4}
        return pd.concat([trades(day, n=sizes[key.split(":")[1]], coin=key.split(":")[1])
                          for key in context.partition_keys for day in ("2024-01-02", "2024-01-03")])

    dg.materialize([per_instrument], resources={"market_data_io_manager": io_manager}, instance=instance,
                   tags={"dagster/asset_partition_range_start": "binance:BTC",
                         "dagster/asset_partition_range_end": "binance:ETH"})
    counts = {p: m["dagster/row_count"] for p, m in stored_materializations(instance).items()}
    assert counts == {"binance:BTC": 6, "binance:ETH": 8}
