"""A read's pandas frame (``storage/reading.py``: :func:`as_frame`) is exactly what pyarrow's
own conversion gives for the same rows: same values, same dtypes, whatever the string
columns hold (nulls, empty strings, non-ASCII text), however their arrays are sliced or
chunked; string columns are handed to pandas with 64-bit offsets, as pandas keeps them."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl
from cb_storage_dagster.storage.reading import as_frame

STRINGS = {
    "plain": pa.array(["binance", "binance", "kraken"]),
    "with nulls": pa.array(["a", None, "bc"]),
    "sliced": pa.array(["x", "é", "yz", "w"]).slice(1, 2),
    "sliced with nulls": pa.array(["a", None, "bc"]).slice(1),
    "empty strings": pa.array(["", ""]),
    "only nulls": pa.array([None, None], pa.string()),
    "no rows": pa.array([], pa.string()),
    "chunked": pa.chunked_array([["a"], ["b", "ç"]]),
}


@pytest.mark.parametrize("strings", STRINGS.values(), ids=STRINGS.keys())
def test_a_frame_holds_what_pyarrows_conversion_gives(strings: pa.Array | pa.ChunkedArray) -> None:
    rows = pa.table({"coin": strings, "close": pa.array([float(i) for i in range(len(strings))])})
    frame = as_frame(rows)
    expected = rows.combine_chunks().to_pandas(split_blocks=True)
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    assert frame.dtypes.equals(expected.dtypes)


def test_a_stored_instruments_frame_is_the_conversion_of_its_arrow_rows(tmp_path) -> None:
    manager = StorageManagerImpl(LocalFileBackend(str(tmp_path)))
    day = dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc)
    manager.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": "ETH", "date": day.date()}, pd.DataFrame({
        "timestamp": [day + dt.timedelta(minutes=m) for m in range(3)],
        "open": [1.0, 2.0, 3.0], "high": [1.0, 2.0, 3.0], "low": [1.0, 2.0, 3.0],
        "close": [1.0, 2.0, 3.0], "volume": [1.0, 2.0, 3.0],
    }))
    key = {"data_type": "ohlcv", "exchange": "binance", "coin": "ETH"}
    frame = manager.get_range(key, day, day + dt.timedelta(days=1))
    arrow = manager.get_many("ohlcv", [("binance", "ETH")], day, day + dt.timedelta(days=1), as_arrow=True)
    pd.testing.assert_frame_equal(frame, arrow.to_pandas(), check_exact=True)
    assert frame["coin"].tolist() == ["ETH"] * 3


def test_constant_partition_columns_of_equal_width_share_their_offsets_and_keep_their_values() -> None:
    from cb_storage_dagster.storage.delta.file_rows import _KEPT_OFFSETS_MAX_ROWS, _constant

    btc, eth = _constant("BTC", pa.string(), 43_200), _constant("ETH", pa.string(), 43_200)
    assert btc.buffers()[1].address == eth.buffers()[1].address  # one offsets buffer, kept
    assert set(btc.to_pylist()) == {"BTC"} and set(eth.to_pylist()) == {"ETH"}
    btc.validate(full=True)
    large = _constant("binance", pa.string(), _KEPT_OFFSETS_MAX_ROWS + 1)  # not kept: built for it
    large.validate(full=True)
    assert len(large) == _KEPT_OFFSETS_MAX_ROWS + 1 and large[-1].as_py() == "binance"


def test_a_frame_keeps_what_pandas_metadata_says_of_its_index_and_columns() -> None:
    written = pd.DataFrame({"coin": ["BTC", "ETH"], "close": [1.0, 2.0]}, index=pd.Index([10, 20], name="minute"))
    rows = pa.Table.from_pandas(written)  # (a foreign writer's file may carry pandas' metadata)
    frame = as_frame(rows)
    pd.testing.assert_frame_equal(frame, rows.to_pandas(), check_exact=True)
    assert frame.index.name == "minute" and frame.index.tolist() == [10, 20]
