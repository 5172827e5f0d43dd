"""Specification of the cross-sectional read ``get_many`` (storage/cross_section.py): every
selected instrument over a time range in one pruned scan, on both Delta layouts, on local
disk and Azurite, and after replaces, merges, deletes, maintenance and a foreign writer.

The oracle is the single-instrument ``get_range`` (specified in test_storage_manager.py):
``get_many`` must return exactly the concatenation of the selected instruments' ``get_range``.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from cb_storage_dagster.domain.schemas import normalize
from cb_storage_dagster.storage import (
    InvalidKeyError,
    SchemaMismatchError,
    StorageManagerImpl,
    TimeRangeError,
    WriteScope,
    cross_section,
)
from cb_storage_dagster.storage import maintenance as mt
from cb_storage_dagster.storage.layout import LAYOUTS
from cb_storage_dagster_tests.support.data import at, ohlcv

pytestmark = pytest.mark.parametrize("layout", LAYOUTS)

DAYS = [dt.date(2024, 1, 30), dt.date(2024, 1, 31), dt.date(2024, 2, 1)]
UNIVERSE = {"binance": ["BTC", "ETH", "SOL"], "kraken": ["BTC", "XRP"]}
START, END = at(2024, 1, 30), at(2024, 2, 2)


def exchange_day(exchange: str, day: dt.date, coins: list[str], price: float = 100.0) -> pd.DataFrame:
    return pd.concat(
        [ohlcv(day, n=6, step="4h", exchange=exchange, coin=c, price=price + i) for i, c in enumerate(coins)],
        ignore_index=True,
    )


def fill(manager: StorageManagerImpl) -> None:
    for exchange, coins in UNIVERSE.items():
        for day in DAYS:
            manager.write_partitions("ohlcv", exchange_day(exchange, day, coins),
                                     WriteScope.of_exchange_days([(exchange, day)]))


def expected(manager: StorageManagerImpl, instruments, start=START, end=END) -> pd.DataFrame:
    frames = [manager.get_range({"data_type": "ohlcv", "exchange": e, "coin": c}, start, end)
              for e, c in sorted(instruments)]
    return pd.concat(frames, ignore_index=True)


def check(manager: StorageManagerImpl, selection, instruments, start=START, end=END) -> pd.DataFrame:
    got = manager.get_many("ohlcv", selection, start, end)
    pd.testing.assert_frame_equal(got, expected(manager, instruments, start, end))
    return got


def everything(manager: StorageManagerImpl, exchange: str) -> set[tuple[str, str]]:
    return {(exchange, c) for c in manager.list_coins(exchange, "ohlcv")}


@pytest.fixture
def filled(manager: StorageManagerImpl) -> StorageManagerImpl:
    fill(manager)
    return manager


class TestSelections:
    def test_an_exchange_gives_every_instrument_of_it_sorted(self, filled):
        got = check(filled, "binance", everything(filled, "binance"))
        assert len(got) == 3 * 3 * 6
        assert set(got["exchange"]) == {"binance"}
        assert got.equals(got.sort_values(["exchange", "coin", "timestamp"], ignore_index=True))

    def test_instruments_across_exchanges_as_keys_or_pairs(self, filled):
        wanted = [("binance", "ETH"), ("kraken", "XRP")]
        got = check(filled, ["kraken:XRP", ("binance", "ETH")], wanted)
        assert sorted(set(zip(got["exchange"], got["coin"]))) == wanted

    def test_many_instruments_take_the_per_exchange_plan_with_the_same_rows(self, filled, monkeypatch):
        monkeypatch.setattr(cross_section, "SLOT_SCOPE_LIMIT", 1)
        wanted = [("binance", "BTC"), ("binance", "SOL"), ("kraken", "BTC")]
        plans = cross_section.read_requests(wanted, START, END)
        assert [extra for _, extra in plans] == [[("coin", "in", ["BTC", "SOL"])], [("coin", "in", ["BTC"])]]
        check(filled, wanted, wanted)

    def test_a_partial_range_columns_filters_and_arrow(self, filled):
        start, end = at(2024, 1, 31, 6), at(2024, 2, 1, 10)
        got = filled.get_many("ohlcv", "kraken", start, end, columns=["coin", "timestamp", "close"],
                              filters=[("close", ">", 100.6)], as_arrow=True)
        assert isinstance(got, pa.Table) and got.column_names == ["coin", "timestamp", "close"]
        frame = got.to_pandas()
        assert frame["timestamp"].min() >= pd.Timestamp(start) and frame["timestamp"].max() < pd.Timestamp(end)
        assert (frame["close"] > 100.6).all() and len(frame) > 0
        ref = expected(filled, everything(filled, "kraken"), start, end)
        ref = ref[ref["close"] > 100.6][["coin", "timestamp", "close"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(frame, ref)

    def test_nothing_selected_or_stored_is_an_empty_frame_of_the_schema(self, filled):
        for selection in ([], ["binance:DOGE"], "okx"):
            got = filled.get_many("ohlcv", selection, START, END)
            assert got.empty and list(got.columns)[:3] == ["exchange", "coin", "timestamp"]
        assert filled.get_many("ohlcv", "binance", START, START).empty
        assert filled.get_many("trades", "binance", START, END).empty  # no such table


class TestAfterChanges:
    def test_a_replaced_day(self, filled):
        filled.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": "ETH"},
                          ohlcv(DAYS[1], n=3, step="8h", coin="ETH", price=500.0))
        got = check(filled, "binance", everything(filled, "binance"))
        eth = got[(got["coin"] == "ETH") & (got["timestamp"].dt.date == DAYS[1])]
        assert list(eth["open"]) == [500.0, 501.0, 502.0]
        check(filled, ["binance:ETH", "binance:SOL"], [("binance", "ETH"), ("binance", "SOL")])

    def test_a_replaced_day_and_a_merge(self, filled):
        # delta-rs' merge rewrites an exchange-layout file with `coin` stored as string_view:
        # the read casts such a file to the table's schema before filtering it.
        day = DAYS[1]
        filled.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": "ETH"},
                          ohlcv(day, n=3, step="8h", coin="ETH", price=500.0))
        merged = ohlcv(day, n=2, step="12h", coin="SOL", price=900.0)
        filled.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": "SOL"}, merged, mode="merge")
        got = check(filled, "binance", everything(filled, "binance"))
        eth = got[(got["coin"] == "ETH") & (got["timestamp"].dt.date == day)]
        assert list(eth["open"]) == [500.0, 501.0, 502.0]
        sol = got[(got["coin"] == "SOL") & (got["timestamp"].dt.date == day)]
        assert len(sol) == 6 and sorted(sol["open"])[-2:] == [900.0, 901.0]

    def test_deletes_and_maintenance(self, filled):
        filled.delete_range({"data_type": "ohlcv", "exchange": "kraken", "coin": "BTC"}, at(2024, 1, 30), at(2024, 2, 1))
        got = check(filled, "kraken", everything(filled, "kraken"))
        assert set(got[got["coin"] == "BTC"]["timestamp"].dt.date) == {DAYS[2]}
        before = filled.get_many("ohlcv", ["binance:BTC", "kraken:BTC", "kraken:XRP"], START, END)
        mt.maintain_table(filled.backend, "ohlcv", retention_hours=0, min_retention_hours=0)
        after = check(filled, ["binance:BTC", "kraken:BTC", "kraken:XRP"],
                      [("binance", "BTC"), ("kraken", "BTC"), ("kraken", "XRP")])
        pd.testing.assert_frame_equal(after, before)

    def test_a_foreign_writer_between_two_reads_is_seen(self, filled):
        from deltalake import write_deltalake

        first = filled.get_many("ohlcv", "kraken", START, END)
        foreign = normalize(ohlcv(DAYS[0], n=4, step="1h", exchange="kraken", coin="ADA"), "ohlcv")
        write_deltalake(filled.table_uri("ohlcv"), foreign, mode="append",
                        storage_options=filled.backend.get_storage_options())
        second = check(filled, "kraken", everything(filled, "kraken"))
        assert len(second) == len(first) + 4 and "ADA" in set(second["coin"])


class TestBadInput:
    def test_typed_errors(self, filled):
        with pytest.raises(TimeRangeError, match="time zone"):
            filled.get_many("ohlcv", "binance", dt.datetime(2024, 1, 30), END)
        with pytest.raises(InvalidKeyError, match="Unknown data type|data type"):
            filled.get_many("candles", "binance", START, END)
        with pytest.raises(InvalidKeyError, match="looks like one instrument"):
            filled.get_many("ohlcv", "binance:BTC", START, END)
        with pytest.raises(InvalidKeyError, match="exchange"):
            filled.get_many("ohlcv", ["bin ance:BTC"], START, END)
        with pytest.raises(InvalidKeyError, match="pair"):
            filled.get_many("ohlcv", [("binance", "BTC", "x")], START, END)
        with pytest.raises(InvalidKeyError):
            filled.get_many("ohlcv", 42, START, END)
        with pytest.raises(InvalidKeyError, match="operator"):
            filled.get_many("ohlcv", "binance", START, END, filters=[("close", "~", 1)])
        with pytest.raises(SchemaMismatchError):
            filled.get_many("ohlcv", "binance", START, END, columns=["nope"])
