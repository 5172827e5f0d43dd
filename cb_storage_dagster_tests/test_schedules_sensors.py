"""The daily schedule and the instruments sensor, evaluated against an ephemeral instance."""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pytest

from cb_storage_dagster.domain.errors import InvalidKeyError
from cb_storage_dagster.orchestration import SyntheticMarketDataSource, configured_instruments
from cb_storage_dagster.orchestration.schedules import previous_utc_day
from cb_storage_dagster.orchestration.sensors import (
    DEFAULT_INSTRUMENTS,
    INSTRUMENTS_ENV_VAR,
    INSTRUMENTS_FILE_ENV_VAR,
    instrument_changes,
)
from cb_storage_dagster_tests.support.sensors import apply_partition_requests

INSTRUMENTS = ["binance:BTC", "binance:ETH", "coinbase:BTC"]
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
MARCH_1ST_0030 = dt.datetime(2024, 3, 1, 0, 30, tzinfo=dt.UTC)


@pytest.fixture
def daily_market_data_schedule(instrument_pipeline) -> dg.ScheduleDefinition:
    return instrument_pipeline.schedule("daily_market_data_schedule")


@pytest.fixture
def instruments_sensor(instrument_pipeline) -> dg.SensorDefinition:
    return instrument_pipeline.sensor("instruments_sensor")


def repository(pipeline) -> dg.RepositoryDefinition:
    """The pipeline's definitions with in-memory stand-ins for the lead's resources."""
    return dg.Definitions(
        assets=pipeline.assets.all,
        jobs=pipeline.jobs,
        schedules=pipeline.schedules,
        sensors=pipeline.sensors,
        resources={
            "market_data_io_manager": dg.InMemoryIOManager(),
            "market_data_source": SyntheticMarketDataSource(),
        },
    ).get_repository_def()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    # A throw-away instance in a temporary folder: schedule contexts need a persistent
    # instance (they re-open it from its reference), an in-memory one is refused.
    with dg.instance_for_test() as instance:
        yield instance


def registered(instance: dg.DagsterInstance) -> list[str]:
    return sorted(instance.get_dynamic_partitions("instruments"))


@pytest.fixture
def tick(instruments_sensor):
    def evaluate(instance: dg.DagsterInstance):
        """Evaluate the sensor once and apply its partition requests, as the daemon would."""
        result = instruments_sensor(dg.build_sensor_context(instance=instance))
        if isinstance(result, dg.SensorResult):
            apply_partition_requests(instance, result)
        return result

    return evaluate


class TestDailySchedule:
    def test_runs_at_half_past_midnight_utc(self, daily_market_data_schedule):
        assert daily_market_data_schedule.cron_schedule == "30 0 * * *"
        assert daily_market_data_schedule.execution_timezone == "UTC"
        assert daily_market_data_schedule.job_name == "market_data_job"

    def test_requests_yesterday_for_every_registered_instrument_in_one_range_run(
        self, instance, daily_market_data_schedule
    ):
        instance.add_dynamic_partitions("instruments", INSTRUMENTS)
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=MARCH_1ST_0030) as context:
            [request] = daily_market_data_schedule(context)
        assert request.partition_key is None  # a range, not one partition
        assert request.tags[RANGE_START] == "2024-02-29|binance:BTC"
        assert request.tags[RANGE_END] == "2024-02-29|coinbase:BTC"
        assert request.run_key == "2024-02-29|binance:BTC..2024-02-29|coinbase:BTC"

    def test_the_day_is_the_previous_utc_day_whatever_the_time_zone(self):
        tokyo = dt.timezone(dt.timedelta(hours=9))
        # 08:00 in Tokyo on March 2nd is 23:00 UTC on March 1st: yesterday is Feb 29th.
        assert previous_utc_day(dt.datetime(2024, 3, 2, 8, 0, tzinfo=tokyo)) == dt.date(2024, 2, 29)
        assert previous_utc_day(dt.datetime(2024, 1, 1, 0, 30)) == dt.date(2023, 12, 31)

    def test_a_tick_passes_dagster_validation_of_job_and_partitions(
        self, instance, daily_market_data_schedule, instrument_pipeline
    ):
        instance.add_dynamic_partitions("instruments", INSTRUMENTS)
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=MARCH_1ST_0030,
            repository_def=repository(instrument_pipeline),
        ) as context:
            [request] = daily_market_data_schedule.evaluate_tick(context).run_requests
        job = repository(instrument_pipeline).get_job("market_data_job")
        keys = job.partitions_def.get_partition_keys_in_range(
            request.partition_key_range, dynamic_partitions_store=instance)
        assert sorted(keys) == sorted(f"2024-02-29|{i}" for i in INSTRUMENTS)

    def test_skips_while_no_instrument_is_registered(self, instance, daily_market_data_schedule):
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=MARCH_1ST_0030) as context:
            data = daily_market_data_schedule.evaluate_tick(context)
        assert not data.run_requests
        assert "instruments_sensor" in data.skip_message


class TestInstrumentsSensor:
    def test_is_running_by_default(self, instruments_sensor):
        assert instruments_sensor.default_status == dg.DefaultSensorStatus.RUNNING

    def test_first_tick_registers_the_default_instruments(self, instance, monkeypatch, tick):
        monkeypatch.delenv(INSTRUMENTS_ENV_VAR, raising=False)
        result = tick(instance)
        assert isinstance(result, dg.SensorResult)
        assert registered(instance) == sorted(DEFAULT_INSTRUMENTS.split(","))

    def test_adds_configured_instruments_then_follows_changes(self, instance, monkeypatch, tick):
        monkeypatch.setenv(INSTRUMENTS_ENV_VAR, "binance:BTC, binance:ETH")
        result = tick(instance)
        [add] = result.dynamic_partitions_requests
        assert isinstance(add, dg.AddDynamicPartitionsRequest)
        assert list(add.partition_keys) == ["binance:BTC", "binance:ETH"]
        assert registered(instance) == ["binance:BTC", "binance:ETH"]

        monkeypatch.setenv(INSTRUMENTS_ENV_VAR, "binance:BTC,kraken:SOL")
        result = tick(instance)
        add, delete = result.dynamic_partitions_requests
        assert isinstance(add, dg.AddDynamicPartitionsRequest)
        assert list(add.partition_keys) == ["kraken:SOL"]
        assert isinstance(delete, dg.DeleteDynamicPartitionsRequest)
        assert list(delete.partition_keys) == ["binance:ETH"]
        assert registered(instance) == ["binance:BTC", "kraken:SOL"]

    def test_skips_when_nothing_changed(self, instance, monkeypatch, tick):
        monkeypatch.setenv(INSTRUMENTS_ENV_VAR, "binance:BTC,binance:ETH")
        tick(instance)
        monkeypatch.setenv(INSTRUMENTS_ENV_VAR, "binance:ETH, binance:BTC,binance:BTC")
        result = tick(instance)
        assert isinstance(result, dg.SkipReason)
        assert registered(instance) == ["binance:BTC", "binance:ETH"]

    def test_removing_every_but_one_instrument_only_deletes(self, instance, monkeypatch, tick):
        instance.add_dynamic_partitions("instruments", INSTRUMENTS)
        monkeypatch.setenv(INSTRUMENTS_ENV_VAR, "coinbase:BTC")
        [delete] = tick(instance).dynamic_partitions_requests
        assert isinstance(delete, dg.DeleteDynamicPartitionsRequest)
        assert registered(instance) == ["coinbase:BTC"]

    def test_a_typo_fails_the_tick_instead_of_deleting_instruments(self, instance, monkeypatch, tick):
        instance.add_dynamic_partitions("instruments", INSTRUMENTS)
        monkeypatch.setenv(INSTRUMENTS_ENV_VAR, "binance:BTC,binance/ETH")
        with pytest.raises(ValueError):
            tick(instance)
        assert registered(instance) == sorted(INSTRUMENTS)


class TestConfiguredInstruments:
    def test_default_when_unset_or_blank(self, monkeypatch):
        monkeypatch.delenv(INSTRUMENTS_ENV_VAR, raising=False)
        assert configured_instruments() == DEFAULT_INSTRUMENTS.split(",")
        monkeypatch.setenv(INSTRUMENTS_ENV_VAR, "  ")
        assert configured_instruments() == DEFAULT_INSTRUMENTS.split(",")

    def test_parses_validates_and_deduplicates(self, monkeypatch):
        monkeypatch.setenv(INSTRUMENTS_ENV_VAR, " kraken:SOL ,binance:BTC,,kraken:SOL")
        assert configured_instruments() == ["kraken:SOL", "binance:BTC"]
        monkeypatch.setenv(INSTRUMENTS_ENV_VAR, "binance:BTC' OR '1'='1")
        with pytest.raises(InvalidKeyError):
            configured_instruments()

    def test_instrument_changes(self):
        assert instrument_changes([], ["a:B"]) == (["a:B"], [])
        assert instrument_changes(["a:B", "c:D"], ["c:D"]) == ([], ["a:B"])
        assert instrument_changes(["a:B"], ["a:B"]) == ([], [])

    def test_a_file_lists_thousands_and_wins_over_the_variable(self, monkeypatch, tmp_path):
        listing = tmp_path / "instruments.txt"
        listing.write_text("# one per line\nbinance:BTC\nkraken:SOL  # a comment\n\nbinance:ETH,binance:BTC\n")
        monkeypatch.setenv(INSTRUMENTS_ENV_VAR, "coinbase:BTC")
        monkeypatch.setenv(INSTRUMENTS_FILE_ENV_VAR, str(listing))
        assert configured_instruments() == ["binance:BTC", "kraken:SOL", "binance:ETH"]

    def test_a_missing_or_empty_file_is_an_error_not_an_empty_universe(self, monkeypatch, tmp_path):
        monkeypatch.setenv(INSTRUMENTS_FILE_ENV_VAR, str(tmp_path / "nope.txt"))
        with pytest.raises(ValueError, match="cannot be read"):
            configured_instruments()
        (tmp_path / "empty.txt").write_text("# nothing yet\n")
        monkeypatch.setenv(INSTRUMENTS_FILE_ENV_VAR, str(tmp_path / "empty.txt"))
        with pytest.raises(ValueError, match="lists no instrument"):
            configured_instruments()


def test_the_pipeline_lists_hold_the_definitions(instrument_pipeline):
    assert [job.name for job in instrument_pipeline.jobs] == [
        "market_data_job", "intraday_market_data_job", "order_book_snapshot_job"]
    assert [s.name for s in instrument_pipeline.schedules] == [
        "daily_market_data_schedule", "intraday_market_data_schedule", "order_book_snapshot_schedule"]
    assert [s.name for s in instrument_pipeline.sensors] == ["instruments_sensor"]
    assert instrument_pipeline.schedule("daily_market_data_schedule").job_name == "market_data_job"
