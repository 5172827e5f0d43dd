"""MarketDataIOManager under real `dagster.materialize` runs, on local disk and on Azurite."""


import datetime as dt

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
from cb_storage_dagster.orchestration.partitions import (
    decode_multi_key,
    instruments_partitions,
    market_data_partitions,
)
from cb_storage_dagster.storage import StorageManagerImpl
from cb_storage_dagster_tests.support.data import ohlcv
from cb_storage_dagster_tests.support.snapshots import snapshot

PARTITIONS = market_data_partitions("2024-01-01")
INSTRUMENTS = ["binance:BTC", "binance:ETH"]


@pytest.fixture
def io_manager(storage) -> MarketDataIOManager:
    return MarketDataIOManager(storage=storage)


@pytest.fixture
def manager(io_manager) -> StorageManagerImpl:
    return io_manager.manager


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(instruments_partitions.name, INSTRUMENTS)
        yield instance


def candles_for(keys) -> pd.DataFrame:
    frames = []
    for key in keys:
        slot = decode_multi_key(key)
        frames.append(ohlcv(slot.date, n=60, exchange=slot.exchange, coin=slot.coin))
    return pd.concat(frames, ignore_index=True)


@dg.asset(partitions_def=PARTITIONS, metadata={"data_type": "ohlcv"}, io_manager_key="market_data_io_manager")
def candles(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return candles_for(context.partition_keys)


def run(assets, io_manager, instance, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets, resources={"market_data_io_manager": io_manager}, instance=instance, **kwargs)


def stored(manager: StorageManagerImpl, table: str = "candles") -> pd.DataFrame:
    return manager.read_partitions("ohlcv", None, table=table).to_pandas()


def output_metadata(result: dg.ExecuteInProcessResult, asset: str = "candles") -> dict:
    """Metadata of the run's output (a range run reports it on each partition's materialization)."""
    events = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in events[0].metadata.items()}


class TestMultiPartitionedOutputs:
    def test_a_single_partition_is_written_with_ui_metadata(self, io_manager, manager, instance):
        result = run([candles], io_manager, instance, partition_key="2024-01-02|binance:BTC")

        frame = stored(manager)
        assert len(frame) == 60 and set(frame["coin"]) == {"BTC"}
        meta = output_metadata(result)
        assert meta["dagster/row_count"] == 60 and meta["format"] == "delta"
        assert meta["table_version"] == 1
        assert meta["rows_per_partition"] == {"binance/BTC/2024-01-02": 60}
        assert meta["dagster/uri"].endswith("/candles")
        assert [c.name for c in meta["dagster/column_schema"].columns][:3] == ["exchange", "coin", "timestamp"]

    def test_re_materializing_is_idempotent(self, io_manager, manager, instance):
        for _ in range(2):
            run([candles], io_manager, instance, partition_key="2024-01-02|binance:BTC")
        assert len(stored(manager)) == 60

    def test_a_range_run_writes_every_partition_in_one_commit(self, io_manager, manager, instance):
        result = run([candles], io_manager, instance, tags={
            "dagster/asset_partition_range_start": "2024-01-01|binance:BTC",
            "dagster/asset_partition_range_end": "2024-01-05|binance:BTC",
        })
        assert len(result.asset_materializations_for_node("candles")) == 5
        meta = output_metadata(result)
        assert meta["table_version"] == 1  # version 0 is the table's creation
        assert meta["partitions_written"] == 5
        assert stored(manager).groupby("date").size().tolist() == [60] * 5

    def test_rows_of_a_foreign_partition_are_refused_and_nothing_changes(self, io_manager, manager, instance):
        run([candles], io_manager, instance, partition_key="2024-01-02|binance:BTC")
        before = snapshot(manager.backend)

        @dg.asset(name="candles", partitions_def=PARTITIONS, metadata={"data_type": "ohlcv"},
                  io_manager_key="market_data_io_manager")
        def leaky(context: dg.AssetExecutionContext) -> pd.DataFrame:
            return pd.concat([candles_for(context.partition_keys), ohlcv("2024-01-03", coin="BTC")])

        result = run([leaky], io_manager, instance, partition_key="2024-01-02|binance:BTC", raise_on_error=False)
        assert not result.success
        failure = result.get_step_failure_events()[0].event_specific_data.error
        assert failure.cause.cls_name == "PartitionMismatchError"
        assert "binance/BTC/2024-01-03" in failure.cause.message
        assert snapshot(manager.backend) == before

    def test_a_partition_with_no_rows_ends_up_empty(self, io_manager, manager, instance):
        run([candles], io_manager, instance, partition_key="2024-01-02|binance:BTC")

        @dg.asset(name="candles", partitions_def=PARTITIONS, metadata={"data_type": "ohlcv"},
                  io_manager_key="market_data_io_manager")
        def nothing_today(context: dg.AssetExecutionContext) -> pd.DataFrame:
            return ohlcv("2024-01-02", n=0)

        run([nothing_today], io_manager, instance, partition_key="2024-01-02|binance:BTC")
        assert stored(manager).empty

    def test_arrow_tables_are_accepted(self, io_manager, manager, instance):
        @dg.asset(name="candles", partitions_def=PARTITIONS, metadata={"data_type": "ohlcv"},
                  io_manager_key="market_data_io_manager")
        def arrow_candles(context: dg.AssetExecutionContext) -> pa.Table:
            return pa.Table.from_pandas(candles_for(context.partition_keys))

        run([arrow_candles], io_manager, instance, partition_key="2024-01-02|binance:ETH")
        assert set(stored(manager)["coin"]) == {"ETH"}

    @pytest.mark.parametrize("fmt", ["parquet", "json"])
    def test_the_format_comes_from_asset_metadata(self, io_manager, manager, instance, fmt):
        @dg.asset(name="candles", partitions_def=PARTITIONS, metadata={"data_type": "ohlcv", "format": fmt},
                  io_manager_key="market_data_io_manager")
        def file_candles(context: dg.AssetExecutionContext) -> pd.DataFrame:
            return candles_for(context.partition_keys)

        result = run([file_candles], io_manager, instance, partition_key="2024-01-02|binance:BTC")
        assert output_metadata(result)["format"] == fmt
        assert manager.stored_format("candles") == fmt
        assert len(stored(manager)) == 60


class TestInputs:
    def test_a_downstream_seven_day_window_loads_in_one_scan(self, io_manager, manager, instance, monkeypatch):
        run([candles], io_manager, instance, tags={
            "dagster/asset_partition_range_start": "2024-01-01|binance:BTC",
            "dagster/asset_partition_range_end": "2024-01-10|binance:BTC",
        })
        run([candles], io_manager, instance, partition_key="2024-01-08|binance:ETH")
        window = dg.MultiPartitionMapping({
            "date": dg.DimensionPartitionMapping("date", dg.TimeWindowPartitionMapping(start_offset=-6)),
            "instrument": dg.DimensionPartitionMapping("instrument", dg.IdentityPartitionMapping()),
        })
        seen: dict[str, object] = {}

        @dg.asset(partitions_def=PARTITIONS, metadata={"data_type": "ohlcv"},
                  ins={"candles": dg.AssetIn(partition_mapping=window)}, io_manager_key="market_data_io_manager")
        def weekly(candles: pd.DataFrame) -> pd.DataFrame:
            seen["days"] = sorted(set(candles["date"]))
            seen["coins"] = set(candles["coin"])
            return candles[candles["date"] == dt.date(2024, 1, 8)]

        reads = []
        original = StorageManagerImpl.read_partitions
        monkeypatch.setattr(StorageManagerImpl, "read_partitions",
                            lambda self, *a, **k: reads.append(a) or original(self, *a, **k))
        run([candles.to_source_asset(), weekly], io_manager, instance, partition_key="2024-01-08|binance:BTC")

        assert seen["days"] == [dt.date(2024, 1, d) for d in range(2, 9)]
        assert seen["coins"] == {"BTC"}
        assert len(reads) == 1

    def test_a_downstream_asset_may_edit_its_input_frame_in_place(self, io_manager, manager, instance):
        run([candles], io_manager, instance, partition_key="2024-01-02|binance:BTC")

        @dg.asset(partitions_def=PARTITIONS, metadata={"data_type": "ohlcv"}, io_manager_key="market_data_io_manager")
        def adjusted(candles: pd.DataFrame) -> pd.DataFrame:
            candles.loc[candles.index[0], "close"] = 12345.0  # (a read-only column would refuse this)
            candles.loc[:, "volume"] *= 2
            return candles

        result = run([candles.to_source_asset(), adjusted], io_manager, instance, partition_key="2024-01-02|binance:BTC")
        assert result.success
        original = stored(manager)
        edited = stored(manager, "adjusted")
        assert edited["close"].iloc[0] == 12345.0 and edited["close"].iloc[1:].tolist() == original["close"].iloc[1:].tolist()
        assert edited["volume"].tolist() == (original["volume"] * 2).tolist()

    def test_an_unpartitioned_downstream_loads_every_partition_as_arrow(self, io_manager, manager, instance):
        run([candles], io_manager, instance, partition_key="2024-01-02|binance:BTC")
        run([candles], io_manager, instance, partition_key="2024-01-03|binance:ETH")
        seen = {}

        @dg.asset(metadata={"data_type": "ohlcv"}, io_manager_key="market_data_io_manager")
        def everything(candles: pa.Table) -> pa.Table:
            seen["type"], seen["rows"] = type(candles), candles.num_rows
            return candles

        result = run([candles.to_source_asset(), everything], io_manager, instance)
        assert seen == {"type": pa.Table, "rows": 120}
        assert output_metadata(result, "everything")["dagster/row_count"] == 120

    def test_an_input_records_the_table_version_it_read(self, io_manager, manager, instance):
        run([candles], io_manager, instance, partition_key="2024-01-02|binance:BTC")  # version 1
        run([candles], io_manager, instance, partition_key="2024-01-03|binance:BTC")  # version 2

        @dg.asset(partitions_def=PARTITIONS, metadata={"data_type": "ohlcv"}, io_manager_key="market_data_io_manager")
        def copy(candles: pd.DataFrame) -> pd.DataFrame:
            return candles

        result = run([candles.to_source_asset(), copy], io_manager, instance, partition_key="2024-01-03|binance:BTC")
        [observation] = [
            e.event_specific_data.asset_observation for e in result.all_events
            if e.event_type_value == "ASSET_OBSERVATION"
        ]
        assert observation.metadata["table_version"].value == 2
        assert observation.metadata["rows_loaded"].value == 60

    def test_an_input_can_be_pinned_to_a_table_version(self, io_manager, manager, instance):
        run([candles], io_manager, instance, partition_key="2024-01-02|binance:BTC")  # version 1
        run([candles], io_manager, instance, partition_key="2024-01-03|binance:BTC")  # version 2
        seen = {}

        @dg.asset(ins={"candles": dg.AssetIn(metadata={"as_of_version": 1})}, io_manager_key="market_data_io_manager",
                  metadata={"data_type": "ohlcv"})
        def reproduced(candles: pd.DataFrame) -> None:
            seen["days"] = sorted(set(candles["date"]))

        run([candles.to_source_asset(), reproduced], io_manager, instance)
        assert seen["days"] == [dt.date(2024, 1, 2)]


class TestOtherPartitionings:
    def test_daily_only_assets_replace_whole_days_for_every_instrument(self, io_manager, manager, instance):
        daily = dg.DailyPartitionsDefinition(start_date="2024-01-01", timezone="UTC")

        @dg.asset(partitions_def=daily, metadata={"data_type": "ohlcv"}, io_manager_key="market_data_io_manager")
        def market(context: dg.AssetExecutionContext) -> pd.DataFrame:
            day = context.partition_key
            coins = ["BTC", "ETH"] if context.run.tags.get("coins") != "one" else ["BTC"]
            return pd.concat([ohlcv(day, coin=c) for c in coins])

        run([market], io_manager, instance, partition_key="2024-01-02")
        run([market], io_manager, instance, partition_key="2024-01-03")
        run([market], io_manager, instance, partition_key="2024-01-02", tags={"coins": "one"})
        frame = stored(manager, "market")
        assert frame.groupby(["date", "coin"]).size().to_dict() == {
            (dt.date(2024, 1, 2), "BTC"): 10, (dt.date(2024, 1, 3), "BTC"): 10, (dt.date(2024, 1, 3), "ETH"): 10}

    def test_static_instrument_partitions_replace_the_instrument(self, io_manager, manager, instance):
        static = dg.StaticPartitionsDefinition(["binance:BTC", "coinbase:ETH"])

        @dg.asset(partitions_def=static, metadata={"data_type": "ohlcv"}, io_manager_key="market_data_io_manager")
        def history(context: dg.AssetExecutionContext) -> pd.DataFrame:
            exchange, coin = context.partition_key.split(":")
            days = ["2024-01-01", "2024-01-02"] if context.run.tags.get("short") is None else ["2024-01-05"]
            return pd.concat([ohlcv(d, exchange=None, coin=None) for d in days])

        run([history], io_manager, instance, partition_key="binance:BTC")
        run([history], io_manager, instance, partition_key="coinbase:ETH")
        run([history], io_manager, instance, partition_key="binance:BTC", tags={"short": "1"})
        frame = stored(manager, "history")
        assert frame.groupby(["exchange", "coin"]).size().to_dict() == {("binance", "BTC"): 10, ("coinbase", "ETH"): 20}

    def test_unpartitioned_assets_replace_the_whole_table(self, io_manager, manager, instance):
        @dg.asset(metadata={"data_type": "ohlcv"}, io_manager_key="market_data_io_manager")
        def snapshot_candles(context: dg.AssetExecutionContext) -> pd.DataFrame:
            return ohlcv("2024-01-02", n=int(context.run.tags.get("n", "10")))

        run([snapshot_candles], io_manager, instance)
        run([snapshot_candles], io_manager, instance, tags={"n": "4"})
        assert len(stored(manager, "snapshot_candles")) == 4

    def test_a_missing_data_type_is_a_clear_failure(self, io_manager, instance):
        @dg.asset(io_manager_key="market_data_io_manager")
        def mystery() -> pd.DataFrame:
            return ohlcv("2024-01-02")

        result = run([mystery], io_manager, instance, raise_on_error=False)
        error = result.get_step_failure_events()[0].event_specific_data.error
        assert "add metadata={'data_type'" in (error.cause or error).message
