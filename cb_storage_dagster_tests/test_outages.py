"""Azurite taken away in the middle of writes and reads, then brought back.

Each test runs its own emulator (``AzuriteServer.stop()`` / ``start()`` keep the port and
the data directory), so the session emulator of the other tests is never disturbed.
Backends use ``max_retries=2`` and a 0.2 s first backoff: an outage is reported after about
1 s of retrying instead of the defaults' ~4 s, which is what the bound below checks.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
import uuid
from collections.abc import Iterator

import dagster as dg
import pandas as pd
import pytest

from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
from cb_storage_dagster.orchestration.partitions import instruments_partitions, market_data_partitions
from cb_storage_dagster.orchestration.resources import AzureStorageResource
from cb_storage_dagster.storage import BackendUnavailableError, StorageManagerImpl
from cb_storage_dagster_tests.support.azurite import AzuriteServer, new_container_backend
from cb_storage_dagster_tests.support.data import at
from cb_storage_dagster_tests.support.servers import wait_until
from cb_storage_dagster_tests.support.writer_process import candles

pytestmark = pytest.mark.azure

BTC = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}
DAYS, ROWS = 3, 1440
OUTAGE_BOUND_SECONDS = 15.0
"""The longest an operation may take to report the outage (2 retries + backoff + slack on a busy 2-core machine)."""


@pytest.fixture
def server() -> Iterator[AzuriteServer]:
    with AzuriteServer() as own:
        yield own


def generation(g: int) -> pd.DataFrame:
    return pd.concat([candles(dt.date(2024, 1, 1) + dt.timedelta(days=d), ROWS, g) for d in range(DAYS)],
                     ignore_index=True)


def stored_generations(manager: StorageManagerImpl) -> dict[dt.date, set[float]]:
    frame = manager.read_partitions("ohlcv", None).to_pandas()
    assert frame.groupby("date").size().tolist() == [ROWS] * DAYS  # whole days, nothing partial
    return {day: set(group["volume"]) for day, group in frame.groupby("date")}


class Loop(threading.Thread):
    """Runs ``operation(i)`` for i = 1, 2, ... until it raises; records what happened."""

    def __init__(self, operation) -> None:
        super().__init__(daemon=True)
        self.operation = operation
        self.completed: list[int] = []
        self.error: BaseException | None = None
        self.failed_after: float | None = None
        self.last_started = 0.0

    def run(self) -> None:
        i = 0
        while True:
            i += 1
            self.last_started = time.monotonic()
            try:
                self.operation(i)
            except BaseException as exc:  # noqa: BLE001 - the test inspects it
                self.error = exc
                self.failed_after = time.monotonic() - self.last_started
                return
            self.completed.append(i)


def assert_clear_outage(error: BaseException | None, server: AzuriteServer) -> None:
    assert isinstance(error, BackendUnavailableError), repr(error)
    message = str(error)
    assert server.blob_endpoint in message
    assert "unreachable after 2 retries" in message
    assert "Check that the storage account (or Azurite) is running" in message
    assert error.__suppress_context__  # the raw client text (URLs, headers) is not chained


@pytest.mark.slow
def test_azurite_stopped_during_writes_then_restarted(server: AzuriteServer):
    """4 outages, each at a random moment of a 3-day overwrite; after each restart the table
    holds whole days of either the last acknowledged write or the interrupted one."""
    rng = random.Random()
    backend = new_container_backend(server, max_retries=2, retry_backoff_seconds=0.2, timeout_seconds=5)
    manager = StorageManagerImpl(backend)
    manager.save_entry(BTC, generation(1))
    acknowledged = 1
    for cycle in range(4):
        first = acknowledged + 1
        durations: list[float] = []

        def write(i: int, first: int = first, durations: list[float] = durations) -> None:
            started = time.monotonic()
            manager.save_entry(BTC, generation(first + i - 1))
            durations.append(time.monotonic() - started)

        writes = Loop(write)
        writes.start()
        wait_until(lambda writes=writes: len(writes.completed) >= 2 or writes.error, 120, "two writes before the outage", 0.01)
        assert writes.error is None, writes.error  # the outage has not started yet
        # Deliberate, not synchronisation: a random moment inside the next write for the outage.
        time.sleep(rng.uniform(0, max(durations)))
        stopped_at = time.monotonic()
        server.stop()
        writes.join(timeout=60)
        assert not writes.is_alive()
        assert_clear_outage(writes.error, server)
        print(f"outage {cycle}: the write failed {time.monotonic() - stopped_at:.2f} s after the stop, "
              f"{writes.failed_after:.2f} s into the write (writes take ~{max(durations):.2f} s)")
        assert time.monotonic() - stopped_at < OUTAGE_BOUND_SECONDS

        started = time.monotonic()
        with pytest.raises(BackendUnavailableError) as raised:  # and again, while still down
            manager.save_entry(BTC, generation(999))
        assert_clear_outage(raised.value, server)
        assert time.monotonic() - started < OUTAGE_BOUND_SECONDS

        server.start()
        acknowledged = first + len(writes.completed) - 1
        fresh = StorageManagerImpl(new_container_backend(server, container_name=backend.container_name))
        stored = set().union(*stored_generations(fresh).values())
        assert stored in ({float(acknowledged)}, {float(acknowledged + 1)}), (stored, acknowledged)
        acknowledged = int(stored.pop())

    manager.save_entry(BTC, generation(5000))  # the same manager works again and converges
    fresh = StorageManagerImpl(new_container_backend(server, container_name=backend.container_name))
    assert stored_generations(fresh) == {dt.date(2024, 1, 1) + dt.timedelta(days=d): {5000.0} for d in range(DAYS)}


@pytest.mark.slow
def test_azurite_stopped_during_reads_then_restarted(server: AzuriteServer):
    backend = new_container_backend(server, max_retries=2, retry_backoff_seconds=0.2, timeout_seconds=5)
    manager = StorageManagerImpl(backend)
    manager.save_entry(BTC, generation(1))

    reads = Loop(lambda i: manager.get_range(BTC, at(2024, 1, 1), at(2024, 1, 4)))
    reads.start()
    wait_until(lambda: len(reads.completed) >= 3 or reads.error, 120, "three reads before the outage", 0.01)
    assert reads.error is None, reads.error  # the outage has not started yet
    stopped_at = time.monotonic()
    server.stop()
    reads.join(timeout=60)
    assert_clear_outage(reads.error, server)
    print(f"read failed {time.monotonic() - stopped_at:.2f} s after the stop, after {len(reads.completed)} reads")
    assert time.monotonic() - stopped_at < OUTAGE_BOUND_SECONDS

    cold = StorageManagerImpl(new_container_backend(
        server, container_name=backend.container_name, max_retries=2, retry_backoff_seconds=0.2,
        create_container=False))
    for operation in (
        lambda: manager.get_range(BTC, at(2024, 1, 1), at(2024, 1, 4)),  # a cached table
        lambda: cold.get_range(BTC, at(2024, 1, 1), at(2024, 1, 4)),  # nothing cached
        lambda: manager.list_dates("binance", "BTC", "ohlcv"),
        lambda: cold.list_exchanges("ohlcv"),
    ):
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError) as raised:
            operation()
        assert_clear_outage(raised.value, server)
        assert time.monotonic() - started < OUTAGE_BOUND_SECONDS

    server.start()
    assert len(manager.get_range(BTC, at(2024, 1, 1), at(2024, 1, 4))) == DAYS * ROWS
    assert len(cold.get_range(BTC, at(2024, 1, 1), at(2024, 1, 4))) == DAYS * ROWS


# -- a Dagster run against an emulator that is away ----------------------------------------------
PARTITIONS = market_data_partitions("2024-01-01")


def outage_assets(retry_policy: dg.RetryPolicy | None = None) -> list[dg.AssetsDefinition]:
    @dg.asset(partitions_def=PARTITIONS, metadata={"data_type": "ohlcv"}, io_manager_key="market_data_io_manager",
              retry_policy=retry_policy)
    def candles_1m(context) -> pd.DataFrame:
        key = context.partition_key.keys_by_dimension
        exchange, coin = key["instrument"].split(":")
        day = dt.date.fromisoformat(key["date"])
        return candles(day, 60, 1.0, coin=coin)

    return [candles_1m]


def azure_io_manager(server: AzuriteServer, container: str) -> MarketDataIOManager:
    return MarketDataIOManager(storage=AzureStorageResource(
        container_name=container, account_name=server.account_name, account_key=server.account_key,
        endpoint=server.blob_endpoint, max_retries=2,
    ))


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(instruments_partitions.name, ["binance:BTC"])
        yield instance


def step_failure_message(result: dg.ExecuteInProcessResult) -> tuple[str, str]:
    error = result.get_step_failure_events()[0].event_specific_data.error
    cause = error.cause or error
    return cause.cls_name, cause.message


@pytest.mark.slow
def test_a_dagster_run_fails_clearly_while_azurite_is_down_and_succeeds_after_restart(server, instance):
    container = f"run-{uuid.uuid4().hex[:16]}"
    new_container_backend(server, container_name=container)
    assets = outage_assets()
    server.stop()

    started = time.monotonic()
    failed = dg.materialize(assets, partition_key="2024-01-02|binance:BTC", instance=instance,
                            resources={"market_data_io_manager": azure_io_manager(server, container)},
                            raise_on_error=False)
    assert not failed.success
    cls_name, message = step_failure_message(failed)
    assert cls_name == "BackendUnavailableError"
    assert "unreachable after 2 retries" in message and server.blob_endpoint in message
    print(f"run failed in {time.monotonic() - started:.2f} s: {message}")

    server.start()
    succeeded = dg.materialize(assets, partition_key="2024-01-02|binance:BTC", instance=instance,
                               resources={"market_data_io_manager": azure_io_manager(server, container)})
    assert succeeded.success
    manager = StorageManagerImpl(new_container_backend(server, container_name=container))
    assert manager.read_partitions("ohlcv", None, table="candles_1m").num_rows == 60


@pytest.mark.slow
def test_a_retry_policy_carries_a_dagster_run_over_a_short_outage(server, instance):
    container = f"run-{uuid.uuid4().hex[:16]}"
    new_container_backend(server, container_name=container)
    assets = outage_assets(dg.RetryPolicy(max_retries=5, delay=1.0))
    server.stop()
    restart = threading.Timer(4.0, server.start)
    restart.start()
    try:
        result = dg.materialize(assets, partition_key="2024-01-02|binance:BTC", instance=instance,
                                resources={"market_data_io_manager": azure_io_manager(server, container)})
    finally:
        restart.join()
    assert result.success
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retries, "the outage should have cost at least one retry"
    print(f"{len(retries)} step retries before Azurite came back")
    manager = StorageManagerImpl(new_container_backend(server, container_name=container))
    assert manager.read_partitions("ohlcv", None, table="candles_1m").num_rows == 60
