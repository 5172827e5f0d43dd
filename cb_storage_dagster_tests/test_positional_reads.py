"""A read of one instrument takes its rows by position from the pages of the files it keeps
mapped (``storage/delta/positional_read.py``, ``column_slices.py``, ``page_headers.py``,
``hybrid_rle.py``), and gets exactly what decoding the row groups gets.

The pieces are checked against pyarrow's own decoding of files written every way a writer
may write them (plain and dictionary pages, page format 1 and 2, required and nullable
columns, every bit width of dictionary indices); columns that cannot be read by position
(compressed, with nulls, in several pages, strings) are refused, and their files decoded
by pyarrow. The whole read is checked against reads with positional reads switched off,
on both layouts, before and after maintenance, on files of a foreign writer.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cb_storage_dagster.domain.schemas import normalize
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl
from cb_storage_dagster.storage import maintenance as mt
from cb_storage_dagster.storage.delta import positional_read, row_groups
from cb_storage_dagster.storage.delta.column_slices import DictionaryValues, PlainValues, RowGroupSlices
from cb_storage_dagster.storage.delta.mapped_file import MappedFile, map_file
from cb_storage_dagster.storage.delta.row_window import RowWindow
from cb_storage_dagster_tests.support.data import at, ohlcv
from cb_storage_dagster_tests.support.three_coins import (
    ACROSS_THE_MONTH_CLOSES,
    COINS,
    DAYS,
    ONE_INSTRUMENT_READS,
    ONE_INSTRUMENT_ROWS,
    ROWS_PER_DAY,
    key,
    write_three_coins,
)

TYPES = {"i32": pa.int32(), "i64": pa.int64(), "f32": pa.float32(), "f64": pa.float64(), "day": pa.date32(),
         "time": pa.timestamp("us", tz="UTC")}


def columns_table(rows: int, seed: int = 0, distinct: int | None = None) -> pa.Table:
    """A column of each fixed-width type, ``distinct`` values each (default: all distinct)."""
    rng = np.random.default_rng(seed)
    draw = (lambda: rng.integers(0, distinct, rows)) if distinct else (lambda: rng.permutation(rows))
    def column(typ: pa.DataType) -> pa.Array:
        if pa.types.is_floating(typ):
            return pa.array(draw() / 7.0).cast(typ)
        integers = pa.array(draw(), pa.int64())
        return integers.cast(pa.int32()).cast(typ) if typ == pa.date32() else integers.cast(typ)

    return pa.table({name: column(typ) for name, typ in TYPES.items()})


def slices_of(path) -> list[RowGroupSlices]:
    metadata = pq.ParquetFile(path).metadata
    data = map_file(str(path))
    return [RowGroupSlices.of(data, metadata, group) for group in range(metadata.num_row_groups)]


def assert_takes_equal_pyarrows(path, table_columns: list[str], ranges: int = 20) -> None:
    decoded = pq.ParquetFile(path)
    rng = np.random.default_rng(1)
    for group, slices in enumerate(slices_of(path)):
        expected = decoded.read_row_group(group)
        for name in table_columns:
            column = slices.columns[name]
            assert column is not None, name
            values = expected.column(name).combine_chunks()
            for _ in range(ranges):
                first, end = sorted(int(x) for x in rng.integers(0, slices.rows + 1, 2))
                taken = column.take(first, end)
                got = pa.Array.from_buffers(values.type, len(taken), [None, pa.py_buffer(np.ascontiguousarray(taken))])
                assert got.equals(values.slice(first, end - first)), (name, first, end)


# -- the pieces ---------------------------------------------------------------------------------
@pytest.mark.parametrize("page_version", ["1.0", "2.0"])
@pytest.mark.parametrize("dictionary", [False, True])
@pytest.mark.parametrize("nullable", [True, False])
def test_every_fixed_width_type_is_taken_as_pyarrow_decodes_it(tmp_path, page_version, dictionary, nullable):
    table = columns_table(5_000, distinct=300 if dictionary else None)
    if not nullable:
        table = table.cast(pa.schema([pa.field(f.name, f.type, nullable=False) for f in table.schema]))
    path = tmp_path / "f.parquet"
    pq.write_table(table, path, compression="NONE", use_dictionary=dictionary, data_page_version=page_version,
                   row_group_size=2_000)

    kinds = {type(column) for slices in slices_of(path) for column in slices.columns.values()}
    assert kinds == {DictionaryValues if dictionary else PlainValues}
    assert_takes_equal_pyarrows(path, list(TYPES))


@pytest.mark.parametrize("distinct", [1, 2, 3, 9, 200, 1_500, 70_000])
def test_dictionary_indices_of_every_width_decode_from_any_row(tmp_path, distinct):
    """1 to 17 bits per index, runs of repeats (RLE) and of distinct values (bit-packed)."""
    rng = np.random.default_rng(distinct)
    codes = np.repeat(rng.integers(0, distinct, 3_000), rng.integers(1, 12, 3_000))[:20_000]
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"i64": pa.array(codes * 3 + 1, pa.int64())}), path, compression="NONE",
                   dictionary_pagesize_limit=1 << 30, data_page_size=1 << 30)
    assert isinstance(slices_of(path)[0].columns["i64"], DictionaryValues)
    assert_takes_equal_pyarrows(path, ["i64"], ranges=60)


def test_the_files_the_product_writes_are_read_by_position_in_both_layouts(tmp_path):
    for layout in ("exchange", "instrument"):
        manager = StorageManagerImpl(LocalFileBackend(tmp_path / layout), default_layout=layout)
        manager.write_partitions("ohlcv", pa.concat_tables([normalize(ohlcv(DAYS[0], n=300, coin=c), "ohlcv")
                                                            for c in COINS]),
                                 WriteScope.of_exchange_days([("binance", DAYS[0])]))
        for path in (tmp_path / layout).rglob("part-*.parquet"):
            stored = pq.read_schema(path).names
            assert_takes_equal_pyarrows(path, [name for name in stored if name != "coin"])
            if "coin" in stored:
                assert [slices.coin_run("ETH") for slices in slices_of(path)] == [(300, 600)]


@pytest.mark.parametrize("refused", ["snappy", "nulls", "pages", "strings"])
def test_columns_that_cannot_be_taken_by_position_are_refused(tmp_path, refused):
    table = columns_table(5_000)
    options = {"compression": "NONE", "use_dictionary": False}
    if refused == "snappy":
        options["compression"] = "snappy"
    elif refused == "nulls":
        table = table.set_column(3, "f64", pa.array([None] + [1.0] * 4_999))
    elif refused == "pages":
        options["data_page_size"] = 1_024
    else:
        table = table.append_column("name", pa.array([f"n{i}" for i in range(5_000)]))
    path = tmp_path / "f.parquet"
    pq.write_table(table, path, **options)

    columns = slices_of(path)[0].columns
    refused_columns = {"snappy": list(TYPES), "nulls": ["f64"], "pages": list(TYPES), "strings": ["name"]}[refused]
    assert all(columns[name] is None for name in refused_columns)
    if refused == "nulls":
        assert all(columns[name] is not None for name in TYPES if name != "f64")


def test_a_coin_in_two_runs_of_a_group_is_left_to_pyarrow(tmp_path):
    times = pa.array([0, 60_000_000, 0, 60_000_000], pa.timestamp("us", tz="UTC"))
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"coin": ["BTC", "ETH", "BTC", "ETH"], "timestamp": times, "close": [1.0, 2.0, 3.0, 4.0]}),
                   path, compression="NONE", use_dictionary=["coin"])
    kept = MappedFile(str(path), pq.ParquetFile(path).metadata, {"exchange": "binance"})

    assert kept.slices(0).coin_run("BTC") is None
    assert positional_read.read_by_position(kept, [0], RowWindow(coin="BTC", start_us=0, end_us=1 << 40),
                                            ["coin", "timestamp", "close"], every_row=False) is None


# -- whole reads --------------------------------------------------------------------------------
@pytest.fixture(params=["exchange", "instrument"])
def store(tmp_path, request, monkeypatch) -> StorageManagerImpl:
    return write_three_coins(tmp_path / "store", request.param, monkeypatch)


READS = ONE_INSTRUMENT_READS
EXPECTED_ROWS = ONE_INSTRUMENT_ROWS


def by_position_and_decoded(monkeypatch, manager: StorageManagerImpl, read) -> pd.DataFrame:
    """``read`` twice, each on a fresh manager read twice (the second read finds its files
    mapped): with positional reads, and decoding every file. Equal frames, and the first
    took files by position."""
    taken = []
    original = row_groups.read_by_position

    def counted(*args, **kwargs):
        result = original(*args, **kwargs)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(row_groups, "read_by_position", counted)
    reader = StorageManagerImpl(manager.backend)
    read(reader)
    positional = read(reader)
    monkeypatch.setattr(positional_read, "POSITIONAL_READS", False)
    decoder = StorageManagerImpl(manager.backend)
    read(decoder)
    decoded = read(decoder)
    monkeypatch.undo()
    pd.testing.assert_frame_equal(positional.reset_index(drop=True), decoded.reset_index(drop=True))
    assert any(taken) or not len(decoded)
    return positional


@pytest.mark.parametrize("case", list(READS))
def test_a_read_by_position_equals_the_decoded_read(store, monkeypatch, case):
    frame = by_position_and_decoded(monkeypatch, store, READS[case])
    if case in EXPECTED_ROWS:
        assert len(frame) == EXPECTED_ROWS[case]
    if case == "across the month":
        assert frame["close"].tolist() == ACROSS_THE_MONTH_CLOSES


@pytest.mark.parametrize("case", list(READS))
def test_a_read_by_position_equals_the_decoded_read_after_maintenance(store, monkeypatch, case):
    mt.maintain_table(store.backend, "ohlcv", retention_hours=0, min_retention_hours=0)
    frame = by_position_and_decoded(monkeypatch, store, READS[case])
    if case in EXPECTED_ROWS:
        assert len(frame) == EXPECTED_ROWS[case]


def test_files_of_a_foreign_writer_with_its_own_encodings_are_read_right(store, monkeypatch):
    """delta-rs' default writer: every column dictionary-encoded (timestamps too), Snappy is
    not used here so the dictionary pages are read by position; and one file out of order."""
    from deltalake import DeltaTable, WriterProperties, write_deltalake

    day = dt.date(2024, 2, 2)
    rows = pa.concat_tables([normalize(ohlcv(day, n=ROWS_PER_DAY, coin=c, price=50.0), "ohlcv") for c in COINS])
    uri = store.table_uri("ohlcv")
    partitions = DeltaTable(uri).metadata().partition_columns
    write_deltalake(uri, rows, mode="append", partition_by=partitions,
                    writer_properties=WriterProperties(compression="UNCOMPRESSED"))
    frame = by_position_and_decoded(monkeypatch, store, lambda m: m.get_range(key("ETH"), at(2024, 2, 1), at(2024, 2, 3)))
    assert len(frame) == 2 * ROWS_PER_DAY and frame["close"].iloc[-1] == 50.0 + ROWS_PER_DAY - 0.5

    shuffled = rows.take(pa.array(list(reversed(range(rows.num_rows)))))
    write_deltalake(uri, shuffled, mode="append", partition_by=partitions,
                    writer_properties=WriterProperties(compression="UNCOMPRESSED"))
    frame = by_position_and_decoded(monkeypatch, store, lambda m: m.get_range(key("SOL"), at(2024, 2, 2), at(2024, 2, 3)))
    assert len(frame) == 2 * ROWS_PER_DAY and frame["timestamp"].is_monotonic_increasing


def test_a_new_processs_first_read_of_one_instrument_is_indexed_and_a_cross_section_is_scanned(store, monkeypatch):
    """Files never seen, holding more rows than fragments.NEW_FILES_INDEXED_MAX_ROWS: a read of
    one instrument indexes them and takes its rows by position (nothing to decode); a read of
    every instrument leaves them to pyarrow's scan (it would decode whole row groups)."""
    from cb_storage_dagster.storage.cross_section import get_many
    from cb_storage_dagster.storage.delta import fragments

    monkeypatch.setattr(fragments, "NEW_FILES_INDEXED_MAX_ROWS", 10)
    files = lambda m: m.delta._scans._fragments  # noqa: E731
    one = StorageManagerImpl(store.backend)
    frame = one.get_range(key("SOL"), at(2024, 1, 30), at(2024, 2, 2))
    assert len(frame) == 3 * ROWS_PER_DAY and files(one).direct_files > 0

    many = StorageManagerImpl(store.backend)
    assert len(get_many(many, "ohlcv", "binance", at(2024, 1, 30), at(2024, 2, 2))) == 3 * len(COINS) * ROWS_PER_DAY
    assert files(many).direct_files == 0


def test_a_page_header_skips_every_thrift_type_it_does_not_read():
    """A data page header with a field of each Thrift compact type after the ones read
    (booleans, a byte, a double, a binary, a list, a set, a map, a nested struct): the fields
    read come out right and the header ends where its bytes end."""
    from cb_storage_dagster.storage.delta.page_headers import (
        DATA_PAGE,
        PLAIN,
        PageHeaderError,
        read_page_header,
    )

    def zigzag(n: int) -> bytes:
        raw, out = (n << 1) ^ (n >> 63), b""
        while raw >= 0x80:
            out, raw = out + bytes([(raw & 0x7F) | 0x80]), raw >> 7
        return out + bytes([raw])

    body = (b"\x15" + zigzag(1_000) + b"\x15" + zigzag(PLAIN) + b"\x15" + zigzag(3) + b"\x15" + zigzag(3)
            + b"\x11" + b"\x12" + b"\x13\x07" + b"\x17" + b"\x00" * 8 + b"\x18\x03abc"
            + b"\x19\x35" + zigzag(1) + zigzag(2) + zigzag(3) + b"\x1a\x21\x01\x02"
            + b"\x1b\x02\x85" + b"\x01x" + zigzag(9) + b"\x01y" + zigzag(10)
            + b"\x1c\x15\x02\x00" + b"\x00")
    header = (b"\x15" + zigzag(DATA_PAGE) + b"\x15" + zigzag(8_000) + b"\x15" + zigzag(8_000)
              + b"\x2c" + body + b"\x00")
    data = b"PAR1" + header + b"\x00" * 8_000

    parsed = read_page_header(data, 4)
    assert (parsed.kind, parsed.num_values, parsed.encoding, parsed.size) == (DATA_PAGE, 1_000, PLAIN, 8_000)
    assert parsed.offset == 4 + len(header) and parsed.end == len(data)
    with pytest.raises(PageHeaderError):
        read_page_header(data[:20], 4)  # cut short


@pytest.mark.parametrize("scope_days", [1, 3])
def test_a_cross_section_read_again_takes_the_instrument_layouts_files_by_position(tmp_path, monkeypatch, scope_days):
    """Every instrument of an exchange over whole days, in the instrument layout (one coin per
    file): the files a read finds indexed by an earlier read are kept open and their rows
    taken by position; the frames equal those of reads that decode every file."""
    from cb_storage_dagster.storage.cross_section import get_many

    manager = StorageManagerImpl(LocalFileBackend(tmp_path / "store"), default_layout="instrument")
    for i, day in enumerate(DAYS):
        frames = [ohlcv(day, n=ROWS_PER_DAY, coin=c, price=100.0 * (j + 1) + i) for j, c in enumerate(COINS)]
        manager.write_partitions("ohlcv", pa.concat_tables([normalize(f, "ohlcv") for f in frames]),
                                 WriteScope.of_exchange_days([("binance", day)]))
    read = lambda m: get_many(m, "ohlcv", "binance", at(2024, 1, 31), at(2024, 1, 31) + dt.timedelta(days=scope_days))  # noqa: E731
    reader = StorageManagerImpl(manager.backend)
    first = read(reader)
    assert reader.delta._scans._fragments.mapped_files == 0  # a first read decodes: nothing kept open
    frame = by_position_and_decoded(monkeypatch, manager, read)
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), first.reset_index(drop=True))
    assert len(frame) == len(COINS) * ROWS_PER_DAY * min(scope_days, 2)


def test_a_cross_section_of_a_compacted_month_maps_the_instrument_layouts_files_at_the_first_read(tmp_path, monkeypatch):
    """After maintenance each file is an instrument's month, its row groups holding days the
    read of one day does not want (decoding them costs more than mapping the file): the first
    read maps every file and takes its rows by position, with the frame of a read that decodes."""
    from cb_storage_dagster.storage.cross_section import get_many
    from cb_storage_dagster.storage.delta import fragments

    monkeypatch.setattr(fragments, "NEW_FILES_INDEXED_MAX_ROWS", 1 << 40)  # no first scan by pyarrow
    manager = StorageManagerImpl(LocalFileBackend(tmp_path / "store"), default_layout="instrument")
    for i, day in enumerate(DAYS):
        frames = [ohlcv(day, n=ROWS_PER_DAY, coin=c, price=100.0 * (j + 1) + i) for j, c in enumerate(COINS)]
        manager.write_partitions("ohlcv", pa.concat_tables([normalize(f, "ohlcv") for f in frames]),
                                 WriteScope.of_exchange_days([("binance", day)]))
    mt.maintain_table(manager.backend, "ohlcv", retention_hours=0, min_retention_hours=0)
    read = lambda m: get_many(m, "ohlcv", "binance", at(2024, 1, 31), at(2024, 2, 1))  # noqa: E731

    reader = StorageManagerImpl(manager.backend)
    first = read(reader)
    kept = reader.delta._scans._fragments
    assert kept.direct_files > 0 and kept.mapped_files == kept.direct_files  # every file read, mapped
    monkeypatch.setattr(positional_read, "POSITIONAL_READS", False)
    decoded = read(StorageManagerImpl(manager.backend))
    pd.testing.assert_frame_equal(first.reset_index(drop=True), decoded.reset_index(drop=True))
    assert len(first) == len(COINS) * ROWS_PER_DAY


def test_a_read_wanting_no_stored_column_still_counts_the_files_rows(tmp_path):
    """Only partition columns wanted (an instrument file stores no ``coin``): the rows taken
    by position are counted all the same, so the partition columns get one value per row."""
    times = pa.array([0, 60_000_000, 120_000_000], pa.timestamp("us", tz="UTC"))
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"timestamp": times, "close": [1.0, 2.0, 3.0]}), path, compression="NONE",
                   use_dictionary=False)
    kept = MappedFile(str(path), pq.ParquetFile(path).metadata, {"exchange": "binance", "coin": "BTC"})

    rows, values, _ = positional_read.read_by_position(kept, [0], RowWindow(coin="BTC"), [], every_row=True)
    assert rows.num_rows == 3 and rows.table().num_rows == 3 and values["coin"] == "BTC"


def test_a_file_whose_pages_are_not_where_its_footer_says_is_left_to_pyarrow(tmp_path):
    """A column chunk whose page header bytes are garbage (a damaged file): no column of it is
    read by position, so pyarrow, which reports damage, decodes the file."""
    path = tmp_path / "f.parquet"
    pq.write_table(columns_table(100), path, compression="NONE", use_dictionary=False)
    metadata = pq.ParquetFile(path).metadata
    damaged = bytearray(path.read_bytes())
    start = metadata.row_group(0).column(0).data_page_offset
    damaged[start:start + 8] = b"\xff" * 8
    path.write_bytes(bytes(damaged))

    slices = RowGroupSlices.of(map_file(str(path)), metadata, 0)
    assert slices.columns["i32"] is None
    assert all(slices.columns[name] is not None for name in TYPES if name != "i32")


# -- reads of a few instruments --------------------------------------------------------------
FEW_INSTRUMENT_READS = {
    "two coins, three days": lambda m: m.get_many("ohlcv", ["binance:SOL", "binance:BTC"], at(2024, 1, 30), at(2024, 2, 2)),
    "two coins inside a day": lambda m: m.get_many(
        "ohlcv", ["binance:ETH", "binance:SOL"], at(2024, 1, 31, 0, 7), at(2024, 1, 31, 0, 53)),
    "every coin across the month": lambda m: m.get_many(
        "ohlcv", [("binance", c) for c in COINS], at(2024, 1, 31, 0, 30), at(2024, 2, 1, 0, 10)),
    "filtered and projected": lambda m: m.get_many(
        "ohlcv", ["binance:BTC", "binance:ETH"], at(2024, 1, 30), at(2024, 2, 2),
        filters=[("close", ">", 120.0)], columns=["coin", "timestamp", "close"]),
    "one known, one unknown": lambda m: m.get_many("ohlcv", ["binance:XRP", "binance:ETH"], at(2024, 1, 30), at(2024, 2, 2)),
}
"""Reads of a few instruments (``get_many`` of a list) on the three-coin store, by name."""


def one_by_one(manager: StorageManagerImpl, coins: list[str], start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """The oracle: the instruments' ``get_range`` one after another, in coin order."""
    frames = [manager.get_range(key(c), start, end) for c in sorted(coins)]
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("maintained", [False, True], ids=["before maintenance", "after maintenance"])
@pytest.mark.parametrize("case", list(FEW_INSTRUMENT_READS))
def test_a_read_of_a_few_instruments_takes_each_ones_rows_by_position(store, monkeypatch, case, maintained):
    """Each instrument's rows are taken by position, file by file (in the exchange layout:
    each coin's run of a file of several), and the frame is the one decoding gets, sorted by
    coin then time."""
    if maintained:
        mt.maintain_table(store.backend, "ohlcv", retention_hours=0, min_retention_hours=0)
    frame = by_position_and_decoded(monkeypatch, store, FEW_INSTRUMENT_READS[case])
    if case == "two coins, three days":
        pd.testing.assert_frame_equal(frame, one_by_one(store, ["BTC", "SOL"], at(2024, 1, 30), at(2024, 2, 2)))
    if case == "every coin across the month":
        assert frame["coin"].tolist() == sorted(frame["coin"]) and len(frame) == 3 * 40
        eth = frame[frame["coin"] == "ETH"]
        assert eth["close"].tolist() == ACROSS_THE_MONTH_CLOSES
    if case == "one known, one unknown":
        assert set(frame["coin"]) == {"ETH"} and len(frame) == 3 * ROWS_PER_DAY
    if case == "filtered and projected":
        assert list(frame.columns) == ["coin", "timestamp", "close"] and (frame["close"] > 120.0).all()


def test_a_read_of_a_few_instruments_leaves_a_foreign_file_out_of_order_to_pyarrow(store, monkeypatch):
    """A foreign writer's exchange-day in reverse order (no coin's rows form one run in time
    order): that file is decoded, the others taken by position, the frame as decoding gets it."""
    from deltalake import DeltaTable, WriterProperties, write_deltalake

    day = dt.date(2024, 2, 2)
    rows = pa.concat_tables([normalize(ohlcv(day, n=ROWS_PER_DAY, coin=c, price=50.0), "ohlcv") for c in COINS])
    uri = store.table_uri("ohlcv")
    write_deltalake(uri, rows.take(pa.array(list(reversed(range(rows.num_rows))))), mode="append",
                    partition_by=DeltaTable(uri).metadata().partition_columns,
                    writer_properties=WriterProperties(compression="UNCOMPRESSED"))
    read = lambda m: m.get_many("ohlcv", ["binance:BTC", "binance:SOL"], at(2024, 2, 1), at(2024, 2, 3))  # noqa: E731
    frame = by_position_and_decoded(monkeypatch, store, read)
    pd.testing.assert_frame_equal(frame, one_by_one(store, ["BTC", "SOL"], at(2024, 2, 1), at(2024, 2, 3)))
    assert len(frame) == 2 * 2 * ROWS_PER_DAY


def test_each_coin_of_a_read_of_a_few_is_exact_only_where_the_scope_is_every_coin_over_the_same_days():
    """Each coin's window needs no scope filter only when the scope is the coins x the same
    consecutive days; coins over different days keep the scope's filter."""
    from cb_storage_dagster.domain.keys import PartitionSlot

    days = [dt.date(2024, 1, 30), dt.date(2024, 1, 31)]
    product = RowWindow.of(WriteScope.of_slots(PartitionSlot("binance", c, d) for c in ("BTC", "ETH") for d in days), None)
    assert product.coins == ("BTC", "ETH") and product.each_coin_exact and not product.exact
    assert product.for_coin("BTC").exact and product.for_coin("BTC").coins is None
    assert (product.first_day, product.last_day) == (days[0], days[1])

    uneven = RowWindow.of(WriteScope.of_slots([PartitionSlot("binance", "BTC", days[0]), PartitionSlot("binance", "ETH", days[1])]),
                          None)
    assert uneven.coins == ("BTC", "ETH") and not uneven.each_coin_exact and not uneven.for_coin("BTC").exact
    gap = RowWindow.of(WriteScope.of_slots(PartitionSlot("binance", c, d) for c in ("BTC", "ETH")
                                           for d in (days[0], days[0] + dt.timedelta(days=2))), None)
    assert not gap.each_coin_exact


def test_the_parts_of_a_read_of_a_few_coins_go_instrument_after_instrument():
    """One part per coin per file, files in time order: put coin after coin, each coin's files
    still in order; parts of several coins (decoded) leave the order as it was."""
    from cb_storage_dagster.storage.delta.file_rows import FileRows

    def part(coin: str | None, day: int) -> FileRows:
        values = {"exchange": "binance", "day": day} | ({"coin": coin} if coin else {})
        return FileRows(pa.table({"x": [day]}), values, False)

    parts = [part("SOL", 1), part("BTC", 1), part("SOL", 2), part("BTC", 2)]
    ordered = row_groups._by_instrument(parts)
    assert [(p.partition_values["coin"], p.partition_values["day"]) for p in ordered] == \
        [("BTC", 1), ("BTC", 2), ("SOL", 1), ("SOL", 2)]
    mixed = [part("SOL", 1), part(None, 1)]
    assert row_groups._by_instrument(mixed) == mixed


def test_an_exchange_day_of_many_instruments_is_written_in_row_groups_of_one_page_per_column(tmp_path):
    """Row groups of more rows than delta-rs' 20,000-row pages (layout.EXCHANGE_LAYOUT_ROW_GROUP_ROWS):
    each column chunk is still one data page, so every column is read by position."""
    from cb_storage_dagster.storage.layout import EXCHANGE_LAYOUT_ROW_GROUP_ROWS

    coins = [f"C{i:03d}" for i in range(30)]  # 30 x 1,440 = 43,200 rows: one row group
    assert 20_000 < len(coins) * 1440 <= EXCHANGE_LAYOUT_ROW_GROUP_ROWS
    manager = StorageManagerImpl(LocalFileBackend(tmp_path / "store"), default_layout="exchange")
    manager.write_partitions("ohlcv", pa.concat_tables([normalize(ohlcv(DAYS[0], n=1440, step="1min", coin=c), "ohlcv")
                                                        for c in coins]),
                             WriteScope.of_exchange_days([("binance", DAYS[0])]))
    (path,) = (tmp_path / "store").rglob("part-*.parquet")
    (slices,) = slices_of(path)
    assert slices.rows == len(coins) * 1440 and all(column is not None for column in slices.columns.values())
    assert slices.coin_run("C007") == (7 * 1440, 8 * 1440)
    assert_takes_equal_pyarrows(path, [name for name in pq.read_schema(path).names if name != "coin"], ranges=5)
