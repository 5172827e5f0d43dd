"""Polars frames through MarketDataIOManager (extra ``[polars]``), in real ``dagster.materialize``
runs on local disk: assets return ``polars.DataFrame`` / ``polars.LazyFrame``, and inputs
annotated with either type get one, exactly the rows and types the storage API reads."""

import datetime as dt

import dagster as dg
import pandas as pd
import polars as pl
import pytest

from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
from cb_storage_dagster.orchestration.partitions import (
    decode_multi_key,
    instruments_partitions,
    market_data_partitions,
)
from cb_storage_dagster.orchestration.resources import LocalStorageResource
from cb_storage_dagster_tests.support.data import at, ohlcv

PARTITIONS = market_data_partitions("2024-01-01")
INSTRUMENTS = ["binance:BTC", "binance:ETH"]
RANGE = {"dagster/asset_partition_range_start": "2024-01-02|binance:BTC",
         "dagster/asset_partition_range_end": "2024-01-03|binance:ETH"}


def candles_for(keys) -> pl.DataFrame:
    frames = [ohlcv(slot.date, n=30, exchange=slot.exchange, coin=slot.coin)
              for slot in map(decode_multi_key, keys)]
    return pl.from_pandas(pd.concat(frames, ignore_index=True))


@dg.asset(partitions_def=PARTITIONS, metadata={"data_type": "ohlcv"}, io_manager_key="market_data_io_manager")
def eager_candles(context: dg.AssetExecutionContext) -> pl.DataFrame:
    return candles_for(context.partition_keys)


@dg.asset(partitions_def=PARTITIONS, metadata={"data_type": "ohlcv"}, io_manager_key="market_data_io_manager")
def lazy_candles(context: dg.AssetExecutionContext) -> pl.LazyFrame:
    return candles_for(context.partition_keys).lazy().with_columns(pl.col("close") * 2)


SEEN: dict[str, object] = {}


@dg.asset(partitions_def=PARTITIONS, metadata={"data_type": "ohlcv"}, io_manager_key="market_data_io_manager")
def hourly(eager_candles: pl.DataFrame, lazy_candles: pl.LazyFrame) -> pl.LazyFrame:
    """Takes one input of each Polars type; returns 1-hour candles computed in Polars."""
    SEEN["eager"], SEEN["lazy"] = eager_candles, lazy_candles
    return (lazy_candles.sort("exchange", "coin", "timestamp")
            .group_by_dynamic("timestamp", every="1h", group_by=["exchange", "coin"])
            .agg(pl.col("open").first(), pl.col("high").max(), pl.col("low").min(),
                 pl.col("close").last(), pl.col("volume").sum()))


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One range run (2 days x 2 instruments) of the three assets, in one instance."""
    SEEN.clear()
    io_manager = MarketDataIOManager(storage=LocalStorageResource(root_path=str(tmp_path_factory.mktemp("polars"))))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(instruments_partitions.name, INSTRUMENTS)
        result = dg.materialize([eager_candles, lazy_candles, hourly], instance=instance, tags=RANGE,
                                resources={"market_data_io_manager": io_manager})
    assert result.success
    return {"manager": io_manager.manager, "result": result, "io_manager": io_manager}


def read(manager, table: str) -> pd.DataFrame:
    return manager.read_partitions("ohlcv", None, table=table).to_pandas()


def test_polars_outputs_are_stored_like_pandas_ones(stored) -> None:
    manager = stored["manager"]
    eager, lazy = read(manager, "eager_candles"), read(manager, "lazy_candles")
    assert len(eager) == len(lazy) == 4 * 30
    assert str(eager["timestamp"].dtype) == "datetime64[us, UTC]"
    assert lazy["close"].tolist() == (eager["close"] * 2).tolist()  # the LazyFrame was collected
    meta = stored["result"].asset_materializations_for_node("eager_candles")[0].metadata
    assert meta["dagster/row_count"].value == 30 and meta["run_row_count"].value == 120


def test_polars_inputs_are_the_annotated_types_with_the_stored_rows(stored) -> None:
    manager = stored["manager"]
    eager, lazy = SEEN["eager"], SEEN["lazy"]
    assert isinstance(eager, pl.DataFrame) and isinstance(lazy, pl.LazyFrame)
    assert eager.schema["timestamp"] == pl.Datetime("us", "UTC") and eager.schema["date"] == pl.Date
    expected = pl.from_pandas(read(manager, "eager_candles"))
    assert eager.equals(expected)
    assert lazy.collect().equals(pl.from_pandas(read(manager, "lazy_candles")))


def test_a_lazyframe_output_computed_from_polars_inputs(stored) -> None:
    hourly_rows = read(stored["manager"], "hourly")
    # 30 one-minute candles a day fall into one hour: one candle per instrument-day
    assert len(hourly_rows) == 4
    assert set(hourly_rows["timestamp"]) == {pd.Timestamp("2024-01-02", tz="UTC"), pd.Timestamp("2024-01-03", tz="UTC")}
    first = hourly_rows[(hourly_rows["coin"] == "BTC") & (hourly_rows["date"] == dt.date(2024, 1, 2))].iloc[0]
    assert first["close"] == 2 * (100.0 + 29 + 0.5) and first["volume"] == 60.0


def test_bad_polars_rows_are_refused_before_anything_is_written(tmp_path) -> None:
    @dg.asset(partitions_def=PARTITIONS, metadata={"data_type": "ohlcv"}, io_manager_key="market_data_io_manager",
              name="eager_candles")
    def negative_prices(context: dg.AssetExecutionContext) -> pl.DataFrame:
        return candles_for(context.partition_keys).with_columns(pl.col("low") * -1)

    io_manager = MarketDataIOManager(storage=LocalStorageResource(root_path=str(tmp_path)))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(instruments_partitions.name, INSTRUMENTS)
        with pytest.raises(dg.Failure, match=r"InvalidDataError: Column 'low' has 30 values that are not > 0"):
            dg.materialize([negative_prices], instance=instance, partition_key="2024-01-02|binance:BTC",
                           resources={"market_data_io_manager": io_manager})
    assert io_manager.manager.list_exchanges("ohlcv", table="eager_candles") == []
    assert io_manager.manager.get_range({"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"},
                                        at(2024, 1, 1), at(2024, 2, 1), table="eager_candles").empty
