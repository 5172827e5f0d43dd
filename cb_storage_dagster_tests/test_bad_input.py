"""Bad input gets a specific error before anything is written, and the stored bytes stay
exactly as they were (checked on every backend with a byte-for-byte snapshot)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cb_storage_dagster.storage import (
    CorruptTableError,
    InvalidDataError,
    InvalidKeyError,
    PartitionMismatchError,
    SchemaMismatchError,
    StorageManagerImpl,
    TimeRangeError,
    UnsupportedFormatError,
)
from cb_storage_dagster_tests.support.data import at, ohlcv, trades
from cb_storage_dagster_tests.support.snapshots import snapshot

BTC = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}


@dataclasses.dataclass(frozen=True)
class BadWrite:
    name: str
    error: type[Exception]
    message: str
    attempt: Callable[[StorageManagerImpl], Any]


def with_column(frame: pd.DataFrame, column: str, values: Any) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = values
    return frame


def nan_at_3(frame: pd.DataFrame, column: str, value: float) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[3, column] = value
    return frame


HOSTILE_NAMES = [
    "BTC' OR '1'='1", "BTC;DROP TABLE x", "../etc", "a/b", "a\\b", "BTC ETH", "BTC\n", "BTC\x00",
    '"BTC"', "x" * 5000, "", "..", ".hidden",
]

BAD_WRITES = [
    BadWrite("missing column", SchemaMismatchError, "Missing column 'close'",
             lambda m: m.save_entry(BTC, ohlcv("2024-01-02").drop(columns=["close"]))),
    BadWrite("mistyped column", SchemaMismatchError, "'open'",
             lambda m: m.save_entry(BTC, with_column(ohlcv("2024-01-02"), "open", "abc"))),
    BadWrite("NaN price", InvalidDataError, "'close' has 1 missing (null or NaN)",
             lambda m: m.save_entry(BTC, nan_at_3(ohlcv("2024-01-02"), "close", np.nan))),
    BadWrite("infinite price", InvalidDataError, "'high' has 1 NaN or infinite",
             lambda m: m.save_entry(BTC, nan_at_3(ohlcv("2024-01-02"), "high", np.inf))),
    BadWrite("negative price", InvalidDataError, "'low' has 1 values that are not > 0",
             lambda m: m.save_entry(BTC, nan_at_3(ohlcv("2024-01-02"), "low", -1.0))),
    BadWrite("negative volume", InvalidDataError, "'volume' has 1 values that are not >= 0",
             lambda m: m.save_entry(BTC, nan_at_3(ohlcv("2024-01-02"), "volume", -5.0))),
    BadWrite("negative trade amount", InvalidDataError, "'amount'",
             lambda m: m.save_entry({**BTC, "data_type": "trades"},
                                    with_column(trades("2024-01-02"), "amount", -1.0))),
    BadWrite("unknown trade side", InvalidDataError, "'side' has values ['hold']",
             lambda m: m.save_entry({**BTC, "data_type": "trades"},
                                    with_column(trades("2024-01-02"), "side", "hold"))),
    BadWrite("naive timestamps", SchemaMismatchError, "no time zone",
             lambda m: m.save_entry(BTC, with_column(ohlcv("2024-01-02"), "timestamp",
                                                     ohlcv("2024-01-02")["timestamp"].dt.tz_localize(None)))),
    BadWrite("timestamp strings without a UTC offset", SchemaMismatchError, "with a UTC offset",
             lambda m: m.save_entry(BTC, with_column(ohlcv("2024-01-02"), "timestamp",
                                                     ohlcv("2024-01-02")["timestamp"].dt.strftime("%Y-%m-%dT%H:%M")))),
    BadWrite("non-UTC timestamps falling on another UTC day", PartitionMismatchError, "binance/BTC/2024-01-01",
             lambda m: m.save_entry({**BTC, "date": "2024-01-02"}, with_column(
                 ohlcv("2024-01-02"), "timestamp",
                 ohlcv("2024-01-02")["timestamp"].dt.tz_localize(None).dt.tz_localize("Asia/Tokyo")))),
    BadWrite("integer timestamps", SchemaMismatchError, "unit is ambiguous",
             lambda m: m.save_entry(BTC, with_column(ohlcv("2024-01-02"), "timestamp", np.arange(10)))),
    BadWrite("duplicate candle timestamps", InvalidDataError, "duplicate rows",
             lambda m: m.save_entry(BTC, pd.concat([ohlcv("2024-01-02"), ohlcv("2024-01-02", n=1)]))),
    BadWrite("rows of another day than the key's", PartitionMismatchError, "binance/BTC/2024-01-03",
             lambda m: m.save_entry({**BTC, "date": "2024-01-02"},
                                    pd.concat([ohlcv("2024-01-02"), ohlcv("2024-01-03")]))),
    BadWrite("rows of another coin than the key's", PartitionMismatchError, "binance/ETH",
             lambda m: m.save_entry(BTC, pd.concat([ohlcv("2024-01-02"), ohlcv("2024-01-02", coin="ETH")]))),
    BadWrite("hostile coin inside the data", InvalidKeyError, "Invalid coin",
             lambda m: m.save_entry(BTC, ohlcv("2024-01-02", coin="BTC' OR '1'='1"))),
    BadWrite("unknown data type", InvalidKeyError, "Unknown data type 'candles'",
             lambda m: m.save_entry({**BTC, "data_type": "candles"}, ohlcv("2024-01-02"))),
    BadWrite("unknown format", UnsupportedFormatError, "Unknown format 'csv'",
             lambda m: m.save_entry(BTC, ohlcv("2024-01-02"), "csv")),
    BadWrite("not a data frame", SchemaMismatchError, "Expected a pandas DataFrame",
             lambda m: m.save_entry(BTC, [{"open": 1}])),
    BadWrite("table name escaping the root", InvalidKeyError, "'..'",
             lambda m: m.save_entry(BTC, ohlcv("2024-01-02"), table="../outside")),
    BadWrite("control character in a table name", InvalidKeyError, "forbidden characters",
             lambda m: m.save_entry(BTC, ohlcv("2024-01-02"), table="ohlcv\x07")),
] + [
    BadWrite(f"hostile coin {name[:20]!r}", InvalidKeyError, "coin",
             lambda m, name=name: m.save_entry({**BTC, "coin": name}, ohlcv("2024-01-02", coin=None)))
    for name in HOSTILE_NAMES
] + [
    BadWrite(f"hostile exchange {name[:20]!r}", InvalidKeyError, "exchange",
             lambda m, name=name: m.save_entry({**BTC, "exchange": name}, ohlcv("2024-01-02", exchange=None)))
    for name in HOSTILE_NAMES[:4]
]


@pytest.fixture
def stored(manager: StorageManagerImpl) -> StorageManagerImpl:
    manager.save_entry(BTC, ohlcv("2024-01-02", n=30))
    manager.save_entry(BTC, ohlcv("2024-01-03", n=30))
    return manager


@pytest.mark.parametrize("case", BAD_WRITES, ids=[c.name for c in BAD_WRITES])
def test_a_bad_write_is_refused_and_nothing_changes(stored, case: BadWrite):
    before = snapshot(stored.backend)
    with pytest.raises(case.error) as raised:
        case.attempt(stored)
    assert case.message in str(raised.value)
    assert snapshot(stored.backend) == before
    assert len(stored.get_range(BTC, at(2024, 1, 1), at(2024, 1, 5))) == 60


BAD_READS = [
    ("naive start", TimeRangeError, "no time zone",
     lambda m: m.get_range(BTC, pd.Timestamp("2024-01-02").to_pydatetime(), at(2024, 1, 3))),
    ("end before start", TimeRangeError, "before start_time",
     lambda m: m.get_range(BTC, at(2024, 1, 3), at(2024, 1, 2))),
    ("injected filter column", InvalidKeyError, "Invalid column name",
     lambda m: m.get_range(BTC, at(2024, 1, 2), at(2024, 1, 3), filters=[("open; DROP", "=", 1)])),
    ("unknown filter operator", InvalidKeyError, "Unsupported filter operator 'like'",
     lambda m: m.get_range(BTC, at(2024, 1, 2), at(2024, 1, 3), filters=[("coin", "like", "%")])),
    ("unknown column", InvalidKeyError, "Invalid column name",
     lambda m: m.get_range(BTC, at(2024, 1, 2), at(2024, 1, 3), columns=["open", "x y"])),
    ("hostile coin", InvalidKeyError, "Invalid coin",
     lambda m: m.get_range({**BTC, "coin": "BTC' OR '1'='1"}, at(2024, 1, 2), at(2024, 1, 3))),
    ("list with a hostile exchange", InvalidKeyError, "Invalid exchange",
     lambda m: m.list_coins("../binance", "ohlcv")),
    ("unknown format", UnsupportedFormatError, "Unknown format 'csv'",
     lambda m: m.get_range(BTC, at(2024, 1, 2), at(2024, 1, 3), format_hint="csv")),
    ("unknown data type", InvalidKeyError, "Unknown data type 'candles'",
     lambda m: m.get_range({**BTC, "data_type": "candles"}, at(2024, 1, 2), at(2024, 1, 3))),
    ("non-UTC time zone is fine, a naive end is not", TimeRangeError, "no time zone",
     lambda m: m.get_range(BTC, pd.Timestamp("2024-01-02", tz="Asia/Tokyo"), pd.Timestamp("2024-01-03"))),
]


@pytest.mark.parametrize("name,error,message,attempt", BAD_READS, ids=[c[0] for c in BAD_READS])
def test_a_bad_read_gets_a_specific_error(stored, name, error, message, attempt):
    with pytest.raises(error, match=None) as raised:
        attempt(stored)
    assert message in str(raised.value)


def test_a_hostile_filter_value_is_only_a_value(stored):
    frame = stored.get_range(BTC, at(2024, 1, 2), at(2024, 1, 4), filters=[("coin", "=", "BTC' OR '1'='1")])
    assert frame.empty


def test_a_corrupt_delta_log_is_reported_and_left_alone(manager):
    manager.backend.save_bytes("ohlcv/_delta_log/00000000000000000000.json", b"{not json")
    before = snapshot(manager.backend)
    with pytest.raises(CorruptTableError, match="not a readable Delta table"):
        manager.get_range(BTC, at(2024, 1, 2), at(2024, 1, 3))
    with pytest.raises(CorruptTableError):
        manager.save_entry(BTC, ohlcv("2024-01-02"))
    assert snapshot(manager.backend) == before


def test_a_non_delta_directory_is_refused_and_left_alone(manager):
    manager.backend.save_bytes("ohlcv/part-0.parquet", b"PAR1 someone else's data")
    manager.backend.save_bytes("ohlcv/README.txt", b"not a table")
    before = snapshot(manager.backend)
    with pytest.raises(CorruptTableError, match="not a table of this storage layer"):
        manager.get_range(BTC, at(2024, 1, 2), at(2024, 1, 3))
    with pytest.raises(CorruptTableError, match="Nothing was read or written"):
        manager.save_entry(BTC, ohlcv("2024-01-02"))
    assert snapshot(manager.backend) == before
