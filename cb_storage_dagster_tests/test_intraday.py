"""Intraday merges and order-book snapshots, from schedule ticks to stored rows.

Each test evaluates the real schedule for a tick, executes the runs it requests (their tags
and partitions as the daemon would launch them) with the real MarketDataIOManager on local
disk, and compares what is stored with what the synthetic source reports. The stored-rows
tests run on both profiles' pipelines (``build_pipeline``): one run over every registered
instrument per tick (``instrument``), one run per exchange per tick (``exchange``, with the
exchange Delta layout the code location gives that profile).
"""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from cb_storage_dagster.domain.keys import DataType
from cb_storage_dagster.orchestration import SyntheticMarketDataSource, build_pipeline
from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
from cb_storage_dagster.orchestration.resources import LocalStorageResource
from cb_storage_dagster.transforms import trades_to_ohlcv

INSTRUMENTS = ["binance:BTC", "coinbase:ETH"]
DAY = dt.date(2024, 1, 2)
SOURCE = SyntheticMarketDataSource(trades_per_day=960, depth=3)


def at(hour: int, minute: int, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=dt.UTC)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("instruments", INSTRUMENTS)
        yield instance


@pytest.fixture(params=["instrument", "exchange"])
def pipeline(request, instrument_pipeline):
    """Each profile's pipeline; the exchange profile's universe is ``INSTRUMENTS``."""
    return instrument_pipeline if request.param == "instrument" else build_pipeline("exchange", INSTRUMENTS)


@pytest.fixture
def io_manager(tmp_path, pipeline) -> MarketDataIOManager:
    return MarketDataIOManager(storage=LocalStorageResource(root_path=str(tmp_path / "store")),
                               delta_layout=pipeline.profile.value)


@pytest.fixture
def repository(pipeline, io_manager) -> dg.RepositoryDefinition:
    return dg.Definitions(
        assets=pipeline.assets.all, asset_checks=pipeline.checks.all, jobs=pipeline.jobs, schedules=pipeline.schedules,
        resources={"market_data_io_manager": io_manager, "market_data_source": SOURCE},
    ).get_repository_def()


def partition_key(pipeline, instrument: str, day: dt.date = DAY) -> str:
    """The partition of ``instrument``'s day in ``pipeline``'s profile."""
    unit = instrument.split(":")[0] if pipeline.profile == "exchange" else instrument
    return f"{day}|{unit}"


def ticks(schedule, instance, moment: dt.datetime, repository=None) -> list[dg.RunRequest]:
    """The run requests of ``schedule`` at ``moment`` (a request naming a partition is checked
    against ``repository``'s job, as the daemon does)."""
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=moment, repository_def=repository
    ) as context:
        return list(schedule.evaluate_tick(context).run_requests)


def tick(schedule, instance, moment: dt.datetime) -> dg.RunRequest:
    [request] = ticks(schedule, instance, moment)
    return request


def launch(repository, instance, schedule, moment: dt.datetime) -> list[dg.ExecuteInProcessResult]:
    """Evaluate ``schedule`` at ``moment`` and execute every run it requests."""
    results = []
    for request in ticks(schedule, instance, moment, repository):
        job = repository.get_job(schedule.job_name)
        result = job.execute_in_process(
            instance=instance, tags=request.tags, partition_key=request.partition_key, raise_on_error=False)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        results.append(result)
    return results


def stored(io_manager, data_type: DataType, table: str) -> pd.DataFrame:
    return io_manager.manager.read_partitions(data_type, None, table=table).to_pandas().drop(columns=["date"])


def source_trades(until: dt.datetime | None = None) -> pd.DataFrame:
    frames = []
    for instrument in sorted(INSTRUMENTS):
        exchange, coin = instrument.split(":")
        frame = SOURCE.fetch_trades(exchange, coin, DAY)
        frames.append(frame if until is None else frame[frame["timestamp"] < until])
    return pd.concat(frames, ignore_index=True)


def assert_same_rows(actual: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    actual = actual.sort_values(keys).reset_index(drop=True)
    expected = expected.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(actual[list(expected.columns)], expected, check_dtype=False)


def versions(io_manager) -> tuple[int | None, int | None]:
    manager = io_manager.manager
    return (manager.table_version("trades", table="trades"), manager.table_version("ohlcv", table="ohlcv_1m"))


class TestIntradaySchedule:
    @pytest.fixture
    def intraday_market_data_schedule(self, instrument_pipeline):
        return instrument_pipeline.schedule("intraday_market_data_schedule")

    def test_a_tick_requests_one_merge_run_over_the_day_for_every_instrument(
        self, instance, intraday_market_data_schedule
    ):
        request = tick(intraday_market_data_schedule, instance, at(12, 15))
        assert request.tags["cb_storage/write_mode"] == "merge"
        assert (request.tags["cb_storage/window_start"], request.tags["cb_storage/window_end"]) == (
            "2024-01-02T11:45:00+00:00", "2024-01-02T12:15:00+00:00")
        assert request.tags["dagster/asset_partition_range_start"] == "2024-01-02|binance:BTC"
        assert request.tags["dagster/asset_partition_range_end"] == "2024-01-02|coinbase:ETH"

    def test_the_midnight_tick_closes_the_previous_day_and_the_first_window_starts_at_midnight(
        self, instance, intraday_market_data_schedule
    ):
        midnight = tick(intraday_market_data_schedule, instance, at(0, 0, DAY))
        assert midnight.tags["cb_storage/window_start"] == "2024-01-01T23:30:00+00:00"
        assert midnight.tags["dagster/asset_partition_range_start"] == "2024-01-01|binance:BTC"
        first = tick(intraday_market_data_schedule, instance, at(0, 15))
        assert first.tags["cb_storage/window_start"] == "2024-01-02T00:00:00+00:00"

    def test_the_exchange_profile_requests_one_merge_run_per_exchange(self, instance):
        pipeline = build_pipeline("exchange", INSTRUMENTS)
        schedule = pipeline.schedule("intraday_market_data_schedule")
        repository = dg.Definitions(
            assets=pipeline.assets.all, asset_checks=pipeline.checks.all, jobs=pipeline.jobs,
            schedules=pipeline.schedules,
            resources={"market_data_io_manager": dg.InMemoryIOManager(), "market_data_source": SOURCE},
        ).get_repository_def()
        requests = ticks(schedule, instance, at(12, 15), repository)
        assert [str(r.partition_key) for r in requests] == ["2024-01-02|binance", "2024-01-02|coinbase"]
        for request in requests:
            assert request.tags["cb_storage/write_mode"] == "merge"
            assert (request.tags["cb_storage/window_start"], request.tags["cb_storage/window_end"]) == (
                "2024-01-02T11:45:00+00:00", "2024-01-02T12:15:00+00:00")
        assert len({r.run_key for r in requests}) == 2
        [midnight, _] = ticks(schedule, instance, at(0, 0, DAY), repository)
        assert str(midnight.partition_key) == "2024-01-01|binance"
        assert midnight.tags["cb_storage/window_start"] == "2024-01-01T23:30:00+00:00"

    def test_no_instruments_skips_with_a_reason(self, intraday_market_data_schedule):
        with dg.instance_for_test() as empty, dg.build_schedule_context(
            instance=empty, scheduled_execution_time=at(12, 15)
        ) as context:
            result = intraday_market_data_schedule.evaluate_tick(context)
        assert not result.run_requests and "No instruments registered" in result.skip_message


class TestIntradayMerges:
    def test_merged_ticks_hold_the_source_rows_so_far_and_the_nightly_replace_holds_the_day(
        self, pipeline, repository, instance, io_manager
    ):
        intraday_market_data_schedule = pipeline.schedule("intraday_market_data_schedule")
        for minute in (15, 30, 45):  # the day's first three ticks
            launch(repository, instance, intraday_market_data_schedule, at(0, minute))
        trades_so_far = source_trades(until=at(0, 45))
        assert len(trades_so_far) == 2 * 30
        assert_same_rows(stored(io_manager, DataType.TRADES, "trades"), trades_so_far,
                         ["exchange", "coin", "timestamp", "trade_id"])
        assert_same_rows(stored(io_manager, DataType.OHLCV, "ohlcv_1m"), trades_to_ohlcv(trades_so_far),
                         ["exchange", "coin", "timestamp"])

        before = versions(io_manager)
        again = launch(repository, instance, intraday_market_data_schedule, at(0, 45))  # the same tick
        assert versions(io_manager) == before  # merging the same rows again commits nothing
        for result in again:
            for event in result.asset_materializations_for_node("trades"):  # one per partition
                assert (event.metadata["rows_inserted"].value, event.metadata["rows_updated"].value) == (0, 0)

        nightly = repository.get_job("market_data_job")
        for instrument in INSTRUMENTS:
            result = nightly.execute_in_process(instance=instance, partition_key=partition_key(pipeline, instrument))
            assert result.success
        assert_same_rows(stored(io_manager, DataType.TRADES, "trades"), source_trades(),
                         ["exchange", "coin", "timestamp", "trade_id"])
        assert_same_rows(stored(io_manager, DataType.OHLCV, "ohlcv_1m"), trades_to_ohlcv(source_trades()),
                         ["exchange", "coin", "timestamp"])


class TestOrderBookSnapshots:
    def test_each_tick_merges_one_snapshot_per_instrument_into_the_day(
        self, pipeline, repository, instance, io_manager
    ):
        order_book_snapshot_schedule = pipeline.schedule("order_book_snapshot_schedule")
        moments = [at(10, 0), at(10, 15)]
        for moment in moments:
            launch(repository, instance, order_book_snapshot_schedule, moment)
        expected = pd.concat(
            [SOURCE.fetch_order_book_snapshot(*i.split(":"), m) for m in moments for i in INSTRUMENTS],
            ignore_index=True,
        )
        keys = ["exchange", "coin", "timestamp", "side", "level"]
        assert_same_rows(stored(io_manager, DataType.ORDER_BOOK, "order_book"), expected, keys)

        version = io_manager.manager.table_version("order_book", table="order_book")
        launch(repository, instance, order_book_snapshot_schedule, moments[-1])  # a re-run of the tick
        assert io_manager.manager.table_version("order_book", table="order_book") == version

        # The nightly run leaves the day's snapshots alone and says why.
        result = repository.get_job("market_data_job").execute_in_process(
            instance=instance, partition_key=partition_key(pipeline, "binance:BTC"))
        assert result.success
        assert not result.asset_materializations_for_node("order_book")
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
        assert any("keep no order-book history" in m for m in logs)
        assert_same_rows(stored(io_manager, DataType.ORDER_BOOK, "order_book"), expected, keys)

    def test_a_backfill_of_past_days_stores_no_order_book_and_explains_why(
        self, pipeline, repository, instance, io_manager
    ):
        job = repository.get_job("market_data_job")
        result = job.execute_in_process(instance=instance, tags={
            "dagster/asset_partition_range_start": partition_key(pipeline, "binance:BTC", dt.date(2024, 1, 1)),
            "dagster/asset_partition_range_end": partition_key(pipeline, "binance:BTC", dt.date(2024, 1, 3)),
        }, raise_on_error=False)
        assert result.success
        assert not result.asset_materializations_for_node("order_book")
        assert len(result.asset_materializations_for_node("trades")) == 3
        logs = " ".join(e.user_message for e in instance.all_logs(result.run_id))
        assert "cannot be fetched for a past day" in logs
        assert io_manager.manager.table_version("order_book", table="order_book") is None

    def test_a_snapshot_for_another_day_than_the_partition_fails_clearly(self, pipeline, repository, instance):
        job = repository.get_job("order_book_snapshot_job")
        result = job.execute_in_process(
            instance=instance, partition_key=partition_key(pipeline, "binance:BTC"), raise_on_error=False,
            tags={"cb_storage/snapshot_at": "2024-01-03T10:00:00+00:00", "cb_storage/write_mode": "merge"},
        )
        assert not result.success
        [failure] = [e for e in result.all_events if e.is_step_failure]
        assert "belongs to 2024-01-03, not to 2024-01-02" in failure.step_failure_data.user_failure_data.description
