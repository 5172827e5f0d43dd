"""The read caches (snapshot, plan, Parquet footers per file, the reader's next-commit check)
and the concurrent object-store fetch return exactly the stored rows.

On local disk and on Azurite (where data files are fetched concurrently), in both layouts:
a raw delta-rs write between two reads is seen by the second read, and reads before and
after maintenance equal the rows that were written.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable, write_deltalake

from cb_storage_dagster.storage import StorageManagerImpl, WriteScope
from cb_storage_dagster.storage import maintenance as mt
from cb_storage_dagster.storage.delta.locations import local_root
from cb_storage_dagster.storage.layout import LAYOUTS
from cb_storage_dagster_tests.support.data import at, ohlcv

pytestmark = pytest.mark.parametrize("layout", LAYOUTS)

COINS = ["BTC", "ETH", "SOL"]
DAYS = [dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4), dt.date(2024, 1, 5)]


def key(coin: str) -> dict:
    return {"data_type": "ohlcv", "exchange": "binance", "coin": coin}


def fill(manager: StorageManagerImpl) -> dict[tuple[str, dt.date], pd.DataFrame]:
    """One commit per instrument-day (as daily runs leave a table); the frames written."""
    written = {}
    for day_number, day in enumerate(DAYS):
        for coin_number, coin in enumerate(COINS):
            frame = ohlcv(day, n=30, coin=coin, price=100.0 * (coin_number + 1) + day_number)
            manager.save_entry({**key(coin), "date": day}, frame)
            written[(coin, day)] = frame
    return written


def expected(written: dict, coins: list[str], days: list[dt.date]) -> pd.DataFrame:
    parts = [written[(coin, day)] for coin in coins for day in days]
    return pd.concat(parts, ignore_index=True)


def assert_same_rows(frame: pd.DataFrame, want: pd.DataFrame) -> None:
    columns = ["exchange", "coin", "timestamp", "open", "high", "low", "close", "volume"]
    got = frame[columns].reset_index(drop=True)
    want = want[columns].reset_index(drop=True)
    assert len(got) == len(want)
    assert got["coin"].astype(str).tolist() == want["coin"].tolist()
    assert (got["timestamp"].astype("int64") == pd.to_datetime(want["timestamp"]).astype("int64")).all()
    for column in ("open", "high", "low", "close", "volume"):
        assert got[column].tolist() == want[column].tolist(), column


def test_reads_equal_the_written_rows_before_and_after_maintenance(manager, backend, layout):
    written = fill(manager)
    for _ in range(2):  # the second read comes from the caches
        assert_same_rows(manager.get_range(key("ETH"), at(2024, 1, 2), at(2024, 1, 6)),
                         expected(written, ["ETH"], DAYS))
        assert_same_rows(manager.get_range(key("SOL"), at(2024, 1, 4), at(2024, 1, 5)),
                         expected(written, ["SOL"], [DAYS[2]]))
        every = manager.read_partitions("ohlcv", WriteScope.of_exchange_days([("binance", DAYS[1])]))
        assert_same_rows(every.to_pandas(), expected(written, COINS, [DAYS[1]]))
    planner = manager.delta._scans
    # What a read learnt is kept: the footers of the files (local disk), or the small files
    # themselves (object store: fetched whole, one request each).
    remote = local_root(manager.table_uri("ohlcv")) is None
    assert (planner._fragments.kept_bytes if remote else planner._fragments.cached_files) > 0

    mt.maintain_table(backend, "ohlcv", retention_hours=0, min_retention_hours=0)
    for _ in range(2):
        assert_same_rows(manager.get_range(key("ETH"), at(2024, 1, 2), at(2024, 1, 6)),
                         expected(written, ["ETH"], DAYS))
        every = manager.read_partitions("ohlcv", WriteScope.of_exchange_days([("binance", DAYS[3])]))
        assert_same_rows(every.to_pandas(), expected(written, COINS, [DAYS[3]]))


def test_a_foreign_write_between_two_reads_is_seen_by_the_next_read(manager, backend, layout):
    written = fill(manager)
    first = manager.get_range(key("BTC"), at(2024, 1, 2), at(2024, 1, 6))
    assert_same_rows(manager.get_range(key("BTC"), at(2024, 1, 2), at(2024, 1, 6)), first)  # warm

    uri, options = manager.table_uri("ohlcv"), backend.get_storage_options()
    day = DAYS[1]
    stored = DeltaTable(uri, storage_options=options).to_pyarrow_dataset().to_table(
        filter=(ds.field("coin") == "BTC") & (ds.field("date") == pa.scalar(day, pa.date32())))
    assert stored.num_rows == 30
    changed = stored.set_column(stored.schema.get_field_index("close"), "close",
                                pc.add(stored.column("close"), 1000.0))
    write_deltalake(uri, changed, mode="overwrite", storage_options=options,
                    predicate=f"exchange = 'binance' AND coin = 'BTC' AND date = '{day.isoformat()}'")

    after = manager.get_range(key("BTC"), at(2024, 1, 2), at(2024, 1, 6))
    want = expected(written, ["BTC"], DAYS)
    want.loc[want["timestamp"].dt.date == day, "close"] += 1000.0
    assert_same_rows(after, want)

    # A foreign append of a new day is seen too, by a reader that read just before it.
    new_day = dt.date(2024, 1, 6)
    extra = changed.set_column(changed.schema.get_field_index("timestamp"), "timestamp",
                               pc.add(changed.column("timestamp"), pa.scalar(dt.timedelta(days=3))))
    extra = extra.set_column(extra.schema.get_field_index("date"), "date",
                             pa.array([new_day] * extra.num_rows, pa.date32()))
    write_deltalake(uri, extra, mode="append", storage_options=options)
    assert len(manager.get_range(key("BTC"), at(2024, 1, 2), at(2024, 1, 7))) == 5 * 30
