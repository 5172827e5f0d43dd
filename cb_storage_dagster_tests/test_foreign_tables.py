"""Tables written or altered by other engines are read and listed correctly.

The fast reader (log pruning + direct Parquet reads) runs only for the table shapes and
protocol features it implements; everything else -- deletion vectors (on by default for new
Databricks tables), column mapping, another partitioning -- goes through delta-rs' DataFusion
reader with the same filters, projection and time travel. A table that even delta-rs cannot
read is an ``UnsupportedTableFeatureError``; listing never raises a bare ``KeyError``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from cb_storage_dagster.domain.schemas import normalize
from cb_storage_dagster.storage import (
    LocalFileBackend,
    NotFoundError,
    SchemaMismatchError,
    StorageManagerImpl,
    UnsupportedTableFeatureError,
)
from cb_storage_dagster.storage import maintenance as mt
from cb_storage_dagster.storage.delta.fast_path import fast_path_refusal
from cb_storage_dagster_tests.support.data import at, ohlcv
from cb_storage_dagster_tests.support.foreign_tables import (
    delete_rows_with_deletion_vector,
    require_unknown_reader_feature,
)

BTC = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}
ETH = {"data_type": "ohlcv", "exchange": "binance", "coin": "ETH"}
DAY = dt.date(2024, 1, 2)


def one_day(manager: StorageManagerImpl, key=BTC, day: dt.date = DAY, **kw) -> pd.DataFrame:
    start = at(day.year, day.month, day.day)
    return manager.get_range(key, start, start + dt.timedelta(days=1), **kw)


def table_path(manager: StorageManagerImpl, table: str = "ohlcv") -> Path:
    return Path(manager.table_uri("ohlcv", table).removeprefix("file://"))


def open_table(manager: StorageManagerImpl, table: str = "ohlcv"):
    from deltalake import DeltaTable

    return DeltaTable(manager.table_uri("ohlcv", table), storage_options=manager.backend.get_storage_options())


def canonical(frame: pd.DataFrame, *, month: bool = True) -> pa.Table:
    data = normalize(frame, "ohlcv")
    return data if month else data.drop_columns(["month"])


# -- deletion vectors --------------------------------------------------------------------------
class TestDeletionVectors:
    @pytest.fixture
    def manager(self, tmp_path) -> StorageManagerImpl:
        manager = StorageManagerImpl(LocalFileBackend(tmp_path / "store"))
        for day in (DAY, DAY + dt.timedelta(days=1)):
            manager.save_entry({**BTC, "date": day}, ohlcv(day, n=6, price=100.0))
            manager.save_entry({**ETH, "date": day}, ohlcv(day, n=6, coin="ETH", price=200.0))
        open_table(manager).alter.set_table_properties({"delta.enableDeletionVectors": "true"})
        return manager

    def btc_day_file(self, manager: StorageManagerImpl) -> str:
        actions = pa.table(open_table(manager).get_add_actions(flatten=True)).to_pylist()
        (path,) = [a["path"] for a in actions if a["partition.coin"] == "BTC" and a["min.date"] == DAY]
        return path

    def test_enabling_deletion_vectors_moves_reads_off_the_fast_path(self, manager):
        assert "deletionVectors" in (fast_path_refusal(open_table(manager)) or "")
        assert one_day(manager)["close"].tolist() == [100.5 + i for i in range(6)]

    def test_rows_hidden_by_a_deletion_vector_are_not_read(self, manager):
        before = manager.table_version("ohlcv")
        version = delete_rows_with_deletion_vector(table_path(manager), self.btc_day_file(manager), [1, 3])
        vectors = pa.table(open_table(manager).deletion_vectors()).to_pylist()
        assert [v["selection_vector"] for v in vectors] == [[True, False, True, False, True, True]]

        frame = one_day(manager)
        assert frame["close"].tolist() == [100.5, 102.5, 104.5, 105.5]
        assert frame["timestamp"].is_monotonic_increasing
        assert len(one_day(manager, ETH)) == 6  # other files untouched
        assert manager.table_version("ohlcv") == version

        filtered = one_day(manager, filters=[("close", ">", 102.0)], columns=["timestamp", "close"])
        assert list(filtered.columns) == ["timestamp", "close"]
        assert filtered["close"].tolist() == [102.5, 104.5, 105.5]

        as_before = one_day(manager, as_of_version=before)
        assert len(as_before) == 6  # time travel to before the delete

    def test_listing_a_table_with_deletion_vectors(self, manager):
        delete_rows_with_deletion_vector(table_path(manager), self.btc_day_file(manager), [0, 1, 2, 3, 4, 5])
        assert manager.list_exchanges("ohlcv") == ["binance"]
        assert manager.list_coins("binance", "ohlcv") == ["BTC", "ETH"]
        # every row of BTC's first day is deleted: the day is no longer listed
        assert manager.list_dates("binance", "BTC", "ohlcv") == [DAY + dt.timedelta(days=1)]
        assert manager.list_dates("binance", "ETH", "ohlcv") == [DAY, DAY + dt.timedelta(days=1)]


# -- another partitioning, column mapping --------------------------------------------------
def write_exchange_date_table(manager: StorageManagerImpl, frames: list[pd.DataFrame], mode: str = "overwrite"):
    """The product's table location, written by another engine: partitioned by exchange and
    date, no coin partition, no month column."""
    from deltalake import write_deltalake

    data = pa.concat_tables([canonical(f, month=False) for f in frames])
    write_deltalake(
        manager.table_uri("ohlcv"), data, mode=mode, partition_by=["exchange", "date"],
        storage_options=manager.backend.get_storage_options(),
    )


class TestAnotherPartitioning:
    def test_reads_filters_projection_and_time_travel(self, manager):
        write_exchange_date_table(manager, [ohlcv(DAY, n=5), ohlcv(DAY, n=5, coin="ETH", price=300.0)])
        write_exchange_date_table(manager, [ohlcv(DAY + dt.timedelta(days=1), n=4, price=150.0)], mode="append")
        assert fast_path_refusal(open_table(manager)) == "partitioned by exchange, date"

        frame = one_day(manager)
        assert frame["coin"].unique().tolist() == ["BTC"]
        assert frame["close"].tolist() == [100.5 + i for i in range(5)]
        assert frame["timestamp"].is_monotonic_increasing
        assert str(frame["timestamp"].dtype) == "datetime64[us, UTC]"

        two_days = manager.get_range(BTC, at(2024, 1, 2, 0, 2), at(2024, 1, 3, 0, 2))
        assert two_days["close"].tolist() == [102.5, 103.5, 104.5, 150.5, 151.5]

        projected = one_day(manager, filters=[("close", "in", [101.5, 103.5])], columns=["close"])
        assert list(projected.columns) == ["close"]
        assert projected["close"].tolist() == [101.5, 103.5]

        assert len(one_day(manager, day=DAY + dt.timedelta(days=1), as_of_version=0)) == 0
        assert len(one_day(manager, day=DAY + dt.timedelta(days=1))) == 4

    def test_listing(self, manager):
        write_exchange_date_table(manager, [
            ohlcv(DAY, n=3), ohlcv(DAY + dt.timedelta(days=2), n=3),
            ohlcv(DAY, n=3, exchange="kraken", coin="ETH"),
        ])
        assert manager.list_exchanges("ohlcv") == ["binance", "kraken"]
        assert manager.list_coins("binance", "ohlcv") == ["BTC"]
        assert manager.list_coins("kraken", "ohlcv") == ["ETH"]
        assert manager.list_dates("binance", "BTC", "ohlcv") == [DAY, DAY + dt.timedelta(days=2)]
        assert manager.list_dates("binance", "ETH", "ohlcv") == []

    def test_a_bad_filter_is_the_callers_error(self, manager):
        write_exchange_date_table(manager, [ohlcv(DAY, n=3)])
        with pytest.raises(SchemaMismatchError, match="nope"):
            one_day(manager, filters=[("nope", "=", 1)])
        with pytest.raises(SchemaMismatchError):
            one_day(manager, filters=[("close", ">", "abc")])


def test_a_table_without_a_coin_column_lists_as_a_storage_error(tmp_path):
    from deltalake import write_deltalake

    manager = StorageManagerImpl(LocalFileBackend(tmp_path / "store"))
    data = canonical(ohlcv(DAY, n=3), month=False).drop_columns(["coin"])
    write_deltalake(manager.table_uri("ohlcv"), data, partition_by=["exchange", "date"])
    with pytest.raises(SchemaMismatchError, match="coin"):
        manager.list_coins("binance", "ohlcv")
    with pytest.raises(SchemaMismatchError, match="coin"):
        manager.list_dates("binance", "BTC", "ohlcv")
    with pytest.raises(SchemaMismatchError, match="coin"):
        one_day(manager)


def test_a_column_mapped_table_reads_and_lists(tmp_path):
    from deltalake import DeltaTable, write_deltalake

    manager = StorageManagerImpl(LocalFileBackend(tmp_path / "store"))
    data = pa.concat_tables([canonical(ohlcv(DAY, n=4)), canonical(ohlcv(DAY, n=4, coin="ETH", price=50.0))])
    uri = manager.table_uri("ohlcv")
    DeltaTable.create(uri, data.schema, partition_by=["exchange", "coin", "month"], configuration={
        "delta.columnMapping.mode": "name", "delta.minReaderVersion": "2", "delta.minWriterVersion": "5",
    })
    write_deltalake(uri, data, mode="append")
    assert fast_path_refusal(open_table(manager)) == "column mapping (name)"

    assert one_day(manager, ETH, columns=["close"])["close"].tolist() == [50.5, 51.5, 52.5, 53.5]
    assert manager.list_coins("binance", "ohlcv") == ["BTC", "ETH"]
    assert manager.list_dates("binance", "BTC", "ohlcv") == [DAY]


# -- what even delta-rs cannot read ---------------------------------------------------------
class TestUnsupportedFeature:
    @pytest.fixture
    def manager(self, tmp_path) -> StorageManagerImpl:
        manager = StorageManagerImpl(LocalFileBackend(tmp_path / "store"))
        manager.save_entry({**BTC, "date": DAY}, ohlcv(DAY, n=3))
        require_unknown_reader_feature(table_path(manager))
        return manager

    def test_reads_and_listing_name_the_feature(self, manager):
        for call in (lambda: one_day(manager), lambda: manager.list_coins("binance", "ohlcv")):
            with pytest.raises(UnsupportedTableFeatureError, match="futureEngineFeature") as raised:
                call()
            assert "Kernel error" not in str(raised.value)  # our words, not delta-rs' text

    def test_maintenance_reports_it_as_the_projects_error(self, manager):
        with pytest.raises(UnsupportedTableFeatureError):
            mt.compact_table(manager.backend, "ohlcv")

    def test_time_travel_says_which_versions_are_unreadable_and_why(self, manager):
        assert len(one_day(manager, as_of_version=1)) == 3  # before the feature was required
        with pytest.raises(UnsupportedTableFeatureError):  # not "has no version 2"
            one_day(manager, as_of_version=2)


def test_a_version_that_does_not_exist_names_the_latest(tmp_path):
    manager = StorageManagerImpl(LocalFileBackend(tmp_path / "store"))
    manager.save_entry({**BTC, "date": DAY}, ohlcv(DAY, n=3))
    with pytest.raises(NotFoundError, match="has no version 7 .*latest version is 1"):
        one_day(manager, as_of_version=7)


def test_maintenance_of_a_corrupt_log_is_a_corrupt_table_error_without_raw_text(tmp_path):
    from cb_storage_dagster.storage import CorruptTableError

    manager = StorageManagerImpl(LocalFileBackend(tmp_path / "store"))
    manager.save_entry({**BTC, "date": DAY}, ohlcv(DAY, n=3))
    (table_path(manager) / "_delta_log" / "00000000000000000000.json").write_text("{not json\n")
    for operation in (mt.compact_table, mt.checkpoint_table, mt.vacuum_table):
        with pytest.raises(CorruptTableError) as raised:
            operation(manager.backend, "ohlcv")
        assert str(tmp_path) not in str(raised.value).replace(manager.backend.describe(), "")
        assert raised.value.__suppress_context__


def test_the_same_partition_names_with_other_meanings_are_not_read_as_ours(tmp_path):
    """exchange/coin/month partitions, but ``month`` is a number and ``date`` a string: the
    allow-list checks types too, and DataFusion prunes without trusting either column."""
    from deltalake import write_deltalake

    manager = StorageManagerImpl(LocalFileBackend(tmp_path / "store"))
    data = canonical(ohlcv(DAY, n=3)).drop_columns(["month", "date"])
    data = data.append_column("month", pa.array([1] * 3, pa.int64()))
    data = data.append_column("date", pa.array(["20240102"] * 3))
    write_deltalake(manager.table_uri("ohlcv"), data, partition_by=["exchange", "coin", "month"])
    assert fast_path_refusal(open_table(manager)) == "column 'month' is int64"

    assert len(one_day(manager)) == 3
    assert manager.list_dates("binance", "BTC", "ohlcv") == [DAY]  # from timestamp, not the string date


def test_an_unpartitioned_table_reads_and_lists(tmp_path):
    from deltalake import write_deltalake

    manager = StorageManagerImpl(LocalFileBackend(tmp_path / "store"))
    frames = [ohlcv(DAY, n=3), ohlcv(DAY, n=2, coin="ETH"), ohlcv(DAY + dt.timedelta(days=3), n=2)]
    write_deltalake(manager.table_uri("ohlcv"), pa.concat_tables([canonical(f) for f in frames]))
    assert fast_path_refusal(open_table(manager)) == "partitioned by nothing"

    assert len(one_day(manager)) == 3
    assert manager.list_coins("binance", "ohlcv") == ["BTC", "ETH"]
    assert manager.list_dates("binance", "BTC", "ohlcv") == [DAY, DAY + dt.timedelta(days=3)]


def test_data_files_stored_as_string_view_read_like_the_others(tmp_path):
    """delta-rs' own merge (here a foreign writer's) stores the string data columns of the
    files it writes as ``string_view`` (exchange layout: ``coin``); next to plain files,
    filtered reads, projections, listings and cross-sections see its rows in the table's types."""
    import pyarrow.parquet as pq

    manager = StorageManagerImpl(LocalFileBackend(tmp_path / "store"), default_layout="exchange")
    manager.save_entry(BTC, ohlcv(DAY, n=3))
    later = DAY + dt.timedelta(days=1)
    source = pa.concat_tables([canonical(ohlcv(later, n=2, coin=coin)) for coin in ("ETH", "SOL")])
    (open_table(manager).merge(source, "t.coin = s.coin AND t.timestamp = s.timestamp", source_alias="s",
                               target_alias="t").when_not_matched_insert_all().execute())
    data_files = [p for p in table_path(manager).rglob("*.parquet") if "_cb_registry" not in p.parts]
    stored = [pq.read_schema(path).field("coin").type for path in data_files]
    assert pa.string_view() in stored and pa.string() in stored

    got = one_day(manager, ETH, later)
    assert list(got["close"]) == list(ohlcv(later, n=2, coin="ETH")["close"])
    assert got["coin"].dtype == one_day(manager)["coin"].dtype
    assert list(one_day(manager, ETH, later, columns=["timestamp", "close"]).columns) == ["timestamp", "close"]
    assert manager.list_coins("binance", "ohlcv") == ["BTC", "ETH", "SOL"]
    both = manager.get_many("ohlcv", "binance", at(2024, 1, 2), at(2024, 1, 4))
    assert list(both["coin"]) == ["BTC"] * 3 + ["ETH"] * 2 + ["SOL"] * 2


def test_compaction_of_the_instrument_layout_reads_string_view_files_in_the_tables_types(tmp_path):
    """A foreign merge's files store ``trade_id`` and ``side`` as ``string_view``; the sorted
    compaction of the instrument layout reads them next to plain files and loses nothing."""
    from cb_storage_dagster_tests.support.data import trades

    manager = StorageManagerImpl(LocalFileBackend(tmp_path / "store"))
    key = {"data_type": "trades", "exchange": "binance", "coin": "BTC"}
    later = DAY + dt.timedelta(days=1)
    for day in (DAY, later):
        manager.save_entry({**key, "date": day}, trades(day, n=5))
    extra = normalize(trades(later, n=8), "trades").slice(5)
    (open_table(manager, "trades").merge(extra, "t.coin = s.coin AND t.trade_id = s.trade_id", source_alias="s",
                                         target_alias="t").when_not_matched_insert_all().execute())
    import pyarrow.parquet as pq

    stored = {pq.read_schema(path).field("trade_id").type for path in table_path(manager, "trades").rglob("*.parquet")
              if "_delta_log" not in path.parts and "_cb_registry" not in path.parts}
    assert stored == {pa.string(), pa.string_view()}
    before = manager.get_range(key, at(2024, 1, 2), at(2024, 1, 4))
    assert len(before) == 5 + 8

    result = mt.compact_table(manager.backend, "trades")

    assert result.after.files == 1 and result.files_removed == 3
    pd.testing.assert_frame_equal(manager.get_range(key, at(2024, 1, 2), at(2024, 1, 4)), before)
