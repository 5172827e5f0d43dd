"""A pruned read opens only the files of what it asks for.

The table holds 3 instruments x 2 months x 3 days, one data file per instrument-day (one
commit each, as daily Dagster runs leave it). The fast reader's filesystem is wrapped in a
handler that records every file opened, on local disk and on Azurite.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from cb_storage_dagster.storage import StorageManagerImpl
from cb_storage_dagster.storage.delta import scan as delta_scan
from cb_storage_dagster_tests.support.data import at, ohlcv
from cb_storage_dagster_tests.support.foreign_tables import CountingHandler

INSTRUMENTS = [("binance", "BTC"), ("binance", "ETH"), ("kraken", "BTC")]
DAYS = [dt.date(2024, 1, 10), dt.date(2024, 1, 11), dt.date(2024, 1, 12),
        dt.date(2024, 2, 10), dt.date(2024, 2, 11), dt.date(2024, 2, 12)]


@pytest.fixture
def filled(manager: StorageManagerImpl) -> StorageManagerImpl:
    for exchange, coin in INSTRUMENTS:
        for day in DAYS:
            key = {"data_type": "ohlcv", "exchange": exchange, "coin": coin, "date": day}
            manager.save_entry(key, ohlcv(day, n=30, exchange=exchange, coin=coin))
    return manager


def read_and_count(monkeypatch, manager: StorageManagerImpl, key: dict, start, end) -> tuple[int, set[str]]:
    """Rows of a ``get_range`` and the distinct files its fast read opened."""
    import pyarrow.fs as pa_fs

    real = delta_scan._filesystem
    handlers: list[CountingHandler] = []

    def counting(table_uri, plan, storage_options):
        filesystem, files = real(table_uri, plan, storage_options)
        handler = CountingHandler(filesystem)
        handlers.append(handler)
        return pa_fs.PyFileSystem(handler), files

    monkeypatch.setattr(delta_scan, "_filesystem", counting)
    try:
        frame = manager.get_range(key, start, end)
    finally:
        monkeypatch.setattr(delta_scan, "_filesystem", real)
    return len(frame), {path for handler in handlers for path in handler.opened}


def test_one_instrument_one_day_opens_only_that_days_file(filled, monkeypatch):
    files_in_table = len(filled.delta.open("ohlcv").file_uris())
    assert files_in_table == len(INSTRUMENTS) * len(DAYS)

    rows, opened = read_and_count(
        monkeypatch, filled, {"data_type": "ohlcv", "exchange": "binance", "coin": "ETH"},
        at(2024, 2, 11), at(2024, 2, 12),
    )
    assert rows == 30
    assert len(opened) == 1
    (path,) = opened
    assert "exchange=binance" in path and "coin=ETH" in path and "month=2024-02" in path


def test_one_instrument_one_month_opens_that_months_files_only(filled, monkeypatch):
    rows, opened = read_and_count(
        monkeypatch, filled, {"data_type": "ohlcv", "exchange": "kraken", "coin": "BTC"},
        at(2024, 1, 1), at(2024, 2, 1),
    )
    assert rows == 3 * 30
    assert len(opened) == 3
    assert all("exchange=kraken" in p and "coin=BTC" in p and "month=2024-01" in p for p in opened)


def test_a_day_without_data_opens_nothing(filled, monkeypatch):
    rows, opened = read_and_count(
        monkeypatch, filled, {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"},
        at(2024, 1, 20), at(2024, 1, 21),
    )
    assert rows == 0
    assert opened == set()


def test_the_plan_prunes_from_the_log_before_any_file_is_touched(filled):
    """Log-level pruning alone (partition values + ``date`` statistics) keeps one file; the
    reader's per-file guarantees are a second line, not the only one."""
    from cb_storage_dagster.storage import PartitionSlot, WriteScope

    planner = delta_scan.DeltaScanPlanner()
    snapshot = planner.snapshot(filled.delta.open("ohlcv"))
    plan = planner.plan(snapshot, WriteScope.of_slots([PartitionSlot("binance", "ETH", dt.date(2024, 2, 11))]))
    assert (plan.file_count, plan.files_in_table) == (1, len(INSTRUMENTS) * len(DAYS))


def test_a_repeated_read_derives_nothing_again_from_the_log(filled, monkeypatch):
    """What a read works out from a plan's add actions (the files it reads whole, the scope's
    filter, the row filter of a read without filters) is kept with the plan: the same read
    again derives nothing, another time range derives its own, a read with filters builds
    its row filter each time, and a new table version plans afresh."""
    from cb_storage_dagster.storage import format as storage_format
    from cb_storage_dagster.storage.delta import read as delta_read

    calls, row_filters = [], []
    real, real_range = delta_read.wholly_selected, storage_format.time_range_expression
    monkeypatch.setattr(delta_read, "wholly_selected", lambda *args: calls.append(args[2]) or real(*args))
    monkeypatch.setattr(storage_format, "time_range_expression",
                        lambda *args: row_filters.append(args) or real_range(*args))
    key = {"data_type": "ohlcv", "exchange": "binance", "coin": "ETH"}
    whole_days, part_of_a_day = (at(2024, 1, 10), at(2024, 1, 12)), (at(2024, 1, 10), at(2024, 1, 11, 0, 5))
    first = filled.get_range(key, *whole_days)
    for _ in range(3):
        assert filled.get_range(key, *whole_days).equals(first)
    assert calls == [whole_days] and row_filters == [whole_days]
    filled.get_range(key, *part_of_a_day)
    assert calls == [whole_days, part_of_a_day] and row_filters == [whole_days, part_of_a_day]
    cheap = [("close", "<", float(first["close"].median()))]
    for _ in range(2):
        filtered = filled.get_range(key, *whole_days, filters=cheap)
        assert 0 < len(filtered) < len(first) and (filtered["close"] < first["close"].median()).all()
    assert row_filters[2:] == [whole_days, whole_days]

    rewritten = ohlcv(dt.date(2024, 1, 10), n=30, coin="ETH", price=7.0)
    filled.save_entry({**key, "date": dt.date(2024, 1, 10)}, rewritten)
    again = filled.get_range(key, *whole_days)
    assert len(calls) == 3 and len(again) == len(first)
    assert again["close"].iloc[:30].tolist() == rewritten["close"].tolist()


def test_files_wholly_inside_the_request_are_read_whole_and_partial_ones_filtered(filled, monkeypatch):
    """Files whose every row the request selects (from their partition values and statistics)
    are read without evaluating the row filter; a read that cuts into a file filters it.
    Both give exactly what the filtering scan of every file gives."""
    import pandas as pd

    from cb_storage_dagster.storage.delta import read as delta_read

    key = {"data_type": "ohlcv", "exchange": "binance", "coin": "ETH"}
    ranges = [(at(2024, 1, 10), at(2024, 1, 13)), (at(2024, 1, 10, 0, 10), at(2024, 1, 12, 0, 5))]
    with monkeypatch.context() as scanning_only:  # (a manager of its own: plans keep what they derived)
        scanning_only.setattr(delta_read, "wholly_selected", lambda actions, scope, time_range: [False] * actions.num_rows)
        expected = [StorageManagerImpl(filled.backend).get_range(key, *r) for r in ranges]
    assert [len(frame) for frame in expected] == [90, 20 + 30 + 5]

    counter = filled.delta._scans._fragments
    before = counter.unfiltered_files
    pd.testing.assert_frame_equal(filled.get_range(key, *ranges[0]), expected[0])
    assert counter.unfiltered_files - before == 3
    before = counter.unfiltered_files
    pd.testing.assert_frame_equal(filled.get_range(key, *ranges[1]), expected[1])
    assert counter.unfiltered_files - before <= 1  # only the middle day may skip it (object store: per file)


class TestWhollySelected:
    """``pruning.wholly_selected``: what the log alone proves about a file."""

    @staticmethod
    def actions(first: dt.datetime, last: dt.datetime, *, coin: str | None = "BTC") -> pa.Table:
        columns = {"partition.exchange": ["binance"], "min.date": [first.date()], "max.date": [last.date()],
                   "min.timestamp": [first], "max.timestamp": [last]}
        if coin is not None:
            columns["partition.coin"] = [coin]
        return pa.table(columns)

    @staticmethod
    def scope(*days: dt.date):
        from cb_storage_dagster.storage import PartitionSlot, WriteScope

        return WriteScope.of_slots(PartitionSlot("binance", "BTC", day) for day in days)

    def test_a_day_file_inside_the_scope_and_range(self):
        from cb_storage_dagster.storage.delta.pruning import wholly_selected

        day = self.actions(at(2024, 1, 10), at(2024, 1, 10, 23, 59))
        assert wholly_selected(day, self.scope(DAYS[0]), (at(2024, 1, 10), at(2024, 1, 11))) == [True]
        assert wholly_selected(day, None, None) == [True]
        # Statistics keep milliseconds: a last timestamp 1 ms before the end may hide more.
        edge = self.actions(at(2024, 1, 10), at(2024, 1, 10, 23, 59, 59) + dt.timedelta(milliseconds=999))
        assert wholly_selected(edge, None, (at(2024, 1, 10), at(2024, 1, 11))) == [True]
        later = self.actions(at(2024, 1, 10), at(2024, 1, 11))
        assert wholly_selected(later, None, (at(2024, 1, 10), at(2024, 1, 11))) == [False]

    def test_a_range_cutting_into_the_file_or_a_day_outside_the_scope(self):
        from cb_storage_dagster.storage.delta.pruning import wholly_selected

        day = self.actions(at(2024, 1, 10), at(2024, 1, 10, 23, 59))
        assert wholly_selected(day, None, (at(2024, 1, 10, 0, 1), at(2024, 1, 11))) == [False]
        compacted = self.actions(at(2024, 1, 10), at(2024, 1, 12, 23, 59))
        assert wholly_selected(compacted, self.scope(DAYS[0], DAYS[2]), None) == [False]
        assert wholly_selected(compacted, self.scope(*DAYS[:3]), None) == [True]

    def test_files_of_several_coins_or_without_statistics_are_never_whole(self):
        from cb_storage_dagster.storage.delta.pruning import wholly_selected

        assert wholly_selected(self.actions(at(2024, 1, 10), at(2024, 1, 10, 1), coin=None), None, None) == [False]

        no_stats = self.actions(at(2024, 1, 10), at(2024, 1, 10, 1)).set_column(
            3, "min.timestamp", pa.array([None], pa.timestamp("us", tz="UTC")))
        assert wholly_selected(no_stats, None, None) == [False]
