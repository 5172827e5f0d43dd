"""Specification of instrument listings from something small (storage/delta/coin_registry.py,
storage/delta/listing.py): the instrument layout lists from the log's partition values, the
exchange layout from a coin registry kept by every write. Listings stay exact after
replaces, merges, deletes, maintenance, a lost or stale registry and a foreign writer (a raw
deltalake write between two listings is seen by the second), on local disk and Azurite."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from deltalake import write_deltalake

from cb_storage_dagster.domain.schemas import normalize
from cb_storage_dagster.storage import StorageManagerImpl, WriteScope
from cb_storage_dagster.storage import maintenance as mt
from cb_storage_dagster.storage.delta.coin_registry import REGISTRY_OBJECT
from cb_storage_dagster.storage.delta.scan import DeltaScanPlanner
from cb_storage_dagster.storage.layout import LAYOUTS
from cb_storage_dagster_tests.support.data import at, ohlcv

DAYS = [dt.date(2024, 1, 30), dt.date(2024, 1, 31), dt.date(2024, 2, 1)]
COINS = ["ADA", "BTC", "ETH", "SOL"]
REGISTRY = f"ohlcv/{REGISTRY_OBJECT}"


def exchange_day(day: dt.date, coins: list[str], exchange: str = "binance") -> pd.DataFrame:
    return pd.concat([ohlcv(day, n=4, step="6h", exchange=exchange, coin=c) for c in coins], ignore_index=True)


def write_day(manager: StorageManagerImpl, day: dt.date, coins: list[str], exchange: str = "binance") -> None:
    manager.write_partitions("ohlcv", exchange_day(day, coins, exchange), WriteScope.of_exchange_days([(exchange, day)]))


@pytest.fixture
def data_reads(monkeypatch) -> list[int]:
    """How many data files listings read to find their coins (each call reads files)."""
    calls: list[int] = []
    original = DeltaScanPlanner.coin_days_of_files

    def counting(self, delta_table, actions, storage_options):
        calls.append(actions.num_rows)
        return original(self, delta_table, actions, storage_options)

    monkeypatch.setattr(DeltaScanPlanner, "coin_days_of_files", counting)
    return calls


def fresh(manager: StorageManagerImpl) -> StorageManagerImpl:
    """A manager with nothing cached: what a new process sees."""
    return StorageManagerImpl(manager.backend)


@pytest.mark.parametrize("layout", LAYOUTS)
class TestListingsStayExact:
    def test_replaces_merges_deletes_and_maintenance(self, backend, layout):
        manager = StorageManagerImpl(backend, default_layout=layout)
        for day in DAYS:
            write_day(manager, day, COINS)
        write_day(manager, DAYS[0], COINS, exchange="kraken")
        assert fresh(manager).list_coins("binance", "ohlcv") == COINS
        assert fresh(manager).list_exchanges("ohlcv") == ["binance", "kraken"]
        # SOL leaves every day of binance by replaces; DOGE arrives by a merge.
        for day in DAYS:
            write_day(manager, day, ["ADA", "BTC", "ETH"])
        manager.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": "DOGE"},
                           ohlcv(DAYS[1], n=2, coin="DOGE"), mode="merge")
        assert fresh(manager).list_coins("binance", "ohlcv") == ["ADA", "BTC", "DOGE", "ETH"]
        # ETH's rows all deleted; ADA's first two days deleted.
        manager.delete_range({"data_type": "ohlcv", "exchange": "binance", "coin": "ETH"}, at(2024, 1, 1), at(2024, 3, 1))
        manager.delete_range({"data_type": "ohlcv", "exchange": "binance", "coin": "ADA"}, at(2024, 1, 1), at(2024, 2, 1))
        expected_coins = ["ADA", "BTC", "DOGE"]
        assert fresh(manager).list_coins("binance", "ohlcv") == expected_coins
        assert fresh(manager).list_dates("binance", "ADA", "ohlcv") == [DAYS[2]]
        mt.maintain_table(backend, "ohlcv", retention_hours=0, min_retention_hours=0)
        after = fresh(manager)
        assert after.list_coins("binance", "ohlcv") == expected_coins
        assert after.list_dates("binance", "DOGE", "ohlcv") == [DAYS[1]]
        assert after.list_coins("kraken", "ohlcv") == COINS

    def test_a_foreign_writer_between_two_listings_is_seen(self, backend, layout):
        manager = StorageManagerImpl(backend, default_layout=layout)
        write_day(manager, DAYS[0], COINS)
        assert manager.list_coins("binance", "ohlcv") == COINS
        foreign = normalize(ohlcv(DAYS[1], n=3, coin="XRP"), "ohlcv")
        write_deltalake(manager.table_uri("ohlcv"), foreign, mode="append", storage_options=backend.get_storage_options())
        assert manager.list_coins("binance", "ohlcv") == [*COINS, "XRP"]
        assert manager.list_dates("binance", "XRP", "ohlcv") == [DAYS[1]]
        # A foreign delete of every BTC row, seen by the same manager and a new one.
        from deltalake import DeltaTable

        DeltaTable(manager.table_uri("ohlcv"), storage_options=backend.get_storage_options()).delete("coin = 'BTC'")
        assert manager.list_coins("binance", "ohlcv") == ["ADA", "ETH", "SOL", "XRP"]
        assert fresh(manager).list_coins("binance", "ohlcv") == ["ADA", "ETH", "SOL", "XRP"]


class TestTheCoinRegistry:
    """Exchange layout only: the instrument layout lists from partition values."""

    def test_a_new_process_lists_without_reading_data_files(self, backend, data_reads):
        manager = StorageManagerImpl(backend, default_layout="exchange")
        for day in DAYS:
            write_day(manager, day, COINS)
        assert backend.exists(REGISTRY)
        reader = fresh(manager)
        assert reader.list_coins("binance", "ohlcv") == COINS
        assert reader.list_dates("binance", "ETH", "ohlcv") == DAYS
        assert data_reads == []

    def test_files_it_does_not_know_are_read_once_then_registered(self, backend, data_reads):
        manager = StorageManagerImpl(backend, default_layout="exchange")
        write_day(manager, DAYS[0], COINS)
        foreign = normalize(exchange_day(DAYS[1], ["BTC", "XRP"]), "ohlcv")
        write_deltalake(manager.table_uri("ohlcv"), foreign, mode="append", storage_options=backend.get_storage_options())
        assert fresh(manager).list_coins("binance", "ohlcv") == [*COINS, "XRP"]
        assert data_reads == [1]  # the foreign file only
        assert fresh(manager).list_coins("binance", "ohlcv") == [*COINS, "XRP"]
        assert data_reads == [1]  # now registered

    def test_a_lost_stale_or_garbage_registry_never_gives_a_wrong_listing(self, backend):
        manager = StorageManagerImpl(backend, default_layout="exchange")
        write_day(manager, DAYS[0], COINS)
        stale = backend.load_bytes(REGISTRY)  # as if a crash came before the next registration
        write_day(manager, DAYS[1], ["BTC", "XRP"])
        write_day(manager, DAYS[0], ["BTC"])  # replaces the first day: ADA, ETH, SOL leave
        backend.save_bytes(REGISTRY, stale)
        assert fresh(manager).list_coins("binance", "ohlcv") == ["BTC", "XRP"]
        backend.delete(REGISTRY)
        assert fresh(manager).list_coins("binance", "ohlcv") == ["BTC", "XRP"]
        backend.save_bytes(REGISTRY, b"not parquet")
        assert fresh(manager).list_dates("binance", "XRP", "ohlcv") == [DAYS[1]]
        assert fresh(manager).list_coins("binance", "ohlcv") == ["BTC", "XRP"]

    def test_the_registry_is_invisible_to_delta_readers_and_vacuum(self, backend):
        manager = StorageManagerImpl(backend, default_layout="exchange")
        write_day(manager, DAYS[0], COINS)
        write_day(manager, DAYS[0], COINS[:2])
        mt.vacuum_table(backend, "ohlcv", retention_hours=0, min_retention_hours=0)
        assert backend.exists(REGISTRY)
        assert fresh(manager).list_coins("binance", "ohlcv") == COINS[:2]
        assert len(manager.get_many("ohlcv", "binance", at(2024, 1, 30), at(2024, 1, 31))) == 2 * 4


@pytest.mark.parametrize("layout", LAYOUTS)
class TestTheStampedInstrumentList:
    """``list_coins`` in a new process from one LIST of the log and the stamped list, without
    opening the table, and only when the stamp is the latest commit."""

    @pytest.fixture
    def opens(self, monkeypatch) -> list[str]:
        from cb_storage_dagster.storage.delta.tables import DeltaTables

        calls: list[str] = []
        original = DeltaTables.open

        def counting(self, table, *, refresh=True):
            calls.append(table)
            return original(self, table, refresh=refresh)

        monkeypatch.setattr(DeltaTables, "open", counting)
        return calls

    def test_writers_keep_it_current_so_a_new_process_opens_nothing(self, backend, layout, opens):
        manager = StorageManagerImpl(backend, default_layout=layout)
        for day in DAYS:
            write_day(manager, day, COINS)
        write_day(manager, DAYS[0], ["BTC", "XRP"], exchange="kraken")
        write_day(manager, DAYS[1], COINS)  # a replace of the same instruments
        opens.clear()
        reader = fresh(manager)
        assert reader.list_coins("binance", "ohlcv") == COINS
        assert reader.list_exchanges("ohlcv") == ["binance", "kraken"]
        assert opens == []

    def test_a_replace_that_drops_an_instrument_and_a_foreign_commit(self, backend, layout, opens):
        manager = StorageManagerImpl(backend, default_layout=layout)
        write_day(manager, DAYS[0], COINS)
        write_day(manager, DAYS[0], ["BTC"])  # ADA, ETH and SOL leave with their only day
        opens.clear()
        assert fresh(manager).list_coins("binance", "ohlcv") == ["BTC"]
        assert opens == []  # the writer could not follow incrementally, so it stamped the full list
        foreign = normalize(ohlcv(DAYS[1], n=3, coin="XRP"), "ohlcv")
        write_deltalake(manager.table_uri("ohlcv"), foreign, mode="append", storage_options=backend.get_storage_options())
        assert fresh(manager).list_coins("binance", "ohlcv") == ["BTC", "XRP"]
        assert opens == ["ohlcv"]  # a stamp older than the latest commit is not used
        opens.clear()
        assert fresh(manager).list_coins("binance", "ohlcv") == ["BTC", "XRP"]
        assert opens == []  # that listing stamped the new version

    @pytest.fixture
    def advances(self, monkeypatch) -> list[bool]:
        """Whether each writer's commit advanced the stored list (else: computed in full)."""
        from cb_storage_dagster.storage.delta.instrument_snapshot import InstrumentSnapshots

        results: list[bool] = []
        original = InstrumentSnapshots.advance

        def recording(self, *args, **kwargs):
            results.append(original(self, *args, **kwargs))
            return results[-1]

        monkeypatch.setattr(InstrumentSnapshots, "advance", recording)
        return results

    def test_a_writer_advances_the_list_over_another_writers_commits(self, backend, layout, opens, advances):
        """Instrument layout: another writer's appends name their instruments in their files'
        partition values, so the next write replays them. Exchange layout: their coins are
        unknown without reading their files, so it does not; the listing is right either way."""
        manager = StorageManagerImpl(backend, default_layout=layout)
        write_day(manager, DAYS[0], COINS)
        write_day(manager, DAYS[1], COINS)
        foreign = normalize(ohlcv(DAYS[1], n=3, coin="XRP"), "ohlcv")
        for _ in range(2):
            write_deltalake(manager.table_uri("ohlcv"), foreign, mode="append",
                            storage_options=backend.get_storage_options())
        advances.clear()
        write_day(manager, DAYS[2], COINS)
        assert advances == [layout == "instrument"]
        opens.clear()
        assert fresh(manager).list_coins("binance", "ohlcv") == [*COINS, "XRP"]
        if layout == "instrument":
            assert opens == []

    def test_another_writers_delete_in_between_is_not_replayed(self, backend, layout, advances):
        from deltalake import DeltaTable

        manager = StorageManagerImpl(backend, default_layout=layout)
        write_day(manager, DAYS[0], COINS)
        DeltaTable(manager.table_uri("ohlcv"), storage_options=backend.get_storage_options()).delete("coin = 'ADA'")
        advances.clear()
        write_day(manager, DAYS[1], ["BTC"])
        assert advances == [False]  # a commit that removed ADA's files and added none of its own
        assert fresh(manager).list_coins("binance", "ohlcv") == ["BTC", "ETH", "SOL"]

    def test_a_writer_advances_over_another_writers_commit_that_adds_no_file(self, backend, layout, advances):
        from deltalake import DeltaTable

        manager = StorageManagerImpl(backend, default_layout=layout)
        write_day(manager, DAYS[0], COINS)
        table = DeltaTable(manager.table_uri("ohlcv"), storage_options=backend.get_storage_options())
        table.alter.set_table_properties({"delta.logRetentionDuration": "interval 30 days"})
        advances.clear()
        write_day(manager, DAYS[1], ["BTC", "DOGE"])
        assert advances == [True]
        assert fresh(manager).list_coins("binance", "ohlcv") == ["ADA", "BTC", "DOGE", "ETH", "SOL"]

    def test_a_writer_advances_from_what_it_stored_without_reading_it_back(self, backend, layout, advances, monkeypatch):
        from cb_storage_dagster.storage.delta.instrument_snapshot import SNAPSHOT_OBJECT

        manager = StorageManagerImpl(backend, default_layout=layout)
        write_day(manager, DAYS[0], COINS)
        loads: list[str] = []
        original = type(backend).load_bytes

        def counting(self, identifier):
            loads.append(identifier)
            return original(self, identifier)

        monkeypatch.setattr(type(backend), "load_bytes", counting)
        write_day(manager, DAYS[1], ["BTC", "DOGE"])
        assert advances[-1] is True and f"ohlcv/{SNAPSHOT_OBJECT}" not in loads
        monkeypatch.undo()
        assert fresh(manager).list_coins("binance", "ohlcv") == ["ADA", "BTC", "DOGE", "ETH", "SOL"]

    def test_a_stamp_of_another_table_at_the_same_version_is_not_trusted(self, backend, layout):
        from cb_storage_dagster.storage.delta.instrument_snapshot import SNAPSHOT_OBJECT

        manager = StorageManagerImpl(backend, default_layout=layout)
        write_day(manager, DAYS[0], COINS)
        manager.list_coins("binance", "ohlcv")
        old = backend.load_bytes(f"ohlcv/{SNAPSHOT_OBJECT}")
        for item in backend.list_items("ohlcv"):
            backend.delete(item)
        again = StorageManagerImpl(backend, default_layout=layout)
        write_day(again, DAYS[0], ["DOGE"])  # the same versions, other commits
        backend.save_bytes(f"ohlcv/{SNAPSHOT_OBJECT}", old)
        assert fresh(manager).list_coins("binance", "ohlcv") == ["DOGE"]
        backend.save_bytes(f"ohlcv/{SNAPSHOT_OBJECT}", b"garbage")
        assert fresh(manager).list_coins("binance", "ohlcv") == ["DOGE"]
