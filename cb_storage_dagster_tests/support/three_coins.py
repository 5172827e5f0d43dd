"""A small store for read tests: three coins of one exchange over three days across a month
end, written one exchange-day per commit with 50-row row groups (an instrument-day of 60 rows
straddles groups, the groups of an exchange-day hold several coins), plus a replace of one
instrument-day; and the reads of one instrument the read tests run on it."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from cb_storage_dagster.domain.schemas import normalize
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl
from cb_storage_dagster_tests.support.data import at, ohlcv

COINS = ["BTC", "ETH", "SOL"]
DAYS = [dt.date(2024, 1, 30), dt.date(2024, 1, 31), dt.date(2024, 2, 1)]
ROWS_PER_DAY = 60


def key(coin: str) -> dict[str, str]:
    return {"data_type": "ohlcv", "exchange": "binance", "coin": coin}


def write_three_coins(root, layout: str, monkeypatch: pytest.MonkeyPatch) -> StorageManagerImpl:
    """The store, in ``layout``, under ``root`` (row groups made small through ``monkeypatch``)."""
    from cb_storage_dagster.storage.delta import write
    from cb_storage_dagster.storage.maintenance import compact

    monkeypatch.setattr(write, "EXCHANGE_LAYOUT_ROW_GROUP_ROWS", 50)
    monkeypatch.setattr(compact, "COMPACTED_ROW_GROUP_ROWS", 50)
    manager = StorageManagerImpl(LocalFileBackend(root), default_layout=layout)
    for i, day in enumerate(DAYS):
        frames = [ohlcv(day, n=ROWS_PER_DAY, coin=c, price=100.0 * (j + 1) + i) for j, c in enumerate(COINS)]
        data = pa.concat_tables([normalize(f, "ohlcv") for f in frames])
        manager.write_partitions("ohlcv", data, WriteScope.of_exchange_days([("binance", day)]))
    # a replace of one instrument-day, as a daily run of one coin leaves it
    manager.save_entry({**key("ETH"), "date": DAYS[1]}, ohlcv(DAYS[1], n=ROWS_PER_DAY, coin="ETH", price=7.0))
    return manager


ONE_INSTRUMENT_READS = {
    "three days": lambda m: m.get_range(key("BTC"), at(2024, 1, 30), at(2024, 2, 2)),
    "inside a day": lambda m: m.get_range(key("SOL"), at(2024, 1, 31, 0, 7), at(2024, 1, 31, 0, 53)),
    "across the month": lambda m: m.get_range(key("ETH"), at(2024, 1, 31, 0, 30), at(2024, 2, 1, 0, 10)),
    "unknown coin": lambda m: m.get_range(key("XRP"), at(2024, 1, 30), at(2024, 2, 2)),
    "filtered and projected": lambda m: m.get_range(
        key("BTC"), at(2024, 1, 30), at(2024, 2, 2), filters=[("close", ">", 120.0)], columns=["timestamp", "close"]),
}
"""Reads of one instrument on the store, by name."""
ONE_INSTRUMENT_ROWS = {"three days": 180, "inside a day": 46, "across the month": 40, "unknown coin": 0}
"""Rows each of those reads returns (where the filter does not decide it)."""
ACROSS_THE_MONTH_CLOSES = [7.5 + 30 + i for i in range(30)] + [202.5 + i for i in range(10)]
"""``close`` of the read "across the month": the replaced ETH day, then the next month's first."""
