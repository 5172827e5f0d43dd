"""Run the real product (``dg dev``, as ``make run`` starts it: webserver + daemon) on 127.0.0.1 for
end-to-end tests, and talk to it through the GraphQL API the UI uses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .servers import ServerProcess, describe, group_members, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("VIRTUAL_ENV", REPO_ROOT / ".venv"))
# Dagster's `dg` CLI; it reads the project from [tool.dg] in pyproject.toml.
DG_BIN = VENV / "bin" / "dg"

LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}"""

LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on UnauthorizedError { message }
  }
}"""

RUN_STATUS = """
query Status($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } }
}"""

BACKFILL_STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { id status numPartitions runs(limit: 1000) { runId status startTime endTime tags { key value } } }
    ... on PythonError { message }
  }
}"""

ADD_PARTITION = """
mutation Add($repo: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: $name, partitionKey: $key) {
    __typename
    ... on PythonError { message }
  }
}"""

RUN_ENGINE_MESSAGES = """
query Logs($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection { events { __typename ... on EngineEvent { message } } }
  }
}"""

REPOSITORIES = """
query { repositoriesOrError { __typename ... on RepositoryConnection {
  nodes { name location { name } } } ... on PythonError { message } } }"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DagsterDev:
    """``dg dev`` (as ``make run`` starts it) in its own process group with a temporary DAGSTER_HOME
    and storage root.

    Example:
        >>> with DagsterDev(tmp_path, env={"CB_STORAGE_INSTRUMENTS": "binance:BTC"}) as dev:  # doctest: +SKIP
        ...     dev.graphql(REPOSITORIES)
    """

    def __init__(self, workdir: Path, *, env: dict[str, str] | None = None, dagster_yaml: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.home = self.workdir / "dagster_home"
        self.data = self.workdir / "data"
        self.port = free_port()
        self.home.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        yaml_text = dagster_yaml if dagster_yaml is not None else (REPO_ROOT / "dagster.yaml").read_text()
        (self.home / "dagster.yaml").write_text(yaml_text)
        self.env = {
            **os.environ,
            "CB_STORAGE_BACKEND_TYPE": "local",
            "CB_STORAGE_LOCAL_ROOT_PATH": str(self.data),
            **(env or {}),
            # Always this server's own home, even when ``env`` copies a caller's environment
            # (``make test`` exports DAGSTER_HOME for `make run`'s instance).
            "DAGSTER_HOME": str(self.home),
            # `dg` warns when the project's .venv is not the active environment.
            "VIRTUAL_ENV": str(VENV),
        }
        self.log_path = self.workdir / "dagster_dev.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._server: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def start(self, timeout: float = 120.0) -> DagsterDev:
        """Start ``dg dev`` from the repository root (the command ``make run`` runs) and wait until its
        GraphQL API lists a repository."""
        self._server = ServerProcess(
            [DG_BIN, "dev", "-h", "127.0.0.1", "-p", str(self.port)],
            name=f"dg dev on port {self.port}", log_path=self.log_path, grace=30.0, cwd=REPO_ROOT, env=self.env,
        )
        try:
            self._server.start(healthy=self._lists_a_repository, timeout=timeout, interval=1)
        finally:
            self.process = self._server.process
        return self

    def _lists_a_repository(self) -> bool:
        try:
            result = self.graphql(REPOSITORIES)["repositoriesOrError"]
        except (urllib.error.URLError, ConnectionError, OSError, json.JSONDecodeError):
            return False
        return result["__typename"] == "RepositoryConnection" and bool(result["nodes"])

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the whole group (webserver, daemon, code servers, run workers), SIGKILL after
        ``timeout`` s; raises if any of them is left."""
        if self._server is not None:
            self._server.stop(grace=timeout)

    def leftover_processes(self, wait: float = 15.0) -> list[str]:
        """Live (non-zombie) processes still in the server's process group after stop()."""
        if self.process is None:
            return []
        pgid = self.process.pid
        try:
            wait_until(lambda: not group_members(pgid), wait, f"the processes of {pgid} to end", 0.5)
        except TimeoutError:
            pass
        return describe(group_members(pgid))

    def __enter__(self) -> DagsterDev:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- GraphQL -------------------------------------------------------------------------
    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise RuntimeError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def repository_selector(self) -> dict[str, str]:
        node = self.graphql(REPOSITORIES)["repositoriesOrError"]["nodes"][0]
        return {"repositoryName": node["name"], "repositoryLocationName": node["location"]["name"]}

    def add_dynamic_partitions(self, name: str, keys: list[str]) -> None:
        repo = self.repository_selector()
        for key in keys:
            result = self.graphql(ADD_PARTITION, {"repo": repo, "name": name, "key": key})["addDynamicPartition"]
            assert result["__typename"] in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"), result

    def launch_backfill(self, assets: list[str], partition_names: list[str], title: str = "test backfill") -> str:
        params = {"assetSelection": [{"path": [a]} for a in assets], "partitionNames": partition_names, "title": title}
        result = self.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"Backfill was not launched: {result}")
        return result["backfillId"]

    def launch_run(self, job: str, assets: list[str], tags: dict[str, str]) -> str:
        """Launch ``job`` for ``assets`` with run ``tags``, as the launchpad does; the run id."""
        selector = {**self.repository_selector(), "jobName": job, "assetSelection": [{"path": [a]} for a in assets]}
        params = {"selector": selector, "runConfigData": {},
                  "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]}}
        result = self.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"The run was not launched: {result}")
        return result["run"]["runId"]

    def run_status(self, run_id: str) -> str:
        """``QUEUED``, ``STARTED``, ``SUCCESS``, ``FAILURE``, ..."""
        return self.graphql(RUN_STATUS, {"runId": run_id})["runOrError"]["status"]

    def engine_messages(self, run_id: str) -> list[str]:
        """The engine events of a run (e.g. which executor ran its steps)."""
        logs = self.graphql(RUN_ENGINE_MESSAGES, {"runId": run_id})["logsForRun"]
        return [e["message"] for e in logs.get("events", []) if e["__typename"] == "EngineEvent"]

    def wait_for_backfill(self, backfill_id: str, timeout: float = 400.0) -> dict[str, Any]:
        """Poll the backfill's status until it is final (returned); TimeoutError with the log after ``timeout`` s."""
        last: dict[str, Any] = {}

        def finished() -> dict[str, Any] | None:
            status = last["status"] = self.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
            final = ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED")
            return status if status.get("status") in final else None

        try:
            return wait_until(finished, timeout, f"backfill {backfill_id} to finish", interval=2)
        except TimeoutError as error:
            raise TimeoutError(f"{error}: {last.get('status')}\n{self.log_tail()}") from None
