"""Per-instrument isolation in an exchange-day run (issue 17, part 2).

An instrument whose fetch fails for good (a symbol the fake exchange refuses) or whose rows are
refused (a day of negative prices) is left out of the commit: its stored rows stay, every other
instrument is stored, the ``trades/instruments_stored`` check fails naming it, and a repair run
(run tag ``cb_storage/instruments``) stores exactly it.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd
import pyarrow.compute as pc
import pytest

from cb_storage_dagster.orchestration import build_pipeline
from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
from cb_storage_dagster.orchestration.resources import LocalStorageResource
from cb_storage_dagster.orchestration.run_scope import repair_tags
from cb_storage_dagster.sources.synthetic import SyntheticMarketDataSource
from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl
from cb_storage_dagster_tests.test_ccxt_source import expected_trades, make_source

DAY = dt.date(2024, 3, 1)
UNIVERSE = ["binance:BTC", "binance:ETH", "binance:SOL"]


def run(pipeline, io_manager, source, *, tags=None, day=DAY) -> dg.ExecuteInProcessResult:
    assets = [a for a in pipeline.assets.all if a.key.to_user_string() != "order_book"]
    return dg.materialize(
        [*assets, *pipeline.checks.all], selection=[a.key for a in assets],
        partition_key=dg.MultiPartitionKey({"date": day.isoformat(), "exchange": "binance"}),
        resources={"market_data_io_manager": io_manager, "market_data_source": source}, tags=tags or {},
    )


def checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {f"{e.asset_key.to_user_string()}/{e.check_name}": e for e in result.get_asset_check_evaluations()}


def rows_of(manager: StorageManagerImpl, table: str, coin: str) -> pd.DataFrame:
    data = manager.read_partitions("ohlcv" if table.startswith("ohlcv") else "trades", None, table=table)
    return data.filter(pc.equal(data["coin"], coin)).to_pandas()


@pytest.fixture
def io_manager(tmp_path) -> MarketDataIOManager:
    return MarketDataIOManager(storage=LocalStorageResource(root_path=str(tmp_path)), chunk_instruments=2)


@pytest.fixture
def manager(tmp_path) -> StorageManagerImpl:
    return StorageManagerImpl(LocalFileBackend(str(tmp_path)))


def test_a_symbol_the_exchange_refuses_keeps_its_rows_and_the_repair_run_stores_it(fake, io_manager, manager):
    pipeline = build_pipeline("exchange", ["binance:BTC", "binance:ETH"])
    assert run(pipeline, io_manager, make_source(fake)).success
    eth_before = {t: rows_of(manager, t, "ETH") for t in ("trades", "ohlcv_1m", "ohlcv_1d")}
    assert len(eth_before["trades"]) == 2880

    fake.unknown_symbols.add("ETHUSDT")
    result = run(pipeline, io_manager, make_source(fake))
    assert result.success  # BTC is stored; ETH is left out, not the whole exchange-day
    outcome = checks(result)["trades/instruments_stored"]
    assert not outcome.passed and outcome.metadata["failed_instruments"].value == ["binance:ETH"]
    assert "binance:ETH 2024-03-01 (SourceRequestError" in outcome.description
    assert "cb_storage/instruments=binance:ETH" in outcome.description
    [event] = result.asset_materializations_for_node("trades")
    [failure] = event.metadata["failed_instruments"].value
    assert failure["instrument"] == "binance:ETH" and failure["error_type"] == "SourceRequestError"
    assert "dagster/row_count" not in event.metadata  # the partition holds rows this run did not write
    for table, before in eth_before.items():  # ETH's stored rows stay as they were
        pd.testing.assert_frame_equal(rows_of(manager, table, "ETH"), before)
    pd.testing.assert_frame_equal(
        rows_of(manager, "trades", "BTC")[expected_trades(fake, "binance", "BTC", "BTCUSDT").columns].reset_index(drop=True),
        expected_trades(fake, "binance", "BTC", "BTCUSDT"))

    fake.unknown_symbols.clear()
    version = manager.table_version("trades", table="trades")
    btc_files_before = set(manager.delta.open("trades").file_uris())
    repaired = run(pipeline, io_manager, make_source(fake), tags=repair_tags(["binance:ETH"]))
    assert repaired.success and checks(repaired)["trades/instruments_stored"].passed
    [event] = repaired.asset_materializations_for_node("trades")
    assert event.metadata["repaired_rows"].value == 2880 and event.metadata["instrument_days"].value == 1
    assert manager.table_version("trades", table="trades") == version + 1
    assert {u for u in manager.delta.open("trades").file_uris() if "ETH" not in u} >= \
        {u for u in btc_files_before if "ETH" not in u}  # the instrument layout: BTC's files untouched
    pd.testing.assert_frame_equal(
        rows_of(manager, "trades", "ETH")[expected_trades(fake, "binance", "ETH", "ETHUSDT").columns].reset_index(drop=True),
        expected_trades(fake, "binance", "ETH", "ETHUSDT"))


class NegativeOn(SyntheticMarketDataSource):
    """The synthetic source with a different seed, and negative prices for ``coin`` (a bad day)."""

    coin: str = "ETH"

    def _spoil(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame.loc[frame["coin"] == self.coin, "price"] = -frame["price"].abs()
        return frame

    def fetch_trades(self, exchange, coin, day):
        return self._spoil(super().fetch_trades(exchange, coin, day))

    def fetch_trades_many(self, exchange, coins, day):
        return self._spoil(super().fetch_trades_many(exchange, coins, day))


def test_a_day_of_invalid_rows_keeps_its_rows_and_the_others_are_replaced(io_manager, manager):
    pipeline = build_pipeline("exchange", UNIVERSE)
    assert run(pipeline, io_manager, SyntheticMarketDataSource(trades_per_day=50)).success
    before = {coin: rows_of(manager, "trades", coin) for coin in ("BTC", "ETH", "SOL")}

    result = run(pipeline, io_manager, NegativeOn(trades_per_day=50, seed=7))
    assert result.success
    outcome = checks(result)["trades/instruments_stored"]
    assert not outcome.passed and outcome.metadata["failed_instruments"].value == ["binance:ETH"]
    assert "InvalidDataError" in outcome.description and "price" in outcome.description
    pd.testing.assert_frame_equal(rows_of(manager, "trades", "ETH"), before["ETH"])
    for coin in ("BTC", "SOL"):  # replaced by the new seed's rows
        assert not rows_of(manager, "trades", coin)["price"].equals(before[coin]["price"])
        assert len(rows_of(manager, "trades", coin)) == 50

    repaired = run(pipeline, io_manager, SyntheticMarketDataSource(trades_per_day=50, seed=7),
                   tags=repair_tags(["binance:ETH"]))
    assert repaired.success and checks(repaired)["trades/instruments_stored"].passed
    eth = rows_of(manager, "trades", "ETH")
    assert len(eth) == 50 and not eth["price"].equals(before["ETH"]["price"])
    assert (eth["price"] > 0).all()
    candles = manager.read_partitions("ohlcv", None, table="ohlcv_1d").to_pandas()
    assert sorted(candles["coin"]) == ["BTC", "ETH", "SOL"]


def test_a_repair_run_naming_an_instrument_outside_the_universe_fails_without_run_retry(io_manager):
    pipeline = build_pipeline("exchange", UNIVERSE)
    with dg.instance_for_test() as instance:
        assets = [a for a in pipeline.assets.all if a.key.to_user_string() == "trades"]
        result = dg.materialize(
            assets, partition_key=dg.MultiPartitionKey({"date": DAY.isoformat(), "exchange": "binance"}),
            resources={"market_data_io_manager": io_manager, "market_data_source": SyntheticMarketDataSource()},
            tags=repair_tags(["binance:DOGE"]), instance=instance, raise_on_error=False,
        )
        assert not result.success
        assert instance.get_run_by_id(result.run_id).tags["dagster/retry_on_asset_or_op_failure"] == "false"
