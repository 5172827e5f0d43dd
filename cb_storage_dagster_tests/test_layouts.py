"""Specification of the Delta table layouts (storage/layout.py): a layout is chosen when a
table is created and kept for its life; the large-universe ``exchange`` layout writes an
exchange-day as one file, prunes one-instrument reads by coin statistics, lists coins and
dates exactly, and is compacted sorted by coin and timestamp. The behaviours shared with the
default layout are proven on both in test_storage_manager.py and
test_time_travel_and_maintenance.py."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from cb_storage_dagster.storage import (
    ConfigurationError,
    LayoutMismatchError,
    StorageConfig,
    StorageError,
    StorageManagerImpl,
    WriteScope,
)
from cb_storage_dagster.storage import maintenance as mt
from cb_storage_dagster.storage.delta.sorting import is_sorted
from cb_storage_dagster_tests.support.data import at, ohlcv

DAY = dt.date(2024, 1, 2)
COINS = [f"C{i:03d}" for i in range(40)]


def exchange_day(day: dt.date, coins=COINS, n: int = 30) -> pd.DataFrame:
    """Every coin of one exchange-day, in shuffled order (the writer sorts)."""
    frames = [ohlcv(day, n=n, coin=c, price=10.0 + i) for i, c in enumerate(coins)]
    return pd.concat(frames[::-1], ignore_index=True)


def write_days(manager: StorageManagerImpl, days, coins=COINS, n: int = 30) -> None:
    for day in days:
        manager.write_partitions("ohlcv", exchange_day(day, coins, n), WriteScope.of_exchange_days([("binance", day)]))


def coin_ranges(manager: StorageManagerImpl) -> list[tuple[str, str]]:
    actions = pa.table(manager.delta.open("ohlcv").get_add_actions(flatten=True))
    return sorted(zip(actions.column("min.coin").to_pylist(), actions.column("max.coin").to_pylist()))


@pytest.fixture
def large(backend) -> StorageManagerImpl:
    return StorageManagerImpl(backend, default_layout="exchange")


class TestChoosingALayout:
    def test_a_new_table_is_created_in_the_managers_default_layout(self, backend):
        StorageManagerImpl(backend, default_layout="exchange").save_entry(
            {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}, ohlcv(DAY))
        StorageManagerImpl(backend).save_entry(
            {"data_type": "trades", "exchange": "binance", "coin": "BTC"},
            ohlcv(DAY).assign(price=1.0, amount=1.0, side="buy", trade_id=[str(i) for i in range(10)])
            .drop(columns=["open", "high", "low", "close", "volume"]))
        manager = StorageManagerImpl(backend)
        assert manager.delta.layout("ohlcv") == "exchange"
        assert manager.delta.open("ohlcv").metadata().partition_columns == ["exchange", "month"]
        assert manager.delta.layout("trades") == "instrument"

    def test_an_existing_table_keeps_its_layout_whatever_the_default(self, backend):
        key = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}
        StorageManagerImpl(backend).save_entry(key, ohlcv(DAY))
        later = StorageManagerImpl(backend, default_layout="exchange")
        later.save_entry(key, ohlcv(DAY + dt.timedelta(days=1)))
        assert later.delta.layout("ohlcv") == "instrument"
        assert len(later.get_range(key, at(2024, 1, 1), at(2024, 2, 1))) == 20

    def test_asking_explicitly_for_another_layout_is_refused_and_changes_nothing(self, backend):
        key = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}
        manager = StorageManagerImpl(backend)
        manager.save_entry(key, ohlcv(DAY))
        version = manager.table_version("ohlcv")
        with pytest.raises(LayoutMismatchError, match="keeps the layout it was created with") as error:
            manager.save_entry(key, ohlcv(DAY, n=3), layout="exchange")
        assert isinstance(error.value, StorageError) and not error.value.transient
        assert manager.table_version("ohlcv") == version
        assert len(manager.get_range(key, at(2024, 1, 1), at(2024, 2, 1))) == 10
        # Naming the table's own layout is fine.
        manager.save_entry(key, ohlcv(DAY, n=3), layout="instrument")
        assert len(manager.get_range(key, at(2024, 1, 1), at(2024, 2, 1))) == 3

    def test_an_unknown_layout_name_is_a_configuration_error(self, backend):
        with pytest.raises(ConfigurationError, match="use one of: instrument, exchange"):
            StorageManagerImpl(backend, default_layout="bucketed")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="Unknown Delta layout"):
            StorageManagerImpl(backend).save_entry(
                {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}, ohlcv(DAY), layout="coin")

    def test_the_environment_chooses_the_layout_of_new_tables(self, monkeypatch, tmp_path):
        monkeypatch.setenv("CB_STORAGE_LOCAL_ROOT_PATH", str(tmp_path))
        monkeypatch.setenv("CB_STORAGE_DELTA_LAYOUT", "exchange")
        assert StorageConfig.load().build_manager().delta.default_layout == "exchange"
        monkeypatch.setenv("CB_STORAGE_DELTA_LAYOUT", "per-coin")
        with pytest.raises(ConfigurationError, match="CB_STORAGE_DELTA_LAYOUT"):
            StorageConfig.load()


class TestExchangeLayout:
    def test_an_exchange_day_is_one_commit_and_one_file_sorted_by_coin_and_time(self, large):
        result = large.write_partitions(
            "ohlcv", exchange_day(DAY), WriteScope.of_exchange_days([("binance", DAY)]))
        assert result.version == 1 and result.row_count == 40 * 30
        assert coin_ranges(large) == [("C000", "C039")]
        everything = large.read_partitions("ohlcv", None)
        assert is_sorted(everything, ["exchange", "coin", "timestamp"], single_instrument=False)

    def test_replacing_an_exchange_day_leaves_other_days_and_exchanges_alone(self, large):
        write_days(large, [DAY, DAY + dt.timedelta(days=1)])
        large.save_entry({"data_type": "ohlcv", "exchange": "kraken", "coin": "C001"}, ohlcv(DAY, exchange="kraken", coin="C001"))
        large.write_partitions("ohlcv", exchange_day(DAY, COINS[:5], n=2),
                               WriteScope.of_exchange_days([("binance", DAY)]))
        counts = large.read_partitions("ohlcv", None).group_by(["exchange", "date"]).aggregate([([], "count_all")])
        assert sorted(counts.to_pylist(), key=str) == sorted([
            {"exchange": "binance", "date": DAY, "count_all": 10},
            {"exchange": "binance", "date": DAY + dt.timedelta(days=1), "count_all": 1200},
            {"exchange": "kraken", "date": DAY, "count_all": 10},
        ], key=str)

    def test_list_coins_and_dates_are_exact_not_inferred_from_coin_ranges(self, large):
        write_days(large, [DAY], coins=["AAA", "CCC"])
        write_days(large, [DAY + dt.timedelta(days=1)], coins=["AAA", "BBB", "CCC"])
        assert large.list_exchanges("ohlcv") == ["binance"]
        assert large.list_coins("binance", "ohlcv") == ["AAA", "BBB", "CCC"]
        # The first day's file spans AAA..CCC but holds no BBB.
        assert large.list_dates("binance", "BBB", "ohlcv") == [DAY + dt.timedelta(days=1)]
        assert large.list_dates("binance", "AAA", "ohlcv") == [DAY, DAY + dt.timedelta(days=1)]
        assert large.list_dates("binance", "ZZZ", "ohlcv") == []

    def test_sorted_compaction_gives_files_with_disjoint_coin_ranges_and_the_same_rows(self, large):
        days = [DAY + dt.timedelta(days=i) for i in range(4)]
        write_days(large, days, n=60)
        before = large.read_partitions("ohlcv", None)

        # A small target size splits the month into several files, as 128 MB does at scale.
        result = mt.compact_table(large.backend, "ohlcv", target_size=5_000)

        assert result.sorted_by == ("coin", "timestamp") and result.partitions == [
            {"exchange": "binance", "month": "2024-01"}]
        ranges = coin_ranges(large)
        assert result.before.files == 4 and len(ranges) == result.after.files > 1
        assert all(ranges[i][1] <= ranges[i + 1][0] for i in range(len(ranges) - 1))  # disjoint
        from cb_storage_dagster.storage.delta.sorting import is_sorted

        for fragment in large.delta.open("ohlcv").to_pyarrow_dataset().get_fragments():  # each file as stored
            assert is_sorted(fragment.to_table(columns=["coin", "timestamp"]), ["coin", "timestamp"],
                             single_instrument=False)
        after = large.read_partitions("ohlcv", None)
        assert after.equals(before)
        assert mt.compact_table(large.backend, "ohlcv", target_size=5_000).partitions == []  # done

    def test_a_one_instrument_read_touches_only_the_files_whose_coin_range_holds_it(self, large):
        write_days(large, [DAY + dt.timedelta(days=i) for i in range(4)], n=60)
        mt.compact_table(large.backend, "ohlcv", target_size=5_000)
        delta = large.delta
        snapshot = delta._scans.snapshot(delta.open("ohlcv"))
        scope = WriteScope.of_instruments([("binance", "C017")])
        plan = delta._scans.plan(snapshot, scope)
        assert 1 <= plan.file_count < snapshot.actions.num_rows / 2
        frame = large.get_range({"data_type": "ohlcv", "exchange": "binance", "coin": "C017"},
                                at(2024, 1, 1), at(2024, 2, 1))
        assert len(frame) == 4 * 60 and set(frame["coin"]) == {"C017"}
        assert frame["timestamp"].is_monotonic_increasing and frame["open"].iloc[0] == 27.0

    def test_a_day_written_after_compaction_is_compacted_again_next_time(self, large):
        write_days(large, [DAY, DAY + dt.timedelta(days=1)])
        mt.compact_table(large.backend, "ohlcv")
        assert mt.compact_table(large.backend, "ohlcv").partitions == []
        write_days(large, [DAY + dt.timedelta(days=2)])
        again = mt.compact_table(large.backend, "ohlcv")
        assert again.partitions == [{"exchange": "binance", "month": "2024-01"}]
        assert (again.before.files, again.after.files) == (2, 1)
        assert len(large.read_partitions("ohlcv", None)) == 3 * 40 * 30


class TestIOManager:
    def test_the_io_manager_creates_tables_in_its_configured_layout(self, tmp_path):
        from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
        from cb_storage_dagster.orchestration.resources import LocalStorageResource

        daily = dg.DailyPartitionsDefinition(start_date="2024-01-01", timezone="UTC")

        @dg.asset(partitions_def=daily, metadata={"data_type": "ohlcv"}, io_manager_key="market_data_io_manager")
        def market(context) -> pd.DataFrame:
            return exchange_day(dt.date.fromisoformat(context.partition_key), COINS[:3], n=5)

        io_manager = MarketDataIOManager(
            storage=LocalStorageResource(root_path=str(tmp_path / "store")), delta_layout="exchange")
        with dg.instance_for_test() as instance:
            for _ in range(2):  # idempotent
                result = dg.materialize([market], resources={"market_data_io_manager": io_manager},
                                        instance=instance, partition_key="2024-01-02")
                assert result.success
        manager = io_manager.manager
        assert manager.delta.layout("market") == "exchange"
        frame = manager.read_partitions("ohlcv", None, table="market").to_pandas()
        assert len(frame) == 15 and sorted(set(frame["coin"])) == COINS[:3]
        assert manager.list_coins("binance", "ohlcv", table="market") == COINS[:3]
