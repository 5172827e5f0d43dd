"""Run the real product (``dagster dev``: webserver + daemon) on 127.0.0.1 for end-to-end tests,
and talk to it through the GraphQL API the UI uses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGSTER_BIN = Path(os.environ.get("VIRTUAL_ENV", REPO_ROOT / ".venv")) / "bin" / "dagster"

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
    """``dagster dev`` in its own process group with a temporary DAGSTER_HOME and storage root.

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
        }
        self.log_path = self.workdir / "dagster_dev.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def start(self, timeout: float = 120.0) -> DagsterDev:
        def reset_signals() -> None:  # dagster dev in the background inherits ignored SIGINT/SIGTERM
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [str(DAGSTER_BIN), "dev", "-h", "127.0.0.1", "-p", str(self.port), "-w", str(REPO_ROOT / "workspace.yaml")],
            cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=reset_signals,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dagster dev exited early:\n{self.log_tail()}")
            try:
                result = self.graphql(REPOSITORIES)["repositoriesOrError"]
                if result["__typename"] == "RepositoryConnection" and result["nodes"]:
                    return self
            except (urllib.error.URLError, ConnectionError, OSError, json.JSONDecodeError):
                pass
            time.sleep(1)
        self.stop()
        raise TimeoutError(f"dagster dev did not answer within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        pgid = os.getpgid(self.process.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.process.wait(timeout=10)
        # Reap anything left in the group (code servers, run workers).
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def leftover_processes(self, wait: float = 15.0) -> list[str]:
        """Live (non-zombie) processes still in the server's process group after stop()."""
        import psutil

        if self.process is None:
            return []
        deadline = time.monotonic() + wait
        while True:
            alive = []
            for proc in psutil.process_iter(["pid", "status", "cmdline"]):
                try:
                    if os.getpgid(proc.pid) == self.process.pid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                        alive.append(" ".join(proc.info["cmdline"] or []))
                except (ProcessLookupError, psutil.Error):
                    continue
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.5)

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

    def engine_messages(self, run_id: str) -> list[str]:
        """The engine events of a run (e.g. which executor ran its steps)."""
        logs = self.graphql(RUN_ENGINE_MESSAGES, {"runId": run_id})["logsForRun"]
        return [e["message"] for e in logs.get("events", []) if e["__typename"] == "EngineEvent"]

    def wait_for_backfill(self, backfill_id: str, timeout: float = 400.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
            if status.get("status") in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"):
                return status
            time.sleep(2)
        raise TimeoutError(f"Backfill {backfill_id} did not finish in {timeout}s: {status}\n{self.log_tail()}")
