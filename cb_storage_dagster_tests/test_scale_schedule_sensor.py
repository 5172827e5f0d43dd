"""The daily tick and the instruments sensor at 2,000 instruments, on a real Dagster instance.

The instrument profile's tick asks for range runs (one day x a block of instruments
registered next to each other); the exchange profile's for one run per exchange. Either way
at most 100 runs, covering every instrument exactly once.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator

import dagster as dg
import pytest

from cb_storage_dagster.orchestration import SyntheticMarketDataSource, build_pipeline
from cb_storage_dagster.orchestration.schedules import BATCH_SIZE_ENV_VAR, MAX_RUNS_PER_TICK
from cb_storage_dagster.orchestration.sensors import (
    INSTRUMENTS_ENV_VAR,
    INSTRUMENTS_FILE_ENV_VAR,
    MAX_DELETES_PER_TICK,
    instrument_changes,
)
from cb_storage_dagster_tests.support.sensors import apply_partition_requests

EXCHANGES = [f"ex{n:02d}" for n in range(20)]
# 20 exchanges x 100 coins, interleaved (ex00:C000, ex01:C000, ...): registration order is
# neither sorted nor grouped by exchange, which is what a range must follow.
UNIVERSE = [f"{exchange}:C{coin:03d}" for coin in range(100) for exchange in EXCHANGES]
MARCH_1ST_0030 = dt.datetime(2024, 3, 1, 0, 30, tzinfo=dt.UTC)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def _repository(profile: str) -> dg.RepositoryDefinition:
    return build_pipeline(profile, UNIVERSE).definitions(
        {"market_data_io_manager": dg.InMemoryIOManager(), "market_data_source": SyntheticMarketDataSource()},
    ).get_repository_def()


# Built once, before any test instance exists: resolving a repository while Dagster still
# holds a reference to a closed test instance fails ("undefined DagsterInstance weakref").
REPOSITORIES = {profile: _repository(profile) for profile in ("instrument", "exchange")}


def repository(profile: str) -> dg.RepositoryDefinition:
    return REPOSITORIES[profile]


def sensor_tick(instance: dg.DagsterInstance):
    """One tick of the ``instrument`` profile's ``instruments_sensor``."""
    return repository("instrument").get_sensor_def("instruments_sensor")(dg.build_sensor_context(instance=instance))


def evaluate_daily_tick(instance: dg.DagsterInstance, profile: str) -> list[dg.RunRequest]:
    repo = repository(profile)
    schedule = repo.get_schedule_def("daily_market_data_schedule")
    with dg.build_schedule_context(
            instance=instance, scheduled_execution_time=MARCH_1ST_0030, repository_def=repo) as context:
        return list(schedule.evaluate_tick(context).run_requests or [])


def covered_partitions(instance, profile: str, requests: list[dg.RunRequest]) -> Counter[str]:
    """How many of the requested runs cover each partition key."""
    partitions_def = repository(profile).get_job("market_data_job").partitions_def
    covered: Counter[str] = Counter()
    for request in requests:
        if request.partition_key_range is not None:
            covered.update(partitions_def.get_partition_keys_in_range(
                request.partition_key_range, dynamic_partitions_store=instance))
        else:
            covered[str(request.partition_key)] += 1
    return covered


class TestDailyTickAt2000Instruments:
    def test_instrument_profile_asks_for_40_range_runs_covering_each_instrument_once(self, instance):
        instance.add_dynamic_partitions("instruments", UNIVERSE)
        requests = evaluate_daily_tick(instance, "instrument")
        assert len(requests) == 40  # blocks of 50, the default batch size
        covered = covered_partitions(instance, "instrument", requests)
        assert covered == Counter({f"2024-02-29|{i}": 1 for i in UNIVERSE})
        assert len({r.run_key for r in requests}) == len(requests)

    def test_a_batch_size_of_one_still_asks_for_at_most_100_runs(self, instance, monkeypatch):
        monkeypatch.setenv(BATCH_SIZE_ENV_VAR, "1")
        instance.add_dynamic_partitions("instruments", UNIVERSE)
        requests = evaluate_daily_tick(instance, "instrument")
        assert len(requests) == MAX_RUNS_PER_TICK == 100
        assert covered_partitions(instance, "instrument", requests) == Counter(
            {f"2024-02-29|{i}": 1 for i in UNIVERSE})

    def test_a_bad_batch_size_fails_the_tick_with_the_variable_named(self, instance, monkeypatch):
        monkeypatch.setenv(BATCH_SIZE_ENV_VAR, "fifty")
        instance.add_dynamic_partitions("instruments", UNIVERSE[:3])
        with pytest.raises(dg.DagsterUserCodeExecutionError) as failure:
            evaluate_daily_tick(instance, "instrument")
        assert BATCH_SIZE_ENV_VAR in str(failure.value.__cause__)

    def test_blocks_follow_registration_order_after_deletions_and_additions(self, instance):
        instance.add_dynamic_partitions("instruments", UNIVERSE)
        for key in UNIVERSE[100:600]:
            instance.delete_dynamic_partition("instruments", key)
        instance.add_dynamic_partitions("instruments", ["new:A", "aaa:Z"])  # appended last
        requests = evaluate_daily_tick(instance, "instrument")
        wanted = [*UNIVERSE[:100], *UNIVERSE[600:], "new:A", "aaa:Z"]
        assert covered_partitions(instance, "instrument", requests) == Counter(
            {f"2024-02-29|{i}": 1 for i in wanted})

    def test_exchange_profile_asks_for_one_run_per_exchange(self, instance):
        requests = evaluate_daily_tick(instance, "exchange")
        assert sorted(r.tags["dagster/partition/exchange"] for r in requests) == EXCHANGES
        assert {r.tags["dagster/partition/date"] for r in requests} == {"2024-02-29"}
        assert covered_partitions(instance, "exchange", requests) == Counter(
            {f"2024-02-29|{e}": 1 for e in EXCHANGES})


class TestInstrumentsSensorAt2000Instruments:
    def test_registers_2000_then_follows_a_change_of_500(self, instance, monkeypatch, tmp_path):
        listing = tmp_path / "instruments.txt"
        listing.write_text("\n".join(UNIVERSE))
        monkeypatch.delenv(INSTRUMENTS_ENV_VAR, raising=False)
        monkeypatch.setenv(INSTRUMENTS_FILE_ENV_VAR, str(listing))
        apply_partition_requests(instance, sensor_tick(instance))
        assert list(instance.get_dynamic_partitions("instruments")) == UNIVERSE

        added = [f"new{n:02d}:X{k:02d}" for n in range(5) for k in range(100)]
        listing.write_text("\n".join([*UNIVERSE[500:], *added]))
        result = sensor_tick(instance)
        add, delete = result.dynamic_partitions_requests
        assert list(add.partition_keys) == added
        assert sorted(delete.partition_keys) == sorted(UNIVERSE[:500])[:MAX_DELETES_PER_TICK]
        apply_partition_requests(instance, result)
        # deletions come in bounded batches: the next tick removes the rest
        result = sensor_tick(instance)
        [delete] = result.dynamic_partitions_requests
        assert len(delete.partition_keys) == 500 - MAX_DELETES_PER_TICK
        apply_partition_requests(instance, result)
        # the survivors keep their order, the new ones come last: ranges stay blocks
        assert list(instance.get_dynamic_partitions("instruments")) == [*UNIVERSE[500:], *added]

        skip = sensor_tick(instance)
        assert isinstance(skip, dg.SkipReason) and "2000 registered" in skip.skip_message

    def test_instrument_changes_handles_a_hundred_thousand_keys(self):
        # Quadratic list look-ups would take minutes here; sets take milliseconds.
        current = [f"x:C{n}" for n in range(100_000)]
        wanted = current[1:] + ["y:NEW"]
        assert instrument_changes(current, wanted) == (["y:NEW"], ["x:C0"])
