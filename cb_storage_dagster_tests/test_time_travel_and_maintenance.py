"""Time travel (manager and IO manager) and Delta table maintenance: compaction, checkpoints,
vacuum, safety with a concurrent writer, and the Dagster maintenance job."""

import datetime as dt
import threading
import time

import dagster as dg
import pandas as pd
import pytest

from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
from cb_storage_dagster.orchestration.maintenance import (
    MAINTENANCE_JOBS,
    MAINTENANCE_SCHEDULES,
    delta_maintenance_job,
    weekly_delta_maintenance,
)
from cb_storage_dagster.orchestration.partitions import instruments_partitions, market_data_partitions
from cb_storage_dagster.orchestration.resources import LocalStorageResource
from cb_storage_dagster.storage import (
    ConfigurationError,
    LocalFileBackend,
    NotFoundError,
    StorageError,
    StorageManagerImpl,
    WriteConflictError,
)
from cb_storage_dagster.storage import maintenance as mt
from cb_storage_dagster_tests.support.data import at, ohlcv
from cb_storage_dagster_tests.support.params import both_layouts

BTC = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}
ETH = {"data_type": "ohlcv", "exchange": "binance", "coin": "ETH"}
JANUARY = [dt.date(2024, 1, d) for d in range(1, 11)]


def read_all(manager: StorageManagerImpl, key=BTC, **kw) -> pd.DataFrame:
    return manager.get_range(key, at(2000, 1, 1), at(2100, 1, 1), **kw)


def fill(manager: StorageManagerImpl, days=JANUARY, n: int = 60, keys=(BTC,)) -> None:
    for day in days:
        for key in keys:
            manager.save_entry({**key, "date": day}, ohlcv(day, n=n, coin=key["coin"], price=100.0 + day.day))


def active_files(manager: StorageManagerImpl, table: str = "ohlcv") -> int:
    return len(manager.delta.open(table).file_uris())


# -- time travel ---------------------------------------------------------------------------
# Blob storage reports commit times with one-second resolution (HTTP Last-Modified).
PAUSE = 1.1


@both_layouts
class TestTimeTravel:
    def test_as_of_timestamp_reads_the_table_as_it_was(self, manager):
        manager.save_entry(BTC, ohlcv("2024-01-02", n=10))
        time.sleep(PAUSE)  # deliberate: distinct commit timestamps, not synchronisation
        between = dt.datetime.now(dt.timezone.utc)
        time.sleep(PAUSE)  # deliberate: distinct commit timestamps, not synchronisation
        manager.save_entry(BTC, ohlcv("2024-01-02", n=3, price=500.0))

        then = manager.get_range(BTC, at(2024, 1, 2), at(2024, 1, 3), as_of_timestamp=between)
        now = manager.get_range(BTC, at(2024, 1, 2), at(2024, 1, 3))
        assert len(then) == 10 and then["open"].min() == 100.0
        assert len(now) == 3 and now["open"].min() == 500.0

    def test_as_of_timestamp_accepts_other_time_zones_and_iso_strings(self, manager):
        manager.save_entry(BTC, ohlcv("2024-01-02", n=10))
        time.sleep(PAUSE)  # deliberate: distinct commit timestamps, not synchronisation
        between = dt.datetime.now(dt.timezone.utc)
        time.sleep(PAUSE)  # deliberate: distinct commit timestamps, not synchronisation
        manager.save_entry(BTC, ohlcv("2024-01-03", n=10))
        tokyo = between.astimezone(dt.timezone(dt.timedelta(hours=9)))
        for moment in (tokyo, between.isoformat()):
            assert len(manager.get_range(BTC, at(2024, 1, 1), at(2024, 1, 5), as_of_timestamp=moment)) == 10

    def test_a_naive_as_of_timestamp_is_refused(self, manager):
        from cb_storage_dagster.storage import TimeRangeError

        manager.save_entry(BTC, ohlcv("2024-01-02"))
        with pytest.raises(TimeRangeError):
            manager.get_range(BTC, at(2024, 1, 2), at(2024, 1, 3), as_of_timestamp=dt.datetime(2024, 1, 1))

    def test_a_version_that_does_not_exist_is_not_found(self, manager):
        manager.save_entry(BTC, ohlcv("2024-01-02"))
        with pytest.raises(NotFoundError):
            manager.get_range(BTC, at(2024, 1, 2), at(2024, 1, 3), as_of_version=99)
        with pytest.raises(NotFoundError):
            manager.get_range(BTC, at(2024, 1, 2), at(2024, 1, 3), as_of_version=1, table="nothing_here")

    def test_old_versions_survive_compaction_until_vacuum(self, manager):
        fill(manager, JANUARY[:3])
        version = manager.table_version("ohlcv")
        manager.save_entry({**BTC, "date": JANUARY[0]}, ohlcv(JANUARY[0], n=5, price=900.0))
        mt.compact_table(manager.backend, "ohlcv")

        pinned = read_all(manager, as_of_version=version)
        assert len(pinned) == 180 and pinned["open"].max() < 900.0
        assert len(read_all(manager)) == 125

        mt.vacuum_table(manager.backend, "ohlcv", retention_hours=0, min_retention_hours=0)
        assert len(read_all(manager)) == 125
        with pytest.raises(StorageError):
            read_all(manager, as_of_version=version)


class TestIOManagerTimeTravel:
    @pytest.fixture
    def instance(self):
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions(instruments_partitions.name, ["binance:BTC"])
            yield instance

    def test_a_downstream_input_pinned_to_a_recorded_version_reproduces_a_past_run(self, tmp_path, instance):
        io_manager = MarketDataIOManager(storage=LocalStorageResource(root_path=str(tmp_path / "store")))
        partitions = market_data_partitions("2024-01-01")

        @dg.asset(partitions_def=partitions, metadata={"data_type": "ohlcv"}, io_manager_key="market_data_io_manager")
        def candles(context: dg.AssetExecutionContext) -> pd.DataFrame:
            return ohlcv("2024-01-02", n=int(context.run.tags.get("rows", "10")))

        def run(assets, **kwargs):
            return dg.materialize(assets, resources={"market_data_io_manager": io_manager}, instance=instance, **kwargs)

        first = run([candles], partition_key="2024-01-02|binance:BTC", tags={"rows": "10"})
        recorded = first.asset_materializations_for_node("candles")[0].metadata["table_version"].value
        run([candles], partition_key="2024-01-02|binance:BTC", tags={"rows": "4"})
        seen: dict[str, int] = {}

        def downstream(version: int | None):
            metadata = {} if version is None else {"as_of_version": version}

            @dg.asset(name="reproduced", ins={"candles": dg.AssetIn(metadata=metadata)},
                      metadata={"data_type": "ohlcv"}, io_manager_key="market_data_io_manager")
            def reproduced(candles: pd.DataFrame) -> None:
                seen["rows"] = len(candles)

            return reproduced

        result = run([candles.to_source_asset(), downstream(recorded)])
        assert seen["rows"] == 10
        loaded = [e for e in result.all_events if e.event_type_value == "LOADED_INPUT"]
        assert loaded[0].event_specific_data.metadata["as_of_version"].value == recorded
        run([candles.to_source_asset(), downstream(None)])
        assert seen["rows"] == 4


# -- maintenance ---------------------------------------------------------------------------
class TestCompaction:
    def test_compaction_reduces_files_and_keeps_rows_identical(self, manager):
        fill(manager, JANUARY + [dt.date(2024, 2, 1), dt.date(2024, 2, 2)], keys=(BTC, ETH))
        before = {k["coin"]: read_all(manager, k) for k in (BTC, ETH)}
        assert active_files(manager) == 24

        result = mt.compact_table(manager.backend, "ohlcv")

        assert (result.before.files, result.after.files) == (24, 4)  # 2 coins x 2 months
        assert result.files_removed == 24 and result.files_added == 4
        assert len(result.partitions) == 4 and result.before.bytes > 0 and result.after.bytes > 0
        assert result.version_after == result.version_before + 2  # one optimize commit per month
        for key in (BTC, ETH):
            after = read_all(manager, key)
            pd.testing.assert_frame_equal(after, before[key["coin"]])
        assert manager.list_dates("binance", "BTC", "ohlcv") == JANUARY + [dt.date(2024, 2, 1), dt.date(2024, 2, 2)]

    def test_instruments_of_a_month_are_rewritten_in_groups_one_commit_each(self, manager, monkeypatch):
        from cb_storage_dagster.storage.maintenance import instrument_rewrite

        fill(manager, list(reversed(JANUARY)), keys=(BTC, ETH))
        before = {k["coin"]: read_all(manager, k) for k in (BTC, ETH)}
        sizes = [size for *_, size in instrument_rewrite.months_to_rewrite(
            manager.delta.open("ohlcv"), [{"exchange": "binance", "coin": c, "month": "2024-01"} for c in ("BTC", "ETH")])]
        monkeypatch.setattr(instrument_rewrite, "GROUP_BYTES", max(sizes) + 1)  # one instrument-month each

        result = mt.compact_table(manager.backend, "ohlcv")

        assert result.version_after == result.version_before + 2  # one overwrite per group
        assert (result.files_removed, result.files_added, result.after.files) == (2 * len(JANUARY), 2, 2)
        for key in (BTC, ETH):
            after = read_all(manager, key)
            pd.testing.assert_frame_equal(after, before[key["coin"]])
            assert after["timestamp"].is_monotonic_increasing
        history = manager.delta.open("ohlcv").history(2)
        assert all(entry["operation"] == "WRITE" for entry in history)
        assert mt.compact_table(manager.backend, "ohlcv").partitions == []  # nothing left to rewrite

    def test_an_instrument_month_too_large_for_a_group_is_z_ordered_alone(self, manager, monkeypatch):
        from cb_storage_dagster.storage.maintenance import instrument_rewrite

        fill(manager, list(reversed(JANUARY)), keys=(BTC, ETH))
        before = {k["coin"]: read_all(manager, k) for k in (BTC, ETH)}
        monkeypatch.setattr(instrument_rewrite, "GROUP_BYTES", 1)  # every instrument-month is "large"

        result = mt.compact_table(manager.backend, "ohlcv")

        assert result.version_after == result.version_before + 2  # one z-order commit per instrument-month
        assert (result.files_removed, result.files_added, result.after.files) == (2 * len(JANUARY), 2, 2)
        assert [entry["operation"] for entry in manager.delta.open("ohlcv").history(2)] == ["OPTIMIZE"] * 2
        for key in (BTC, ETH):
            pd.testing.assert_frame_equal(read_all(manager, key), before[key["coin"]])

    def test_compacted_files_are_sorted_by_time(self, manager):
        coins = [{**BTC, "coin": f"C{i}"} for i in range(12)]
        fill(manager, list(reversed(JANUARY)), keys=coins)
        mt.compact_table(manager.backend, "ohlcv")
        delta_table = manager.delta.open("ohlcv")
        from cb_storage_dagster.storage.delta.sorting import is_sorted

        plan = manager.delta._scans.plan(manager.delta._scans.snapshot(delta_table), None)
        assert plan.file_count == len(coins)
        for fragment in delta_table.to_pyarrow_dataset().get_fragments():  # each file as stored
            times = fragment.to_table(columns=["timestamp"])
            assert times.num_rows == 60 * len(JANUARY)
            assert is_sorted(times, ["timestamp"], single_instrument=True)

    def test_unsorted_compaction_still_reads_in_time_order(self, manager):
        fill(manager, JANUARY)
        manager.save_entry({**BTC, "date": JANUARY[4]}, ohlcv(JANUARY[4], n=60, price=7.0))
        expected = read_all(manager)
        mt.compact_table(manager.backend, "ohlcv", sort_by_time=False)
        frame = read_all(manager)
        assert frame["timestamp"].is_monotonic_increasing
        pd.testing.assert_frame_equal(frame, expected)

    def test_only_partitions_written_since_the_last_maintenance_are_compacted(self, manager):
        fill(manager, JANUARY + [dt.date(2024, 2, 1), dt.date(2024, 2, 2)])
        first = mt.compact_table(manager.backend, "ohlcv")
        assert len(first.partitions) == 2
        assert mt.compact_table(manager.backend, "ohlcv").partitions == []  # nothing new

        manager.save_entry({**BTC, "date": dt.date(2024, 2, 3)}, ohlcv("2024-02-3", n=60))
        delta_table = manager.delta.open("ohlcv")
        written = mt.partitions_written_since_last_maintenance(delta_table)
        assert {"coin": "BTC", "exchange": "binance", "month": "2024-02"} in written
        again = mt.compact_table(manager.backend, "ohlcv")
        assert again.partitions == [{"coin": "BTC", "exchange": "binance", "month": "2024-02"}]
        assert again.after.files == 2

    def test_explicit_partitions(self, manager):
        fill(manager, JANUARY + [dt.date(2024, 2, 1), dt.date(2024, 2, 2)])
        result = mt.compact_table(manager.backend, "ohlcv", partitions=[
            {"exchange": "binance", "coin": "BTC", "month": "2024-02"}])
        assert (result.before.files, result.after.files) == (12, 11)

    def test_a_missing_table_is_not_found(self, manager):
        with pytest.raises(NotFoundError):
            mt.compact_table(manager.backend, "ohlcv")


@both_layouts
class TestCheckpointAndVacuum:
    def test_checkpoint_writes_a_checkpoint_file(self, manager):
        fill(manager, JANUARY[:3])
        result = mt.checkpoint_table(manager.backend, "ohlcv")
        assert result.version == manager.table_version("ohlcv")
        assert result.log_after.files == result.log_before.files + 2  # checkpoint + _last_checkpoint
        assert any(name.endswith(".checkpoint.parquet") for name in manager.backend.list_items("ohlcv/_delta_log"))
        assert len(read_all(manager)) == 180

    def test_vacuum_keeps_files_inside_the_retention_window(self, manager):
        fill(manager, JANUARY[:3])
        mt.compact_table(manager.backend, "ohlcv")
        result = mt.vacuum_table(manager.backend, "ohlcv")  # 7 days: everything removed is recent
        assert result.files_deleted == [] and result.before == result.after
        assert result.before.files == 4  # 3 day files (still needed by older versions) + 1 compacted

    def test_vacuum_removes_only_unreferenced_files_beyond_retention(self, manager):
        fill(manager, JANUARY[:3])
        mt.compact_table(manager.backend, "ohlcv")
        active = {p.rsplit("/", 1)[-1] for p in manager.delta.open("ohlcv").file_uris()}

        dry = mt.vacuum_table(manager.backend, "ohlcv", retention_hours=0, min_retention_hours=0, dry_run=True)
        assert len(dry.files_deleted) == 3 and dry.after == dry.before

        result = mt.vacuum_table(manager.backend, "ohlcv", retention_hours=0, min_retention_hours=0)
        assert sorted(result.files_deleted) == sorted(dry.files_deleted)
        assert not active & {p.rsplit("/", 1)[-1] for p in result.files_deleted}
        assert (result.before.files, result.after.files) == (4, 1)
        assert result.after.bytes < result.before.bytes
        assert len(read_all(manager)) == 180

    @pytest.mark.parametrize("retention", [0, 24, 167])
    def test_a_retention_below_the_minimum_is_refused_and_nothing_is_deleted(self, manager, retention):
        fill(manager, JANUARY[:2])
        mt.compact_table(manager.backend, "ohlcv")
        with pytest.raises(ConfigurationError, match="below the minimum of 168 h"):
            mt.vacuum_table(manager.backend, "ohlcv", retention_hours=retention)
        assert mt.vacuum_table(manager.backend, "ohlcv", retention_hours=0, min_retention_hours=0,
                               dry_run=True).before.files == 3

    def test_maintain_table_reports_before_and_after(self, manager):
        fill(manager, JANUARY[:5])
        result = mt.maintain_table(manager.backend, "ohlcv", retention_hours=0, min_retention_hours=0)
        summary = result.summary
        assert (summary["active_files_before"], summary["active_files_after"]) == (5, 1)
        assert (summary["stored_files_before"], summary["stored_files_after"]) == (6, 1)
        assert summary["files_vacuumed"] == 5 and summary["partitions_compacted"] == 1
        assert summary["log_files_after"] > 0
        assert len(read_all(manager)) == 300

    def test_find_delta_tables(self, manager):
        fill(manager, JANUARY[:1])
        manager.save_entry(BTC, ohlcv("2024-01-02"), table="prefix/ohlcv_1m")
        manager.save_entry(BTC, ohlcv("2024-01-02"), "parquet", table="files_only")
        assert mt.find_delta_tables(manager.backend) == ["ohlcv", "prefix/ohlcv_1m"]


class TestConcurrentWriters:
    def test_a_writer_running_during_compaction_loses_nothing(self, tmp_path):
        backend = LocalFileBackend(tmp_path / "store")
        setup = StorageManagerImpl(backend)
        days = JANUARY[:6]
        fill(setup, days)
        last_price: dict[dt.date, float] = {d: 100.0 + d.day for d in days}
        stop = threading.Event()
        errors: list[BaseException] = []
        writes = 0

        def writer() -> None:
            nonlocal writes
            manager = StorageManagerImpl(backend)  # its own table cache, like another process
            i = 0
            try:
                while not stop.is_set() or writes < 10:
                    day = days[i % len(days)]
                    price = 1000.0 + i
                    manager.save_entry({**BTC, "date": day}, ohlcv(day, n=60, price=price))
                    last_price[day] = price
                    writes += 1
                    i += 1
                    time.sleep(0.005)  # a real writer has gaps; without them no optimistic commit can win
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        thread = threading.Thread(target=writer)
        thread.start()
        compactions = []
        lost_races: list[WriteConflictError] = []
        try:
            deadline = time.monotonic() + 30
            while (len(compactions) < 6 or writes < 10) and time.monotonic() < deadline:
                try:
                    compactions.append(mt.compact_table(backend, "ohlcv", partitions=[
                        {"exchange": "binance", "coin": "BTC", "month": "2024-01"}], backoff_seconds=0.05))
                except WriteConflictError as lost:  # a compaction may give up on a busy table: typed, nothing lost
                    lost_races.append(lost)
        finally:
            stop.set()
            thread.join(timeout=60)
        assert not errors, errors
        assert writes >= 10 and len(compactions) >= 6, (writes, len(compactions), lost_races)

        frame = read_all(StorageManagerImpl(backend))
        assert frame.groupby("date").size().to_dict() == {d: 60 for d in days}  # no loss, no duplicates
        for day in days:
            assert frame[frame["date"] == day]["open"].min() == last_price[day]
        assert frame["timestamp"].is_monotonic_increasing


class TestMaintenanceJob:
    def test_the_job_maintains_every_delta_table_with_metadata(self, tmp_path):
        root = tmp_path / "store"
        manager = StorageManagerImpl(LocalFileBackend(root))
        fill(manager, JANUARY[:4])
        fill(manager, JANUARY[:3], keys=(ETH,))
        manager.save_entry(BTC, ohlcv("2024-01-02"), table="prefix/ohlcv_1d")
        manager.save_entry(BTC, ohlcv("2024-01-03"), table="prefix/ohlcv_1d")

        result = delta_maintenance_job.execute_in_process(
            resources={"storage": LocalStorageResource(root_path=str(root))},
            run_config={"ops": {
                "find_delta_tables": {"config": {}},
                "maintain_delta_table": {"config": {"retention_hours": 0, "min_retention_hours": 0}},
            }},
        )

        assert result.success
        per_table = result.output_for_node("maintain_delta_table")
        assert {k: (v["active_files_before"], v["active_files_after"]) for k, v in per_table.items()} == {
            "ohlcv": (7, 2), "prefix_ohlcv_1d": (2, 1)}
        totals = result.output_for_node("summarize_delta_maintenance")
        assert totals["tables"] == 2 and totals["stored_files_after"] == 3
        events = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
        metadata = [e.event_specific_data.metadata for e in events if e.step_key.startswith("maintain_delta_table")]
        assert all({"active_files_before", "active_bytes_after", "stored_files_after"} <= set(m) for m in metadata)
        assert len(read_all(manager)) == 240

    def test_the_default_config_refuses_nothing_and_vacuums_nothing_recent(self, tmp_path):
        root = tmp_path / "store"
        fill(StorageManagerImpl(LocalFileBackend(root)), JANUARY[:2])
        result = delta_maintenance_job.execute_in_process(
            resources={"storage": LocalStorageResource(root_path=str(root))})
        assert result.success
        assert result.output_for_node("summarize_delta_maintenance")["files_vacuumed"] == 0

    def test_schedule_and_exports(self):
        assert MAINTENANCE_JOBS == [delta_maintenance_job]
        assert MAINTENANCE_SCHEDULES == [weekly_delta_maintenance]
        assert weekly_delta_maintenance.cron_schedule == "0 3 * * 0"
        assert weekly_delta_maintenance.execution_timezone == "UTC"
        assert weekly_delta_maintenance.job_name == "delta_maintenance_job"
