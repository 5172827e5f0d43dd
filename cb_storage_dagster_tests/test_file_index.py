"""Specification of the stamped file index (storage/delta/file_index.py): a new process reads
the latest version of a table from ``_cb_registry/files.parquet`` and the commits after it,
without opening the table through delta-rs, and sees exactly what delta-rs would see.

The oracle is the same read by a manager whose file index is switched off (the table opened
through delta-rs). On both layouts, local disk and Azurite: after replaces, merges, deletes,
maintenance and a foreign raw delta-rs writer; and the index is never trusted for a version
it does not describe (another table's log under the same name, a schema change, a garbage
object, commits cleaned up past its stamp).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from cb_storage_dagster.storage import StorageManagerImpl
from cb_storage_dagster.storage import maintenance as mt
from cb_storage_dagster.storage.delta.file_index import FILE_INDEX_OBJECT
from cb_storage_dagster.storage.layout import LAYOUTS
from cb_storage_dagster_tests.support.data import at, ohlcv

pytestmark = pytest.mark.parametrize("layout", LAYOUTS)

COINS = ["BTC", "ETH", "SOL"]
DAYS = [dt.date(2024, 1, 30), dt.date(2024, 1, 31), dt.date(2024, 2, 1)]
START, END = at(2024, 1, 30), at(2024, 2, 2)
INDEX = f"ohlcv/{FILE_INDEX_OBJECT}"


def key(coin: str) -> dict:
    return {"data_type": "ohlcv", "exchange": "binance", "coin": coin}


def fill(manager: StorageManagerImpl) -> None:
    for day in DAYS:
        for number, coin in enumerate(COINS):
            manager.save_entry({**key(coin), "date": day}, ohlcv(day, n=20, coin=coin, price=100.0 * (number + 1)))


def fresh(manager: StorageManagerImpl, *, index: bool = True) -> StorageManagerImpl:
    """A manager as a new process has it; ``index=False``: the file index switched off."""
    other = StorageManagerImpl(manager.backend, default_layout=manager.delta.tables.default_layout)
    if not index:
        other.delta.tables.file_indexes.current = lambda table, **_: None
    return other


def read_all(manager: StorageManagerImpl) -> pd.DataFrame:
    parts = [manager.get_range(key(coin), START, END) for coin in COINS]
    return pd.concat(parts, ignore_index=True)


def assert_reads_like_delta_rs(manager: StorageManagerImpl) -> StorageManagerImpl:
    """A new manager reads from the index (it never opens the table through delta-rs) and
    returns exactly the rows of a manager that opens it through delta-rs."""
    indexed = fresh(manager)
    got = read_all(indexed)
    assert not indexed.delta.tables.readers, "the read opened the table through delta-rs"
    want = read_all(fresh(manager, index=False))
    pd.testing.assert_frame_equal(got, want)
    return indexed


def stamp(manager: StorageManagerImpl) -> int:
    raw = manager.backend.load_bytes(INDEX)
    import io

    return int(pq.read_table(io.BytesIO(raw)).schema.metadata[b"cb.version"])


def test_every_created_table_has_an_index_and_a_new_process_reads_from_it(manager):
    fill(manager)
    assert stamp(manager) == 0  # stored at creation; the 9 commits since are replayed
    indexed = assert_reads_like_delta_rs(manager)
    assert len(read_all(indexed)) == len(COINS) * len(DAYS) * 20


def test_the_index_is_stored_again_every_checkpoint_interval(manager):
    manager.delta.tables.checkpoint_interval = 4
    fill(manager)  # versions 0..9
    assert stamp(manager) == 8
    assert_reads_like_delta_rs(manager)


def test_a_commit_of_many_instrument_days_stores_the_index_whatever_its_version(manager, monkeypatch):
    """An exchange-day of every instrument adds a file per instrument in the instrument layout:
    the writer stores the index after it, so that a new process does not parse those adds."""
    from cb_storage_dagster.domain.chunks import MarketDataChunks
    from cb_storage_dagster.domain.schemas import normalize
    from cb_storage_dagster.domain.scope import WriteScope
    from cb_storage_dagster.storage.delta import checkpoints

    monkeypatch.setattr(checkpoints, "INDEX_AFTER_INSTRUMENT_DAYS", len(COINS))
    manager.save_entry({**key("BTC"), "date": DAYS[0]}, ohlcv(DAYS[0], n=20, coin="BTC"))  # version 1
    assert stamp(manager) == 0  # one instrument-day: the index waits for the interval
    day = pa.concat_tables([normalize(ohlcv(DAYS[1], n=20, coin=coin), "ohlcv") for coin in COINS])
    manager.write_partitions("ohlcv", day, WriteScope.of_exchange_days([("binance", DAYS[1])]))
    assert stamp(manager) == 2
    streamed = MarketDataChunks(lambda: iter([normalize(ohlcv(DAYS[2], n=20, coin=coin), "ohlcv") for coin in COINS]))
    manager.write_partitions("ohlcv", streamed, WriteScope.of_exchange_days([("binance", DAYS[2])]))
    assert stamp(manager) == 3
    assert_reads_like_delta_rs(manager)


def test_replaces_merges_deletes_and_maintenance_read_like_delta_rs(manager, backend):
    fill(manager)
    manager.save_entry({**key("ETH"), "date": DAYS[1]}, ohlcv(DAYS[1], n=5, coin="ETH", price=7.0))
    assert_reads_like_delta_rs(manager)
    manager.save_entry({**key("SOL"), "date": DAYS[2]}, ohlcv(DAYS[2], n=30, coin="SOL", price=9.0),
                       mode="merge")
    assert_reads_like_delta_rs(manager)
    manager.delete_range(key("BTC"), at(2024, 1, 31), at(2024, 2, 1))
    indexed = assert_reads_like_delta_rs(manager)
    assert len(indexed.get_range(key("BTC"), START, END)) == 40
    mt.maintain_table(backend, "ohlcv", retention_hours=0, min_retention_hours=0)
    assert_reads_like_delta_rs(manager)


def test_a_foreign_write_between_two_reads_is_seen_by_the_next_read(manager, backend):
    fill(manager)
    reader = fresh(manager)
    before = reader.get_range(key("BTC"), START, END)
    uri, options = manager.table_uri("ohlcv"), backend.get_storage_options()
    stored = pa.Table.from_batches(DeltaTable(uri, storage_options=options).to_pyarrow_dataset().to_batches(
        filter=pc.field("coin") == "BTC"))
    changed = stored.set_column(stored.schema.get_field_index("close"), "close",
                                pc.add(stored.column("close"), 1000.0))
    write_deltalake(uri, changed, mode="overwrite", storage_options=options,
                    predicate="exchange = 'binance' AND coin = 'BTC'")
    after = reader.get_range(key("BTC"), START, END)
    assert not reader.delta.tables.readers
    assert after["close"].tolist() == (before["close"] + 1000.0).tolist()
    assert_reads_like_delta_rs(manager)


def test_a_new_processs_first_read_lists_the_log_once(manager, backend, monkeypatch):
    """The catalog's first look at the table (is it Delta?) and the read share one listing
    of the log: on an object store, one round trip fewer for a new process."""
    fill(manager)
    asked: list[str] = []
    for method in ("list_items", "exists"):
        real = getattr(backend, method)
        monkeypatch.setattr(backend, method, lambda identifier, *a, _real=real, _name=method, **k: (
            asked.append(f"{_name} {identifier}"), _real(identifier, *a, **k))[1])
    reader = fresh(manager)
    assert len(reader.get_range(key("BTC"), START, END)) == 60
    assert [call for call in asked if "_delta_log" in call] == ["list_items ohlcv/_delta_log"]
    assert not reader.delta.tables.readers


def test_a_read_of_a_table_that_does_not_exist_yet_gives_no_rows_and_finds_it_later(manager):
    reader = fresh(manager)
    assert reader.get_range(key("BTC"), START, END).empty
    fill(manager)
    assert len(reader.get_range(key("BTC"), START, END)) == 60


def test_a_schema_change_by_a_foreign_writer_is_read_through_delta_rs(manager, backend):
    fill(manager)
    uri, options = manager.table_uri("ohlcv"), backend.get_storage_options()
    extra = pa.Table.from_batches(DeltaTable(uri, storage_options=options).to_pyarrow_dataset().to_batches(
        filter=pc.field("coin") == "ETH"))
    extra = extra.append_column("trades", pa.array([3] * extra.num_rows, pa.int64()))
    write_deltalake(uri, extra, mode="overwrite", storage_options=options, schema_mode="merge",
                    predicate="coin = 'ETH'")
    reader = fresh(manager)
    got = reader.get_range(key("ETH"), START, END)
    assert reader.delta.tables.readers, "a metaData action is not replayed from the index"
    assert got["trades"].tolist() == [3] * len(got)


def test_another_table_under_the_same_name_is_not_read_from_the_old_index(manager, backend):
    fill(manager)
    old = backend.load_bytes(INDEX)
    for item in backend.list_items("ohlcv"):
        backend.delete(item)
    manager = fresh(manager)
    manager.save_entry({**key("XRP"), "date": DAYS[0]}, ohlcv(DAYS[0], n=3, coin="XRP"))
    backend.save_bytes(INDEX, old)  # the old table's index, stamped 0 like the new table's creation
    reader = fresh(manager)
    assert reader.get_range(key("BTC"), START, END).empty
    assert len(reader.get_range(key("XRP"), START, END)) == 3
    assert reader.delta.tables.readers, "the stamp's digest does not match: opened through delta-rs"


def test_a_garbage_index_or_commits_cleaned_up_past_its_stamp_fall_back_to_delta_rs(manager, backend):
    fill(manager)
    backend.save_bytes(INDEX, b"not parquet")
    reader = fresh(manager)
    assert len(read_all(reader)) == len(COINS) * len(DAYS) * 20
    assert reader.delta.tables.readers

    manager.delta.tables.file_indexes.store("ohlcv", DeltaTable(manager.table_uri("ohlcv"), version=2,
                                            storage_options=backend.get_storage_options()))
    assert stamp(manager) == 2
    DeltaTable(manager.table_uri("ohlcv"), storage_options=backend.get_storage_options()).create_checkpoint()
    backend.delete("ohlcv/_delta_log/00000000000000000004.json")  # as a log cleanup would
    reader = fresh(manager)
    assert len(read_all(reader)) == len(COINS) * len(DAYS) * 20
    assert reader.delta.tables.readers
