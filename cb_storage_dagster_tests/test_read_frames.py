"""A read's pandas frame (``storage/frame_conversion.py``: :func:`as_frame`) is exactly what
pyarrow's own conversion gives for the same rows: same values, same dtypes, whatever the
columns hold (nulls, empty strings, non-ASCII text, every Arrow type a table may have),
however their arrays are sliced or chunked; string columns are handed to pandas with 64-bit
offsets, as pandas keeps them. Every column of the frame can be written in place, and what is
written there stays in that frame: the next read gives the stored values."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl
from cb_storage_dagster.storage.frame_conversion import as_frame

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


def test_a_constant_string_column_is_kept_whole_over_read_only_memory() -> None:
    """The same constant again (an instrument's exchange and coin, read after read) is the
    same values over the same read-only buffers: no memory and no copy per read, and nothing
    a frame or table could change in place."""
    from cb_storage_dagster.storage.delta.file_rows import _constant

    first, again = _constant("kraken", pa.string(), 1_440), _constant("kraken", pa.string(), 1_440)
    assert [b.address for b in first.buffers()[1:]] == [b.address for b in again.buffers()[1:]]
    assert not any(b.is_mutable for b in first.buffers()[1:])
    assert first.to_pylist() == ["kraken"] * 1_440
    other_length = _constant("kraken", pa.string(), 1_439)
    assert other_length.buffers()[2].address != first.buffers()[2].address and len(other_length) == 1_439


def test_a_read_only_string_column_is_widened_once_and_a_mutable_one_each_time() -> None:
    """pandas holds strings with 64-bit offsets. Those of a column over read-only memory are
    widened once and kept (the memory cannot change); a column over memory that can change is
    widened again for each frame. Either way the frame holds the column's strings."""
    import numpy as np

    from cb_storage_dagster.storage.frame_conversion import _wide_strings

    read_only_offsets = np.array([0, 3, 6], np.int32)
    read_only_offsets.flags.writeable = False
    fixed = pa.StringArray.from_buffers(2, pa.py_buffer(read_only_offsets), pa.py_buffer(b"BTCETH"))
    widened = [_wide_strings(pa.chunked_array([fixed])) for _ in range(2)]
    assert widened[0].buffers()[1].address == widened[1].buffers()[1].address
    assert not widened[0].buffers()[1].is_mutable  # (shared by the frames of later reads)
    assert widened[0].to_pylist() == ["BTC", "ETH"] and pa.types.is_large_string(widened[0].type)

    changing = pa.array(["SOL", "XRP"])  # pyarrow's own (mutable) buffers
    assert changing.buffers()[1].is_mutable
    widened = [_wide_strings(pa.chunked_array([changing])) for _ in range(2)]
    assert widened[0].buffers()[1].address != widened[1].buffers()[1].address
    assert [w.to_pylist() for w in widened] == [["SOL", "XRP"]] * 2
    assert as_frame(pa.table({"coin": fixed}))["coin"].tolist() == ["BTC", "ETH"]


def test_a_frame_keeps_what_pandas_metadata_says_of_its_index_and_columns() -> None:
    written = pd.DataFrame({"coin": ["BTC", "ETH"], "close": [1.0, 2.0]}, index=pd.Index([10, 20], name="minute"))
    rows = pa.Table.from_pandas(written)  # (a foreign writer's file may carry pandas' metadata)
    frame = as_frame(rows)
    pd.testing.assert_frame_equal(frame, rows.to_pandas(), check_exact=True)
    assert frame.index.name == "minute" and frame.index.tolist() == [10, 20]


UTC = dt.timezone.utc
COLUMNS_OF_EVERY_KIND = {
    "float": pa.array([1.5, 2.5, 3.5]),
    "float with nulls": pa.array([1.5, None, 3.5]),
    "float32": pa.array([1.5, 2.5, 3.5], pa.float32()),
    "int": pa.array([1, 2, 3], pa.int64()),
    "int with nulls": pa.array([1, None, 3], pa.int64()),
    "uint8": pa.array([1, 2, 3], pa.uint8()),
    "bool": pa.array([True, False, True]),
    "timestamp UTC": pa.array([0, 60_000_000, 120_000_000], pa.timestamp("us", "UTC")),
    "timestamp UTC with nulls": pa.array([0, None, 120_000_000], pa.timestamp("us", "UTC")),
    "timestamp ns naive": pa.array([0, 1, 2], pa.timestamp("ns")),
    "timestamp other zone": pa.array([0, 1, 2], pa.timestamp("ms", "Europe/Paris")),
    "timestamp fixed offset": pa.array([0, 1, 2], pa.timestamp("us", "-05:30")),
    "timestamp naive with nulls": pa.array([0, None, 2], pa.timestamp("us")),
    "duration": pa.array([0, 1, 2], pa.duration("s")),
    "duration with nulls": pa.array([0, None, 2], pa.duration("ms")),
    "bool with nulls": pa.array([True, None, False]),
    "time of day": pa.array([0, 1, 2], pa.time64("us")),
    "string view": pa.array(["a", None, "b"], pa.string_view()),
    "date": pa.array([dt.date(2024, 1, 1), dt.date(2024, 1, 2), None], pa.date32()),
    "date in runs": pa.array([dt.date(2024, 1, 1), dt.date(2024, 1, 1), dt.date(1969, 12, 31)], pa.date32()),
    "sliced date": pa.array([dt.date(2000, 1, 1), dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 2),
                             dt.date(2030, 1, 1)], pa.date32()).slice(1, 3),
    "decimal": pa.array([decimal.Decimal("1.10"), None, decimal.Decimal("2.25")], pa.decimal128(6, 2)),
    "large string": pa.array(["a", None, "b"], pa.large_string()),
    "binary": pa.array([b"a", None, b"b"]),
    "dictionary": pa.array(["BTC", "ETH", "BTC"]).dictionary_encode(),
    "list": pa.array([[1], [], None], pa.list_(pa.int64())),
    "sliced float": pa.array([0.0, 1.5, 2.5, 3.5, 9.0]).slice(1, 3),
    "chunked int": pa.chunked_array([[1], [2, 3]], pa.int64()),
    "all null": pa.nulls(3),
}


@pytest.mark.parametrize("column", COLUMNS_OF_EVERY_KIND.values(), ids=COLUMNS_OF_EVERY_KIND.keys())
def test_a_column_of_any_kind_converts_as_pyarrow_converts_it(column: pa.Array | pa.ChunkedArray) -> None:
    rows = pa.table({"value": column, "close": [1.0, 2.0, 3.0]})
    frame = as_frame(rows)
    pd.testing.assert_frame_equal(frame, rows.to_pandas(), check_exact=True)
    assert frame.dtypes.equals(rows.to_pandas().dtypes)


def test_dates_in_more_runs_than_laid_out_convert_as_pyarrow_converts_them(monkeypatch) -> None:
    from cb_storage_dagster.storage import frame_conversion

    days = pa.array([dt.date(2024, 1, 1 + i % 2) for i in range(9)], pa.date32())
    rows = pa.table({"date": days})
    for runs_max in (2, 4096):  # (laid out by runs, and left to pyarrow)
        monkeypatch.setattr(frame_conversion, "DATE_RUNS_MAX", runs_max)
        pd.testing.assert_frame_equal(as_frame(rows), rows.to_pandas(), check_exact=True)


def test_tables_without_rows_or_columns_convert_as_pyarrow_converts_them() -> None:
    for rows in (pa.table({"close": pa.array([], pa.float64()), "coin": pa.array([], pa.string())}), pa.table({})):
        pd.testing.assert_frame_equal(as_frame(rows), rows.to_pandas(), check_exact=True)


def test_duplicate_column_names_are_kept_in_order_each_with_its_own_type() -> None:
    rows = pa.Table.from_arrays([pa.array([1.0]), pa.array(["x"])], names=["v", "v"])
    frame = as_frame(rows)  # (pyarrow's own conversion gives both the string dtype here)
    assert frame.columns.tolist() == ["v", "v"]
    assert [str(dtype) for dtype in frame.dtypes] == ["float64", "str"]
    assert frame.iloc[0].tolist() == [1.0, "x"]


def test_every_column_of_a_converted_frame_can_be_set_in_place() -> None:
    rows = pa.table({column: values for column, values in COLUMNS_OF_EVERY_KIND.items()
                     if column not in ("dictionary", "list", "all null", "decimal", "binary")})
    frame = as_frame(rows)
    first = {name: frame[name].iloc[1] for name in frame.columns}
    for name in frame.columns:
        frame.loc[0, name] = first[name]
        assert frame[name].iloc[0] == first[name] or (pd.isna(first[name]) and pd.isna(frame[name].iloc[0]))


def test_renaming_one_frames_columns_leaves_the_next_frames_alone() -> None:
    rows = pa.table({"coin": ["BTC"], "close": [1.0]})
    first = as_frame(rows)
    first.columns.name = "fields"
    second = as_frame(rows)
    assert second.columns.name is None and second.columns.tolist() == ["coin", "close"]
    pd.testing.assert_frame_equal(second, rows.to_pandas(), check_exact=True)


def test_a_view_over_memory_pyarrow_did_not_allocate_is_a_copy() -> None:
    stored = np.arange(3, dtype=np.float64)
    stored.flags.writeable = False  # (memory nobody may write: a mapped file's pages)
    rows = pa.table({"close": pa.Array.from_buffers(pa.float64(), 3, [None, pa.py_buffer(stored)])})
    frame = as_frame(rows)
    frame.loc[0, "close"] = 7.0
    assert stored.tolist() == [0.0, 1.0, 2.0] and frame["close"].tolist() == [7.0, 1.0, 2.0]


def test_a_column_given_twice_is_two_columns_an_edit_of_one_leaves_the_other(tmp_path) -> None:
    """A column asked for twice is the same Arrow memory twice: the frame views it once and
    copies it for the second column."""
    def twice_in_one_table(once: pa.Array) -> pa.Table:
        return pa.Table.from_arrays([once, pa.array([5, 6]), once], names=["close", "n", "close again"])

    def overlapping(values: pa.Array) -> pa.Table:
        return pa.Table.from_arrays([values.slice(0, 2), values.slice(1, 2)], names=["a", "b"])

    for twice in (twice_in_one_table(pa.array([1.0, 2.0])), overlapping(pa.array([1.0, 2.0, 3.0]))):
        frame = as_frame(twice)
        pd.testing.assert_frame_equal(frame, twice.to_pandas(), check_exact=True)
        before = frame.copy()
        frame.iloc[1, 0] = -1.0  # (memory the other column shows too: row 1, or row 0 of "b")
        changed = frame.ne(before)
        assert changed.to_numpy().sum() == 1 and changed.iloc[1, 0]

    manager = StorageManagerImpl(LocalFileBackend(str(tmp_path)))
    day = dt.datetime(2024, 1, 1, tzinfo=UTC)
    manager.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": "BTC", "date": day.date()}, pd.DataFrame({
        "timestamp": [day + dt.timedelta(minutes=m) for m in range(3)],
        "open": [1.0] * 3, "high": [2.0] * 3, "low": [0.5] * 3, "close": [1.5] * 3, "volume": [10.0] * 3,
    }))
    key = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}
    for _ in range(2):  # (the second read is served by position from the kept file)
        frame = manager.get_range(key, day, day + dt.timedelta(days=1), columns=["close", "close"])
        frame.iloc[0, 0] = -1.0
        assert frame.iloc[0].tolist() == [-1.0, 1.5] and frame.iloc[1].tolist() == [1.5, 1.5]


@pytest.mark.parametrize("layout", ["exchange", "instrument"])
def test_frames_of_reads_are_writable_and_an_edit_stays_in_its_frame(tmp_path, layout: str) -> None:
    """``get_range`` and ``get_many`` frames (and the IO manager's, built alike) take edits like
    any frame; the next read, warm or after maintenance, gives what is stored."""
    from cb_storage_dagster.storage import maintenance

    backend = LocalFileBackend(str(tmp_path))
    manager = StorageManagerImpl(backend, default_layout=layout)
    days = [dt.datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2)]
    for coin in ("BTC", "ETH"):
        for day in days:
            manager.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": coin, "date": day.date()}, pd.DataFrame({
                "timestamp": [day + dt.timedelta(minutes=m) for m in range(4)],
                "open": [1.0] * 4, "high": [2.0] * 4, "low": [0.5] * 4, "close": [1.5] * 4, "volume": [10.0] * 4,
            }))
    key = {"data_type": "ohlcv", "exchange": "binance", "coin": "ETH"}
    start, end = days[0], days[-1] + dt.timedelta(days=1)

    def read_and_edit() -> None:
        for frame in (manager.get_range(key, start, end), manager.get_many("ohlcv", "binance", start, end)):
            assert frame["close"].tolist() == [1.5] * len(frame)
            frame.loc[0, "close"] = -1.0
            frame.loc[0, "timestamp"] = pd.Timestamp("2000-01-01", tz="UTC")
            frame.loc[frame["coin"] == "ETH", "volume"] *= 2
            frame["open"] += 1.0
            assert frame["close"].iloc[0] == -1.0 and frame["timestamp"].iloc[0].year == 2000

    read_and_edit()
    read_and_edit()  # warm: the same files, the same caches
    maintenance.maintain_table(backend, "ohlcv", retention_hours=0, min_retention_hours=0)
    read_and_edit()
    read_and_edit()
