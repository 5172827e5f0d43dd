"""Local reads row group by row group (``storage/delta/row_groups.py``) give exactly what
pyarrow's dataset scan gives.

Every read below runs twice on the same table: through the row-group reader, and with it
switched off (``ROW_GROUP_READS = False``: every read goes to pyarrow's scan). The tables
are written with 50-row row groups, so an instrument-day of 60 rows straddles groups and
the groups of an exchange-day hold several coins. Both layouts, before and after
maintenance, with rows a foreign writer appended out of order.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cb_storage_dagster.domain.keys import MarketDataKey
from cb_storage_dagster.domain.schemas import normalize
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.storage import StorageManagerImpl
from cb_storage_dagster.storage import maintenance as mt
from cb_storage_dagster.storage.cross_section import get_many
from cb_storage_dagster.storage.delta import fragments
from cb_storage_dagster.storage.delta.row_group_index import RowGroupIndex
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

pytestmark = pytest.mark.parametrize("layout", ["exchange", "instrument"])

@pytest.fixture
def store(tmp_path, layout, monkeypatch) -> StorageManagerImpl:
    return write_three_coins(tmp_path / "store", layout, monkeypatch)


def both_ways(monkeypatch, manager: StorageManagerImpl, read) -> pd.DataFrame:
    """``read(manager)`` through the row-group reader and through pyarrow's scan (each on a
    fresh manager of the same store): equal frames, and the first really read row groups."""
    counter = lambda m: m.delta._scans._fragments.direct_files  # noqa: E731
    direct_manager = StorageManagerImpl(manager.backend)
    direct = read(direct_manager)
    used = counter(direct_manager)
    monkeypatch.setattr(fragments, "ROW_GROUP_READS", False)
    scan_manager = StorageManagerImpl(manager.backend)
    scanned = read(scan_manager)
    monkeypatch.undo()
    assert counter(scan_manager) == 0
    direct, scanned = (frame if isinstance(frame, pd.DataFrame) else frame.to_pandas() for frame in (direct, scanned))
    pd.testing.assert_frame_equal(direct.reset_index(drop=True), scanned.reset_index(drop=True))
    assert used > 0 or len(scanned) == 0
    return direct


READS = {
    **ONE_INSTRUMENT_READS,
    "days apart": lambda m: m.read_partitions("ohlcv", WriteScope.of_slots(
        [MarketDataKey(data_type="ohlcv", exchange="binance", coin="SOL").partition(d) for d in (DAYS[0], DAYS[2])])),
    "every coin, one day": lambda m: get_many(m, "ohlcv", "binance", at(2024, 1, 31), at(2024, 2, 1)),
    "two coins, projected": lambda m: get_many(
        m, "ohlcv", ["binance:BTC", "binance:SOL"], at(2024, 1, 31, 0, 20), at(2024, 2, 1, 0, 40), columns=["coin", "close"]),
    "two coins, whole history": lambda m: m.read_partitions(
        "ohlcv", WriteScope.of_instruments([("binance", "ETH"), ("binance", "SOL")])),
    "two coins by a coin filter": lambda m: m.read_partitions(
        "ohlcv", WriteScope.of_exchange_days([("binance", d) for d in DAYS]), filters=[("coin", "in", ["SOL", "BTC"])]),
    "a coin filter on one coin's slots": lambda m: m.read_partitions(
        "ohlcv", WriteScope.of_instruments([("binance", "ETH"), ("binance", "SOL")]), filters=[("coin", "=", "SOL")]),
    "the whole table, filtered": lambda m: m.read_partitions("ohlcv", None, filters=[("close", "<", 150.0)]),
}
EXPECTED_ROWS = {**ONE_INSTRUMENT_ROWS, "days apart": 120, "every coin, one day": 180, "two coins, projected": 160,
                 "two coins, whole history": 360, "two coins by a coin filter": 360,
                 "a coin filter on one coin's slots": 180}


@pytest.mark.parametrize("case", list(READS))
def test_each_read_equals_pyarrows_scan(store, monkeypatch, case):
    frame = both_ways(monkeypatch, store, READS[case])
    if case in EXPECTED_ROWS:
        assert len(frame) == EXPECTED_ROWS[case]
    if case == "across the month":
        assert frame["close"].tolist() == ACROSS_THE_MONTH_CLOSES


@pytest.mark.parametrize("case", list(READS))
def test_each_read_split_across_threads_equals_pyarrows_scan(store, monkeypatch, case):
    """Reads of many row groups go in one run of files per core (fetch_pool.map_in_runs);
    here every read of two or more files is split in up to four runs."""
    monkeypatch.setattr(fragments, "PARALLEL_READ_MIN_GROUPS", 1)
    monkeypatch.setattr(fragments, "PARALLEL_READ_CORES", 4)
    frame = both_ways(monkeypatch, store, READS[case])
    if case in EXPECTED_ROWS:
        assert len(frame) == EXPECTED_ROWS[case]


@pytest.mark.parametrize("case", list(READS))
def test_each_read_equals_pyarrows_scan_after_maintenance(store, monkeypatch, case):
    mt.maintain_table(store.backend, "ohlcv", retention_hours=0, min_retention_hours=0)
    frame = both_ways(monkeypatch, store, READS[case])
    if case in EXPECTED_ROWS:
        assert len(frame) == EXPECTED_ROWS[case]


def test_rows_a_foreign_writer_appended_out_of_order_are_read_right(store, monkeypatch):
    from deltalake import DeltaTable, write_deltalake

    day = dt.date(2024, 2, 2)
    rows = pa.concat_tables([normalize(ohlcv(day, n=ROWS_PER_DAY, coin=c, price=50.0), "ohlcv") for c in COINS])
    shuffled = rows.take(pa.array(list(reversed(range(rows.num_rows)))))  # coins and times out of order
    uri = store.table_uri("ohlcv")
    write_deltalake(uri, shuffled, mode="append", partition_by=DeltaTable(uri).metadata().partition_columns)

    frame = both_ways(monkeypatch, store, lambda m: m.get_range(key("ETH"), at(2024, 2, 1, 0, 50), at(2024, 2, 2, 0, 5)))
    assert len(frame) == 10 + 5
    assert frame["timestamp"].is_monotonic_increasing
    frame = both_ways(monkeypatch, store, lambda m: get_many(m, "ohlcv", "binance", at(2024, 2, 2), at(2024, 2, 3)))
    assert sorted(frame.groupby("coin").size().tolist()) == [ROWS_PER_DAY] * 3


def test_a_read_of_one_instrument_keeps_its_files_mapped_and_a_cross_section_maps_none(store):
    files = lambda m: m.delta._scans._fragments  # noqa: E731
    cross_section = StorageManagerImpl(store.backend)
    get_many(cross_section, "ohlcv", "binance", at(2024, 1, 30), at(2024, 2, 2))
    assert files(cross_section).direct_files > 0 and files(cross_section).mapped_files == 0

    reader = StorageManagerImpl(store.backend)
    first = reader.get_range(key("BTC"), at(2024, 1, 30), at(2024, 2, 2))
    mapped = files(reader).mapped_files
    assert mapped == len(DAYS)  # BTC's rows of each day are in one file, whichever the layout
    again = reader.get_range(key("BTC"), at(2024, 1, 30), at(2024, 2, 2))
    pd.testing.assert_frame_equal(first, again)
    assert files(reader).mapped_files == mapped
    assert len(get_many(reader, "ohlcv", "binance", at(2024, 1, 30), at(2024, 2, 2))) == 3 * len(DAYS) * ROWS_PER_DAY


def test_threads_reading_the_same_instrument_at_once_each_get_every_row(store):
    from concurrent.futures import ThreadPoolExecutor

    reader = StorageManagerImpl(store.backend)
    expected = reader.get_range(key("SOL"), at(2024, 1, 30), at(2024, 2, 2))  # files now kept open
    with ThreadPoolExecutor(max_workers=8) as pool:
        frames = list(pool.map(lambda _: reader.get_range(key("SOL"), at(2024, 1, 30), at(2024, 2, 2)), range(64)))
    for frame in frames:
        pd.testing.assert_frame_equal(frame, expected)


# -- the pieces ---------------------------------------------------------------------------------
def test_the_row_group_index_keeps_only_groups_that_may_hold_the_window(layout, tmp_path):
    times = pa.array([i * 60_000_000 for i in range(6)], pa.timestamp("us", tz="UTC"))
    data = pa.table({"coin": ["A", "A", "A", "B", "B", "B"], "timestamp": times})
    pq.write_table(data, tmp_path / "f.parquet", row_group_size=2)
    index = RowGroupIndex.of(pq.ParquetFile(tmp_path / "f.parquet").metadata)

    assert index.rows.tolist() == [2, 2, 2]
    assert index.select(RowWindow()) == [0, 1, 2]
    assert index.select(RowWindow(coin="A")) == [0, 1]
    assert index.select(RowWindow(coin="B", start_us=0, end_us=240_000_000)) == [1]
    assert index.select(RowWindow(coin="C")) == []


def test_a_set_of_coins_keeps_the_groups_holding_any_of_them(layout, tmp_path):
    data = pa.table({"coin": ["A", "A", "B", "C", "D", "D", "E", "F"]})
    pq.write_table(data, tmp_path / "f.parquet", row_group_size=2)  # groups: A-A, B-C, D-D, E-F
    index = RowGroupIndex.of(pq.ParquetFile(tmp_path / "f.parquet").metadata)

    assert index.select(RowWindow(coins=("A", "E"))) == [0, 3]
    assert index.select(RowWindow(coins=("C",))) == [1]
    assert index.select(RowWindow(coins=("AA", "Z"))) == []  # between and beyond every group
    assert index.select(RowWindow(coins=())) == []


def test_a_window_of_several_instruments_knows_their_coins(layout):
    two = WriteScope.of_instruments([("binance", "SOL"), ("binance", "BTC")])
    assert RowWindow.of(two, None).coins == ("BTC", "SOL")
    assert RowWindow.of(WriteScope.of_instruments([("binance", "SOL"), ("kraken", "BTC")]), None).coins is None
    days = WriteScope.of_exchange_days([("binance", DAYS[0])])
    assert RowWindow.of(days, None).within_filters([("coin", "in", ["ETH", "BTC"])]).coins == ("BTC", "ETH")
    assert RowWindow.of(two, None).within_filters([("coin", "=", "BTC"), ("close", ">", 1)]).coins == ("BTC",)
    assert RowWindow.of(two, None).within_filters([("coin", "in", ["ETH"])]).coins == ()  # no coin can match
    instrument = MarketDataKey(data_type="ohlcv", exchange="binance", coin="SOL")
    sole = RowWindow.of(WriteScope.of_slots([instrument.partition(d) for d in DAYS]), None)
    assert sole.within_filters([("coin", "in", ["SOL", "BTC"])]) == sole  # one instrument is narrower already


def test_long_coin_statistics_which_a_writer_may_truncate_never_exclude_a_group(layout, tmp_path):
    long_a, long_b = "A" * 40, "B" * 40
    pq.write_table(pa.table({"coin": [long_a, long_b]}), tmp_path / "f.parquet")
    index = RowGroupIndex.of(pq.ParquetFile(tmp_path / "f.parquet").metadata)

    assert index.select(RowWindow(coin="C" * 40)) == [0]  # the bounds are not trusted
    assert index.select(RowWindow(coin="A")) == [0]


def test_a_window_is_exact_only_for_one_instrument_over_consecutive_days(layout):
    instrument = MarketDataKey(data_type="ohlcv", exchange="binance", coin="BTC")
    consecutive = WriteScope.of_slots([instrument.partition(d) for d in DAYS])
    apart = WriteScope.of_slots([instrument.partition(d) for d in (DAYS[0], DAYS[2])])

    window = RowWindow.of(consecutive, (at(2024, 1, 31, 12), at(2024, 3, 1)))
    assert (window.exchange, window.coin, window.exact) == ("binance", "BTC", True)
    assert window.start_us == int(at(2024, 1, 31, 12).timestamp() * 1e6)
    assert window.end_us == int(at(2024, 2, 2).timestamp() * 1e6)  # the scope's last day ends first
    assert RowWindow.of(apart, None).exact is False
    assert RowWindow.of(WriteScope.of_exchange_days([("binance", DAYS[0])]), None).coin is None


def test_groups_of_a_file_in_coin_order_are_found_by_bisection_as_by_comparison(layout, tmp_path):
    """A file sorted by coin (the exchange layout's) is searched by bisection; the groups
    found are those the comparison of every group's bounds keeps (a set of one coin)."""
    coins = [f"C{i:03d}" for i in range(40) for _ in range(7)]
    times = pa.array([(i % 7) * 60_000_000 for i in range(len(coins))], pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"coin": coins, "timestamp": times}), tmp_path / "f.parquet", row_group_size=5)
    index = RowGroupIndex.of(pq.ParquetFile(tmp_path / "f.parquet").metadata)

    for coin in ["A", "C000", "C007", "C0075", "C039", "D"]:
        for start_us, end_us in [(None, None), (0, 60_000_000), (120_000_000, None), (None, 60_000_000)]:
            bisected = index.select(RowWindow(coin=coin, start_us=start_us, end_us=end_us))
            compared = index.select(RowWindow(coins=(coin,), start_us=start_us, end_us=end_us))
            assert bisected == compared, (coin, start_us, end_us)
    assert index.select(RowWindow(coin="C007")) == [9, 10, 11]


def test_a_file_of_one_group_is_kept_or_skipped_as_the_comparison_of_bounds_decides(layout, tmp_path):
    times = pa.array([60_000_000, 120_000_000], pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"coin": ["B", "B"], "timestamp": times}), tmp_path / "f.parquet")
    index = RowGroupIndex.of(pq.ParquetFile(tmp_path / "f.parquet").metadata)

    for coin in [None, "A", "B", "C"]:
        for start_us, end_us in [(None, None), (0, 60_000_000), (0, 60_000_001), (120_000_000, None), (120_000_001, None)]:
            window = RowWindow(coin=coin, start_us=start_us, end_us=end_us)
            compared = index.select(RowWindow(coins=None if coin is None else (coin,), start_us=start_us, end_us=end_us))
            assert index.select(window) == compared, (coin, start_us, end_us)
    assert index.select(RowWindow(coin="B", start_us=0, end_us=60_000_001)) == [0]
    assert index.select(RowWindow(coin="B", start_us=120_000_001)) == []


def test_a_group_is_inside_a_window_only_if_its_times_and_for_an_exact_window_its_dates_are(layout, tmp_path):
    """What spares a group the cut to the time range and the check of its dates: its statistics
    (a group of 00:01-00:02 on 1970-01-01, and one whose ``date`` says 1970-01-02 for one of
    those times, as a foreign writer may store it)."""
    times = pa.array([60_000_000, 120_000_000], pa.timestamp("us", tz="UTC"))
    first_day = dt.date(1970, 1, 1)
    for dates, dates_agree in [([first_day, first_day], True), ([first_day, dt.date(1970, 1, 2)], False)]:
        path = tmp_path / f"{dates_agree}.parquet"
        pq.write_table(pa.table({"coin": ["B", "B"], "timestamp": times, "date": pa.array(dates, pa.date32())}), path)
        index = RowGroupIndex.of(pq.ParquetFile(path).metadata)
        assert index.inside(0, RowWindow(coin="B", start_us=0, end_us=180_000_000))
        assert index.inside(0, RowWindow(coin="B"))
        assert not index.inside(0, RowWindow(coin="B", start_us=60_000_001))
        assert not index.inside(0, RowWindow(coin="B", end_us=120_000_000))
        exact = RowWindow(coin="B", start_us=0, end_us=86_400_000_000, first_day=first_day, last_day=first_day, exact=True)
        assert index.inside(0, exact) is dates_agree
    pq.write_table(pa.table({"coin": ["B"], "timestamp": times[:1]}), tmp_path / "no_date.parquet")
    no_dates = RowGroupIndex.of(pq.ParquetFile(tmp_path / "no_date.parquet").metadata)
    assert not no_dates.inside(0, RowWindow(coin="B", first_day=first_day, last_day=first_day, exact=True))


def test_coin_statistics_are_read_from_their_bytes_and_bytes_that_are_no_text_are_not_trusted(layout, tmp_path):
    """Coin bounds come from the statistics' UTF-8 bytes; a bound cut mid-character (a writer
    truncating it) is widened to admit every coin, and a binary ``coin`` column gives no bounds."""
    from cb_storage_dagster.storage.delta.row_group_index import _trusted

    pq.write_table(pa.table({"coin": ["ÉTH", "ÉTH"]}), tmp_path / "text.parquet")
    index = RowGroupIndex.of(pq.ParquetFile(tmp_path / "text.parquet").metadata)
    assert index.coin_min.tolist() == ["ÉTH"] and index.coin_max.tolist() == ["ÉTH"]
    assert _trusted("ÉTH".encode()[:1], "") == "" and _trusted(b"BTC", "") == "BTC"
    pq.write_table(pa.table({"coin": pa.array([b"BTC"], pa.binary())}), tmp_path / "binary.parquet")
    assert RowGroupIndex.of(pq.ParquetFile(tmp_path / "binary.parquet").metadata).coin_min is None
