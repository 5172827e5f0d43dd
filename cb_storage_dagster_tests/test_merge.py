"""Merge writes: upserts by natural key, on local disk and on Azurite.

``save_entry(..., mode="merge")`` and ``write_partitions(..., mode="merge")`` upsert rows
by the data type's natural key in one Delta commit, never delete, change nothing when the
rows are already stored, and are refused for Parquet/JSON. Many processes merging into one
table (overlapping and disjoint batches) leave every key exactly once.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cb_storage_dagster.storage import (
    InvalidDataError,
    PartitionMismatchError,
    PartitionSlot,
    StorageManagerImpl,
    UnsupportedWriteModeError,
    WriteScope,
)
from cb_storage_dagster.storage.delta.table_format import DeltaFormat
from cb_storage_dagster_tests.support.data import ohlcv, order_book, trades
from cb_storage_dagster_tests.support.processes import run_together, storage_env, writer
from cb_storage_dagster_tests.support.snapshots import snapshot as snapshot_files

KEY = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}
DAY = dt.date(2024, 1, 2)


def stored(manager: StorageManagerImpl, data_type: str = "ohlcv") -> pd.DataFrame:
    return manager.read_partitions(data_type, None).to_pandas()


def test_merge_inserts_new_keys_updates_changed_ones_and_deletes_nothing(manager):
    manager.save_entry(KEY, ohlcv(DAY, 10))  # minutes 0-9 at price 100..109
    later = ohlcv(DAY, 10, offset_minutes=5, price=500.0)  # minutes 5-14, new prices

    result = manager.save_entry(KEY, later, mode="merge")

    assert (result.mode, result.rows_inserted, result.rows_updated) == ("merge", 5, 5)
    assert result.version == 2 and result.row_count == 10
    assert result.rows_per_partition == {"binance/BTC/2024-01-02": 10}  # rows of the batch
    frame = stored(manager)
    assert len(frame) == 15
    assert frame["open"].tolist() == [100.0, 101.0, 102.0, 103.0, 104.0] + [500.0 + i for i in range(10)]
    assert frame["timestamp"].is_unique


def test_the_same_batch_merged_twice_changes_nothing_and_creates_no_version(manager):
    batch = ohlcv(DAY, 15, offset_minutes=30)
    first = manager.save_entry(KEY, batch, mode="merge")
    before = stored(manager)

    again = manager.save_entry(KEY, batch, mode="merge")

    assert (again.rows_inserted, again.rows_updated) == (0, 0)
    assert again.version == first.version == manager.table_version("ohlcv")
    pd.testing.assert_frame_equal(stored(manager), before)


@pytest.mark.parametrize(("data_type", "make"), [("trades", trades), ("order_book", order_book)])
def test_trades_and_order_books_merge_on_their_full_natural_key(manager, data_type, make):
    key = {**KEY, "data_type": data_type}
    batch = make(DAY)
    manager.save_entry(key, batch, mode="merge")
    assert manager.save_entry(key, batch, mode="merge").rows_inserted == 0

    changed = batch.copy()
    changed.loc[0, "amount"] = 99.0
    result = manager.save_entry(key, changed, mode="merge")

    assert (result.rows_inserted, result.rows_updated) == (0, 1)
    frame = stored(manager, data_type)
    assert len(frame) == len(batch)
    assert sorted(frame["amount"])[-1] == 99.0


def test_trades_with_the_same_timestamp_but_other_ids_are_different_rows(manager):
    key = {**KEY, "data_type": "trades"}
    batch = trades(DAY, 2)
    manager.save_entry(key, batch, mode="merge")
    same_time = batch.assign(trade_id=["x-1", "x-2"])

    assert manager.save_entry(key, same_time, mode="merge").rows_inserted == 2
    assert len(stored(manager, "trades")) == 4


def test_intraday_merges_then_the_nightly_replace_hold_exactly_the_days_rows(manager):
    day = ohlcv(DAY, 1440)
    for quarter in range(0, 1440, 15):  # 96 merges of 15 minutes, as the intraday schedule does
        manager.save_entry({**KEY, "date": DAY}, day.iloc[quarter: quarter + 15], mode="merge")
    assert len(stored(manager)) == 1440

    revised = day.assign(volume=3.0).iloc[:1400]  # the finished day as the source reports it
    manager.save_entry({**KEY, "date": DAY}, revised)  # the nightly replace

    frame = stored(manager)
    assert len(frame) == 1400 and set(frame["volume"]) == {3.0}


def test_merge_rewrites_only_the_partition_it_touches(manager):
    manager.save_entry(KEY, pd.concat([ohlcv(DAY, 5), ohlcv("2024-01-03", 5), ohlcv("2024-02-01", 5)]))
    manager.save_entry({**KEY, "coin": "ETH"}, ohlcv(DAY, 5, coin="ETH"))
    files_before = set(manager.delta.open("ohlcv").file_uris())

    manager.save_entry(KEY, ohlcv(DAY, 5, offset_minutes=3, price=7.0), mode="merge")

    history = manager.delta.open("ohlcv").history(1)[0]
    assert history["operation"] == "MERGE"
    metrics = history["operationMetrics"]
    assert metrics["num_target_files_removed"] == 1 and metrics["num_target_files_added"] == 1
    # The other month and the other coin are pruned by the partition predicate.
    assert len(files_before - set(manager.delta.open("ohlcv").file_uris())) == 1


def test_write_partitions_merges_a_range_in_one_commit(manager):
    scope = WriteScope.of_slots([PartitionSlot("binance", "BTC", DAY), PartitionSlot("binance", "ETH", DAY)])
    batch = pd.concat([ohlcv(DAY, 3), ohlcv(DAY, 3, coin="ETH")], ignore_index=True)

    first = manager.write_partitions("ohlcv", batch, scope, mode="merge")
    second = manager.write_partitions("ohlcv", batch.assign(close=9.0), scope, mode="merge")

    assert (first.version, second.version) == (1, 2)
    assert second.rows_updated == 6
    assert set(stored(manager)["close"]) == {9.0}


def test_an_empty_merge_changes_nothing(manager):
    manager.save_entry(KEY, ohlcv(DAY, 3))
    result = manager.save_entry({**KEY, "date": DAY}, ohlcv(DAY, 0), mode="merge")
    assert (result.version, result.row_count, result.rows_inserted) == (1, 0, 0)
    assert len(stored(manager)) == 3  # unlike replace, an empty merge clears nothing


@pytest.mark.parametrize(
    ("batch", "error", "words"),
    [
        (pd.concat([ohlcv(DAY, 3), ohlcv(DAY, 1)]), InvalidDataError, "duplicate rows"),
        (ohlcv("2024-01-03", 2), PartitionMismatchError, "do not belong"),
    ],
    ids=["duplicate-candles", "another-day"],
)
def test_bad_merge_batches_are_refused_and_nothing_changes(backend, batch, error, words):
    manager = StorageManagerImpl(backend)
    manager.save_entry(KEY, ohlcv(DAY, 3))
    files = snapshot_files(backend)

    with pytest.raises(error, match=words):
        manager.save_entry({**KEY, "date": DAY}, batch, mode="merge")

    assert snapshot_files(backend) == files


def test_repeated_trade_ids_and_null_keys_are_refused(manager):
    key = {**KEY, "data_type": "trades"}
    batch = trades(DAY, 3)
    with pytest.raises(InvalidDataError, match="repeat a .* key already in the batch"):
        manager.save_entry(key, pd.concat([batch, batch.iloc[:1]]), mode="merge")
    with pytest.raises(InvalidDataError, match="'trade_id' has 1 null"):
        manager.save_entry(key, batch.assign(trade_id=["a", None, "c"]), mode="merge")
    assert manager.table_version("trades") is None  # nothing was ever written


@pytest.mark.parametrize("fmt", ["parquet", "json"])
def test_parquet_and_json_refuse_merge_clearly(backend, fmt):
    manager = StorageManagerImpl(backend, default_format=fmt)
    manager.save_entry(KEY, ohlcv(DAY, 3))
    files = snapshot_files(backend)

    with pytest.raises(UnsupportedWriteModeError, match=f"stored as {fmt}, which cannot merge"):
        manager.save_entry(KEY, ohlcv(DAY, 3, price=5.0), mode="merge")

    assert snapshot_files(backend) == files


def test_an_unknown_write_mode_is_refused(manager):
    with pytest.raises(UnsupportedWriteModeError, match="'replace' .* or 'merge'"):
        manager.save_entry(KEY, ohlcv(DAY, 3), mode="upsert")  # type: ignore[arg-type]
    assert manager.table_version("ohlcv") is None


# -- concurrent writers ---------------------------------------------------------------------
def batch_of(row: pd.Series, batches: dict[int, dict]) -> bool:
    """Whether the stored row is exactly the row that its signature's batch wrote."""
    batch = batches[int(row["volume"])]
    minute = int((row["timestamp"] - pd.Timestamp(DAY, tz="UTC")) / pd.Timedelta(minutes=1))
    offset = minute - batch["first_minute"]
    return row["coin"] == batch["coin"] and 0 <= offset < 15 and row["open"] == 100.0 + offset


@pytest.mark.slow
def test_four_processes_merging_overlapping_and_disjoint_batches(backend, tmp_path):
    """4 processes x 8 merges: half into one shared, overlapping day, half into their own."""
    processes, merges = 4, 8
    env = storage_env(backend)
    go = tmp_path / "go"
    workers = [
        writer(["merge", "--worker", str(w), "--count", str(merges), "--go-file", str(go)], env)
        for w in range(processes)
    ]
    run_together(workers, go)
    for worker in workers:
        assert worker.process.returncode == 0, (worker.named("error"), worker.stderr[-2000:])
    done = [e for w in workers for e in w.named("done")]
    print("merging writers:", json.dumps({
        "merges": len(done), "max_attempts": max(e["attempts"] for e in done),
        "merges_redone": sum(e["attempts"] > 1 for e in done),
    }))
    assert sorted(e["version"] for e in done) == list(range(1, processes * merges + 1))

    manager = StorageManagerImpl(backend)
    frame = stored(manager)
    batches = {e["signature"]: e for e in done}
    expected_keys = {
        (e["coin"], e["first_minute"] + m) for e in done for m in range(15)
    }
    minutes = (frame["timestamp"] - pd.Timestamp(DAY, tz="UTC")) // pd.Timedelta(minutes=1)
    assert set(zip(frame["coin"], minutes)) == expected_keys
    assert len(frame) == len(expected_keys)  # every key exactly once
    assert frame.apply(batch_of, axis=1, batches=batches).all()  # whole rows of one batch

    # Every committed version, not only the last, holds each key at most once.
    delta = DeltaFormat(backend)
    for version in range(1, processes * merges + 1):
        snapshot = delta.open_version("ohlcv", version, None).to_pyarrow_dataset().to_table(use_threads=False)
        keys = snapshot.group_by(["coin", "timestamp"]).aggregate([])
        assert keys.num_rows == snapshot.num_rows, f"version {version} repeats a key"
    last_btc_merge = max((e for e in done if e["coin"] == "BTC"), key=lambda e: e["version"])
    btc = frame[frame["coin"] == "BTC"]
    last_minutes = set(range(last_btc_merge["first_minute"], last_btc_merge["first_minute"] + 15))
    winners = btc[minutes[btc.index].isin(last_minutes)]
    assert set(winners["volume"]) == {float(last_btc_merge["signature"])}  # the last merge wins
    assert pc.sum(pa.array(frame["volume"] >= 0)).as_py() == len(frame)
