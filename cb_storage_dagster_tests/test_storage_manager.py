"""Specification of StorageManagerImpl, proven on every backend (local disk and Azurite)
and, where it matters, on every format (Delta, Parquet, JSON)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from cb_storage_dagster.domain.errors import PartitionMismatchError
from cb_storage_dagster.storage import (
    DataType,
    MarketDataKey,
    PartitionSlot,
    StorageManagerImpl,
    WriteScope,
    canonical_schema,
)
from cb_storage_dagster_tests.support.data import MAKERS, at, ohlcv, order_book, trades
from cb_storage_dagster_tests.support.params import both_layouts

BTC = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}


def key(data_type: str = "ohlcv", exchange: str = "binance", coin: str = "BTC", date=None) -> dict:
    out = {"data_type": data_type, "exchange": exchange, "coin": coin}
    if date is not None:
        out["date"] = date
    return out


def read_all(manager: StorageManagerImpl, data_type: str = "ohlcv", **kw) -> pd.DataFrame:
    return manager.get_range(key(data_type, **kw), at(2000, 1, 1), at(2100, 1, 1))


@both_layouts
class TestRoundTrip:
    @pytest.mark.parametrize("data_type", ["ohlcv", "trades", "order_book"])
    def test_every_data_type_and_format_reads_back_what_was_saved(self, manager, fmt, data_type):
        saved = MAKERS[data_type]("2024-01-02")
        result = manager.save_entry(key(data_type), saved, fmt)

        loaded = read_all(manager, data_type)
        assert result.row_count == len(saved) == len(loaded)
        assert result.format == fmt
        assert list(loaded.columns) == canonical_schema(data_type).names
        order = {"ohlcv": ["timestamp"], "trades": ["timestamp", "trade_id"], "order_book": ["timestamp", "side", "level"]}
        expected = saved.sort_values(order[data_type]).reset_index(drop=True)
        for column in saved.columns:
            assert loaded[column].tolist() == expected[column].tolist(), column
        assert set(loaded["date"]) == {dt.date(2024, 1, 2)}

    def test_delta_reports_the_committed_version(self, manager):
        first = manager.save_entry(BTC, ohlcv("2024-01-02"))
        second = manager.save_entry(BTC, ohlcv("2024-01-03"))
        assert (first.version, second.version) == (1, 2)  # version 0 creates the table
        assert first.uri.endswith("/ohlcv")

    def test_pyarrow_tables_are_accepted(self, manager, fmt):
        manager.save_entry(BTC, pa.Table.from_pandas(ohlcv("2024-01-02")), fmt)
        assert len(read_all(manager)) == 10

    def test_missing_exchange_and_coin_columns_are_filled_from_the_key(self, manager, fmt):
        manager.save_entry(BTC, ohlcv("2024-01-02", exchange=None, coin=None), fmt)
        loaded = read_all(manager)
        assert set(loaded["exchange"]) == {"binance"} and set(loaded["coin"]) == {"BTC"}

    def test_extra_columns_are_kept(self, manager, fmt):
        frame = ohlcv("2024-01-02").assign(vwap=101.5)
        manager.save_entry(BTC, frame, fmt)
        assert read_all(manager)["vwap"].tolist() == [101.5] * 10

    def test_lossless_casts_are_applied(self, manager):
        frame = ohlcv("2024-01-02")
        frame["volume"] = frame["volume"].astype("int64")
        frame["timestamp"] = frame["timestamp"].dt.tz_convert("America/New_York")
        manager.save_entry(BTC, frame)
        loaded = read_all(manager)
        assert str(loaded["volume"].dtype) == "float64"
        assert str(loaded["timestamp"].dt.tz) == "UTC"
        assert loaded["timestamp"].iloc[0] == pd.Timestamp("2024-01-02", tz="UTC")

    def test_a_caller_supplied_date_column_is_ignored(self, manager):
        frame = ohlcv("2024-01-02").assign(date=dt.date(1999, 1, 1))
        manager.save_entry(BTC, frame)
        assert set(read_all(manager)["date"]) == {dt.date(2024, 1, 2)}

    def test_the_typed_key_is_equivalent_to_the_dict_form(self, manager):
        manager.save_entry(MarketDataKey("ohlcv", "binance", "BTC"), ohlcv("2024-01-02"))
        assert len(manager.get_range(MarketDataKey("ohlcv", "binance", "BTC"), at(2024, 1, 2), at(2024, 1, 3))) == 10


@both_layouts
class TestReplaceSemantics:
    def test_saving_the_same_day_twice_leaves_one_copy(self, manager, fmt):
        manager.save_entry(BTC, ohlcv("2024-01-02"), fmt)
        manager.save_entry(BTC, ohlcv("2024-01-02"), fmt)
        assert len(read_all(manager)) == 10

    def test_a_partial_day_replaces_that_day_only_and_neighbours_are_untouched(self, manager, fmt):
        for day in ("2024-01-01", "2024-01-02", "2024-01-03"):
            manager.save_entry(BTC, ohlcv(day), fmt)
        manager.save_entry(key(date="2024-01-02"), ohlcv("2024-01-02", n=3, price=500.0), fmt)

        loaded = read_all(manager)
        per_day = loaded.groupby("date").size().to_dict()
        assert per_day == {dt.date(2024, 1, 1): 10, dt.date(2024, 1, 2): 3, dt.date(2024, 1, 3): 10}
        assert loaded[loaded["date"] == dt.date(2024, 1, 2)]["open"].min() == 500.0

    def test_other_instruments_are_untouched(self, manager, fmt):
        manager.save_entry(BTC, ohlcv("2024-01-02"), fmt)
        manager.save_entry(key(coin="ETH"), ohlcv("2024-01-02", coin="ETH"), fmt)
        manager.save_entry(BTC, ohlcv("2024-01-02", n=2), fmt)
        assert len(read_all(manager, coin="ETH")) == 10
        assert len(read_all(manager)) == 2

    def test_an_empty_frame_for_a_dated_key_clears_that_day(self, manager, fmt):
        manager.save_entry(BTC, ohlcv("2024-01-02"), fmt)
        manager.save_entry(BTC, ohlcv("2024-01-03"), fmt)
        manager.save_entry(key(date="2024-01-02"), ohlcv("2024-01-02", n=0), fmt)
        assert set(read_all(manager)["date"]) == {dt.date(2024, 1, 3)}

    def test_a_range_write_replaces_every_slot_in_one_commit(self, manager):
        slots = [PartitionSlot("binance", "BTC", dt.date(2024, 1, d)) for d in (30, 31)]
        slots += [PartitionSlot("binance", "BTC", dt.date(2024, 2, 1))]
        data = pd.concat([ohlcv("2024-01-30"), ohlcv("2024-02-01")])  # 2024-01-31 has no rows
        manager.save_entry(key(date="2024-01-31"), ohlcv("2024-01-31"))
        before = manager.delta.open("ohlcv").version()

        result = manager.write_partitions("ohlcv", data, WriteScope.of_slots(slots))

        assert result.version == before + 1
        assert result.rows_per_partition == {
            "binance/BTC/2024-01-30": 10, "binance/BTC/2024-01-31": 0, "binance/BTC/2024-02-01": 10}
        assert sorted(set(read_all(manager)["date"])) == [dt.date(2024, 1, 30), dt.date(2024, 2, 1)]

    def test_an_exchange_day_write_replaces_every_coin_of_that_exchange_day_only(self, manager, fmt):
        for coin in ("BTC", "ETH", "SOL"):
            manager.save_entry(key(coin=coin), ohlcv("2024-01-02", coin=coin), fmt)
        manager.save_entry(key(coin="BTC"), ohlcv("2024-01-03"), fmt)
        manager.save_entry(key(exchange="kraken"), ohlcv("2024-01-02", exchange="kraken"), fmt)
        new_day = pd.concat([ohlcv("2024-01-02", n=5, coin="BTC"), ohlcv("2024-01-02", n=5, coin="ADA")])

        result = manager.write_partitions(
            "ohlcv", new_day, WriteScope.of_exchange_days([("binance", dt.date(2024, 1, 2))]), format=fmt)

        assert result.rows_per_partition == {"binance/ADA/2024-01-02": 5, "binance/BTC/2024-01-02": 5}
        assert manager.list_coins("binance", "ohlcv") == ["ADA", "BTC"]  # ETH, SOL were replaced
        assert len(read_all(manager, coin="BTC")) == 5 + 10  # 2024-01-03 untouched
        assert len(read_all(manager, exchange="kraken")) == 10  # another exchange untouched

    def test_an_exchange_day_write_refuses_rows_of_another_exchange_or_day(self, manager):
        manager.save_entry(BTC, ohlcv("2024-01-02"))
        scope = WriteScope.of_exchange_days([("binance", dt.date(2024, 1, 2))])
        for stray in (ohlcv("2024-01-02", exchange="kraken"), ohlcv("2024-01-03")):
            with pytest.raises(PartitionMismatchError):
                manager.write_partitions("ohlcv", stray, scope)
        assert len(read_all(manager)) == 10


@both_layouts
class TestRanges:
    @pytest.fixture
    def filled(self, manager, fmt):
        for day in ("2024-01-30", "2024-01-31", "2024-02-01", "2024-02-02"):
            manager.save_entry(BTC, ohlcv(day, n=1440), fmt)
        return manager

    def test_a_range_across_a_month_end_is_half_open_and_sorted(self, filled):
        frame = filled.get_range(BTC, at(2024, 1, 31, 23, 0), at(2024, 2, 1, 1, 0))
        assert len(frame) == 120
        assert frame["timestamp"].iloc[0] == pd.Timestamp("2024-01-31 23:00", tz="UTC")
        assert frame["timestamp"].iloc[-1] == pd.Timestamp("2024-02-01 00:59", tz="UTC")
        assert frame["timestamp"].is_monotonic_increasing

    def test_a_multi_day_range_returns_every_day(self, filled):
        frame = filled.get_range(BTC, at(2024, 1, 30), at(2024, 2, 3))
        assert frame.groupby("date").size().tolist() == [1440] * 4

    def test_an_empty_range_is_an_empty_frame_with_the_canonical_schema(self, filled):
        frame = filled.get_range(BTC, at(2023, 1, 1), at(2023, 1, 2))
        assert frame.empty and list(frame.columns) == canonical_schema("ohlcv").names

    def test_a_table_that_does_not_exist_reads_as_empty(self, manager):
        frame = manager.get_range(key("trades"), at(2024, 1, 1), at(2024, 1, 2))
        assert frame.empty and list(frame.columns) == canonical_schema("trades").names

    def test_time_zones_are_honoured(self, filled):
        tokyo = dt.timezone(dt.timedelta(hours=9))
        frame = filled.get_range(BTC, dt.datetime(2024, 2, 1, 9, 0, tzinfo=tokyo), dt.datetime(2024, 2, 1, 9, 10, tzinfo=tokyo))
        assert frame["timestamp"].iloc[0] == pd.Timestamp("2024-02-01 00:00", tz="UTC") and len(frame) == 10

    def test_filters_and_column_projection(self, filled):
        frame = filled.get_range(
            BTC, at(2024, 1, 30), at(2024, 2, 3),
            filters=[("open", ">=", 1530.0), ("date", "=", dt.date(2024, 2, 1))], columns=["timestamp", "open"])
        assert list(frame.columns) == ["timestamp", "open"]
        assert len(frame) == 10 and frame["open"].min() == 1530.0

    def test_in_filters(self, filled):
        frame = filled.get_range(BTC, at(2024, 1, 30), at(2024, 2, 3), filters=[("open", "in", [100.0, 101.0])])
        assert len(frame) == 8


@both_layouts
class TestListing:
    def test_exchanges_coins_and_dates(self, manager, fmt):
        manager.save_entry(BTC, ohlcv("2024-01-02"), fmt)
        manager.save_entry(BTC, ohlcv("2024-02-05"), fmt)
        manager.save_entry(key(coin="ETH"), ohlcv("2024-01-02", coin="ETH"), fmt)
        manager.save_entry(key(exchange="coinbase"), ohlcv("2024-01-03", exchange="coinbase"), fmt)

        assert manager.list_exchanges("ohlcv") == ["binance", "coinbase"]
        assert manager.list_coins("binance", "ohlcv") == ["BTC", "ETH"]
        assert manager.list_coins("kraken", "ohlcv") == []
        assert manager.list_dates("binance", "BTC", "ohlcv") == [dt.date(2024, 1, 2), dt.date(2024, 2, 5)]
        assert manager.list_exchanges("trades") == []

    def test_dates_after_compaction_are_still_exact(self, manager):
        for day in ("2024-01-02", "2024-01-05", "2024-01-09"):
            manager.save_entry(BTC, ohlcv(day))
        manager.delta.open("ohlcv").optimize.compact()
        assert manager.list_dates("binance", "BTC", "ohlcv") == [dt.date(2024, 1, d) for d in (2, 5, 9)]


@both_layouts
class TestDeleteRange:
    def test_delete_range_removes_exactly_the_range(self, manager, fmt):
        manager.save_entry(BTC, ohlcv("2024-01-02"), fmt)
        manager.save_entry(BTC, ohlcv("2024-01-03"), fmt)
        manager.delete_range(BTC, at(2024, 1, 2, 0, 5), at(2024, 1, 3, 0, 2))
        frame = read_all(manager)
        assert len(frame) == 5 + 8


@both_layouts
class TestTimeTravel:
    def test_reading_an_older_version(self, manager):
        manager.save_entry(BTC, ohlcv("2024-01-02"))
        manager.save_entry(BTC, ohlcv("2024-01-02", n=3))
        assert len(manager.get_range(BTC, at(2024, 1, 2), at(2024, 1, 3), as_of_version=1)) == 10
        assert len(manager.get_range(BTC, at(2024, 1, 2), at(2024, 1, 3))) == 3


def test_formats_cannot_be_mixed_in_one_table(manager):
    from cb_storage_dagster.storage import UnsupportedFormatError

    manager.save_entry(BTC, ohlcv("2024-01-02"), "parquet")
    with pytest.raises(UnsupportedFormatError, match="stored as parquet"):
        manager.save_entry(BTC, ohlcv("2024-01-03"), "delta")
    assert manager.stored_format("ohlcv") == "parquet"


def test_the_format_is_inferred_when_reading(backend):
    StorageManagerImpl(backend, default_format="json").save_entry(BTC, ohlcv("2024-01-02"))
    assert len(read_all(StorageManagerImpl(backend))) == 10


def test_data_types_parse_case_insensitively():
    assert DataType.parse("OHLCV") is DataType.OHLCV
    assert trades("2024-01-01").shape[0] == 10 and order_book("2024-01-01").shape[0] == 12


@both_layouts
class TestDeltaHousekeeping:
    def test_new_tables_checkpoint_every_20_commits(self, manager):
        manager.save_entry(BTC, ohlcv("2024-01-02"))
        table = manager.delta.open("ohlcv")
        assert table.metadata().configuration["delta.checkpointInterval"] == "20"
        for day in range(3, 23):
            manager.save_entry(BTC, ohlcv(f"2024-01-{day:02d}", n=2))
        checkpoints = [i for i in manager.backend.list_items("ohlcv/_delta_log") if i.endswith(".checkpoint.parquet")]
        assert checkpoints == ["ohlcv/_delta_log/00000000000000000019.checkpoint.parquet"]  # 20th commit

    def test_a_long_lived_writer_reopens_its_table_and_keeps_every_row(self, manager, monkeypatch):
        from cb_storage_dagster.storage.delta import tables as delta_module

        monkeypatch.setattr(delta_module, "WRITER_REOPEN_COMMITS", 3)
        writers = set()
        for day in range(1, 9):
            manager.save_entry(BTC, ohlcv(f"2024-01-{day:02d}", n=5))
            writers.add(id(manager.delta._writers[manager.delta.uri("ohlcv")]))
        assert len(writers) >= 2
        assert len(read_all(manager)) == 40
