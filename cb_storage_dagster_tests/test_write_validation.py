"""Write validation holds whatever the shape of the data: row order, several instruments,
several days and months. The checks take shortcuts for the usual shape (one instrument,
rows in time order); these tests pin down that the other shapes get the same answers."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from cb_storage_dagster.domain.schemas import normalize
from cb_storage_dagster.storage import (
    InvalidDataError,
    LocalFileBackend,
    PartitionMismatchError,
    PartitionSlot,
    StorageManagerImpl,
    WriteScope,
)
from cb_storage_dagster_tests.support.data import at, ohlcv, order_book
from cb_storage_dagster_tests.support.snapshots import snapshot

BTC = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}
BOOK = {**BTC, "data_type": "order_book"}
DAY1, DAY2 = dt.date(2024, 1, 2), dt.date(2024, 1, 3)


@pytest.fixture
def manager(tmp_path) -> StorageManagerImpl:
    return StorageManagerImpl(LocalFileBackend(tmp_path / "store"))


def shuffled(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sample(frac=1.0, random_state=7).reset_index(drop=True)


def two_days() -> pd.DataFrame:
    return pd.concat([ohlcv(DAY1, n=50), ohlcv(DAY2, n=50)], ignore_index=True)


class TestDuplicates:
    @pytest.mark.parametrize("order", ["appended", "in time order (repeats adjacent)", "shuffled"])
    def test_a_repeated_candle_is_counted_in_any_row_order(self, manager, order):
        data = pd.concat([two_days(), ohlcv(DAY2, n=3)], ignore_index=True)
        if order == "shuffled":
            data = shuffled(data)
        elif order.startswith("in time order"):
            data = data.sort_values("timestamp", kind="stable").reset_index(drop=True)
        with pytest.raises(InvalidDataError, match="^3 duplicate rows on"):
            manager.save_entry(BTC, data)
        assert manager.stored_format("ohlcv") is None

    def test_rows_out_of_time_order_are_accepted_and_read_back_in_order(self, manager):
        data = two_days()
        manager.save_entry(BTC, shuffled(data))
        stored = manager.get_range(BTC, at(2024, 1, 2), at(2024, 1, 4))
        assert stored["timestamp"].tolist() == data["timestamp"].tolist()
        assert stored["open"].tolist() == data["open"].tolist()

    def test_the_same_minute_on_two_instruments_is_not_a_duplicate(self, manager):
        data = pd.concat([ohlcv(DAY1, n=20, coin="ETH"), ohlcv(DAY1, n=20, coin="BTC")], ignore_index=True)
        scope = WriteScope.of_slots([PartitionSlot("binance", "BTC", DAY1), PartitionSlot("binance", "ETH", DAY1)])
        result = manager.write_partitions("ohlcv", data, scope)
        assert result.rows_per_partition == {"binance/BTC/2024-01-02": 20, "binance/ETH/2024-01-02": 20}

    def test_a_repeated_candle_of_one_instrument_among_several_is_refused(self, manager):
        data = pd.concat([ohlcv(DAY1, n=20, coin="ETH"), ohlcv(DAY1, n=20, coin="BTC"),
                          ohlcv(DAY1, n=1, coin="ETH")], ignore_index=True)
        scope = WriteScope.of_slots([PartitionSlot("binance", "BTC", DAY1), PartitionSlot("binance", "ETH", DAY1)])
        with pytest.raises(InvalidDataError, match="^1 duplicate rows on"):
            manager.write_partitions("ohlcv", data, scope)

    @pytest.mark.parametrize("order", ["as published (bids first)", "sorted", "shuffled"])
    def test_book_levels_sharing_a_timestamp_are_distinct_and_a_repeated_level_is_not(self, manager, order):
        book = order_book(DAY1, snapshots=4, depth=3)
        if order == "sorted":
            book = book.sort_values(["timestamp", "side", "level"]).reset_index(drop=True)
        elif order == "shuffled":
            book = shuffled(book)
        assert manager.save_entry(BOOK, book).row_count == 4 * 2 * 3
        repeated = pd.concat([book, book.iloc[[5]]], ignore_index=True)
        with pytest.raises(InvalidDataError, match="^1 duplicate rows on"):
            manager.save_entry(BOOK, repeated)


class TestScope:
    def test_a_row_pairing_one_instrument_with_another_instruments_day_is_refused(self, manager):
        # The scope holds BTC on day 1 and ETH on day 2, so every exchange, coin and day of the
        # offending row is in the scope on its own; only the combination is not.
        scope = WriteScope.of_slots([PartitionSlot("binance", "BTC", DAY1), PartitionSlot("binance", "ETH", DAY2)])
        data = pd.concat([ohlcv(DAY1, coin="BTC"), ohlcv(DAY2, coin="ETH"), ohlcv(DAY2, n=2, coin="BTC")],
                         ignore_index=True)
        manager.save_entry(BTC, ohlcv(DAY2, n=5))
        before = snapshot(manager.backend)
        with pytest.raises(PartitionMismatchError, match=r"^2 rows do not belong .*found binance/BTC/2024-01-03"):
            manager.write_partitions("ohlcv", data, scope)
        assert snapshot(manager.backend) == before

    def test_row_mask_marks_exactly_the_rows_of_the_slots(self):
        scope = WriteScope.of_slots([
            PartitionSlot("binance", "BTC", DAY1), PartitionSlot("kraken", "ETH", DAY2),
            PartitionSlot("binance", "BTC", dt.date(1969, 12, 31)),
        ])
        rows = [("binance", "BTC", DAY1, True), ("binance", "BTC", DAY2, False),
                ("kraken", "ETH", DAY2, True), ("kraken", "BTC", DAY2, False),
                ("binance", "ETH", DAY2, False), ("kraken", "ETH", DAY1, False),
                ("coinbase", "BTC", DAY1, False), ("binance", "BTC", dt.date(1969, 12, 31), True),
                ("binance", "BTC", dt.date(1970, 1, 1), False)]
        table = pa.table({"exchange": [r[0] for r in rows], "coin": [r[1] for r in rows],
                          "date": pa.array([r[2] for r in rows], pa.date32())})
        assert scope.row_mask(table).to_pylist() == [r[3] for r in rows]


def test_date_and_month_are_the_utc_day_and_month_of_each_timestamp():
    stamps = pd.DatetimeIndex([
        "1969-12-31T23:59:00Z", "2023-12-31T23:59:59.999999Z", "2024-01-01T00:00:00Z",
        "2024-01-31T15:30:00Z", "2024-02-29T23:00:00Z", "2024-03-01T00:00:00Z",
    ])
    local = stamps.tz_convert("Asia/Tokyo")  # the same instants, given in another zone
    frame = pd.DataFrame({"exchange": "binance", "coin": "BTC", "timestamp": local,
                          "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 3.0})
    table = normalize(frame, "ohlcv")
    assert table.column("date").to_pylist() == [t.date() for t in stamps]
    assert table.column("month").to_pylist() == [t.strftime("%Y-%m") for t in stamps]
    assert table.column("month").type == pa.string()


@pytest.mark.parametrize("order", ["sorted", "interleaved", "shuffled", "too many runs: grouped"])
def test_rows_per_partition_counts_each_partition_in_any_row_order(order, monkeypatch):
    from cb_storage_dagster.storage import format as base
    from cb_storage_dagster.storage.format import rows_per_partition

    if order.startswith("too many runs"):
        monkeypatch.setattr(base, "_MAX_RUNS", 2)
    data = normalize(pd.concat([ohlcv(DAY1, n=30, coin="BTC"), ohlcv(DAY2, n=20, coin="BTC"),
                                ohlcv(DAY1, n=10, coin="ETH")], ignore_index=True), "ohlcv")
    if order == "interleaved":  # every row starts a new run
        data = data.take(pa.array([i for pair in zip(range(30), range(50, 60)) for i in pair] + list(range(10, 50))))
    elif order == "shuffled":
        data = data.take(pa.array(shuffled(pd.DataFrame({"i": range(60)}))["i"]))
    ninth = PartitionSlot("binance", "BTC", dt.date(2024, 1, 9))
    assert rows_per_partition(data, WriteScope.of_slots([ninth])) == {
        "binance/BTC/2024-01-02": 30, "binance/BTC/2024-01-03": 20, "binance/BTC/2024-01-09": 0,
        "binance/ETH/2024-01-02": 10,
    }


class TestValueRanges:
    def arrow_candles(self, **overrides: list[float]) -> pa.Table:
        frame = normalize(ohlcv(DAY1, n=4), "ohlcv").drop_columns(["date", "month"])
        for name, values in overrides.items():
            frame = frame.set_column(frame.column_names.index(name), name, pa.array(values, pa.float64()))
        return frame

    def test_a_nan_in_an_arrow_table_is_refused(self, manager):
        # pandas turns NaN into a null on the way to Arrow; an Arrow table keeps the NaN.
        with pytest.raises(InvalidDataError, match="'close' has 1 NaN or infinite values"):
            manager.save_entry(BTC, self.arrow_candles(close=[1.0, float("nan"), 2.0, 3.0]))

    def test_a_negative_infinity_is_refused(self, manager):
        with pytest.raises(InvalidDataError, match="'volume' has 1 NaN or infinite values"):
            manager.save_entry(BTC, self.arrow_candles(volume=[1.0, float("-inf"), 2.0, 3.0]))

    def test_huge_but_finite_values_are_accepted_even_if_their_sum_overflows(self, manager):
        data = self.arrow_candles(volume=[1e308, 1e308, 0.0, 1.0])
        assert manager.save_entry(BTC, data).row_count == 4
