"""Run helper processes (``python -m ...``) for the concurrency, crash and clean-exit tests.

Subprocesses, never ``fork``: delta-rs and pyarrow run thread pools that a forked child
would inherit in an unknown state. The storage is handed over as ``CB_STORAGE_*``
environment variables (what :class:`~cb_storage_dagster.storage.StorageConfig` reads).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from cb_storage_dagster.storage.backends.local import LocalFileBackend
from cb_storage_dagster.storage.interfaces import IStorageBackend

from .azurite import AZURITE_ACCOUNT_KEY
from .servers import StopReport, spawn, stop_group

REPO_ROOT = Path(__file__).resolve().parents[2]


def storage_env(backend: IStorageBackend, **extra: str) -> dict[str, str]:
    """The process environment that points ``StorageConfig.load()`` at ``backend``.

    Azure backends are assumed to be Azurite containers authenticated with the emulator's
    well-known key (as :func:`~cb_storage_dagster_tests.support.azurite.new_container_backend`
    makes them).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CB_STORAGE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    if isinstance(backend, LocalFileBackend):
        env.update(CB_STORAGE_BACKEND_TYPE="local", CB_STORAGE_LOCAL_ROOT_PATH=str(backend.root_path))
    else:
        env.update(
            CB_STORAGE_BACKEND_TYPE="azure",
            CB_STORAGE_AZURE_CONTAINER_NAME=backend.container_name,  # type: ignore[attr-defined]
            CB_STORAGE_AZURE_ACCOUNT_NAME=backend.account_name,  # type: ignore[attr-defined]
            CB_STORAGE_AZURE_ENDPOINT=backend.endpoint,  # type: ignore[attr-defined]
            CB_STORAGE_AZURE_ACCOUNT_KEY=AZURITE_ACCOUNT_KEY,
        )
        if getattr(backend, "prefix", ""):
            env["CB_STORAGE_AZURE_PREFIX"] = backend.prefix  # type: ignore[attr-defined]
    env.update(extra)
    return env


class HelperProcess:
    """A ``python -m module args...`` child whose JSON-lines stdout is collected as it comes.

    Lines that are not JSON are kept as ``{"event": "text", "text": line}``; stderr is
    collected separately for failure messages.
    """

    def __init__(self, module: str, args: list[str], env: dict[str, str], *, cwd: Path | None = None) -> None:
        self.module = module
        self.args = list(args)
        self.events: list[dict[str, Any]] = []
        self.stderr = ""
        self._changed = threading.Condition()
        # Default signal dispositions and its own process group (see support/servers.py);
        # both pipes are drained by the reader threads below.
        self.process = spawn(
            [sys.executable, "-m", module, *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd or REPO_ROOT,
        )
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "text", "text": line}
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read().decode(errors="replace")

    @property
    def pid(self) -> int:
        return self.process.pid

    def named(self, event: str) -> list[dict[str, Any]]:
        with self._changed:
            return [e for e in self.events if e.get("event") == event]

    def wait_for(self, event: str, timeout: float = 60.0) -> dict[str, Any]:
        """Block until the child printed ``event`` (raises if it exits or times out first)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [e for e in self.events if e.get("event") == event]
                if found:
                    return found[0]
                if self.process.poll() is not None and not self._readers[0].is_alive():
                    raise RuntimeError(f"{self} exited before {event!r}:\n{self.stderr[-3000:]}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self} did not print {event!r} within {timeout} s")
                self._changed.wait(min(remaining, 0.2))

    def wait_for_count(self, event: str, count: int, timeout: float = 60.0) -> None:
        """Block until the child printed ``event`` at least ``count`` times."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(e.get("event") == event for e in self.events) < count:
                if self.process.poll() is not None and not self._readers[0].is_alive():
                    raise RuntimeError(f"{self} exited before its {count}th {event!r}:\n{self.stderr[-3000:]}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self} did not print {event!r} {count} times within {timeout} s")
                self._changed.wait(min(remaining, 0.2))

    def wait(self, timeout: float = 300.0) -> int:
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def kill(self) -> int:
        """SIGKILL the child's whole group (no cleanup of any kind runs in it), reap it, and
        assert nothing of the group is left."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        code = self.wait(timeout=30)
        self.stop()
        return code

    def stop(self, grace: float = 10.0) -> StopReport:
        """SIGTERM the child's group, SIGKILL after ``grace`` s; raises if a process is left."""
        return stop_group(self.process, name=repr(self), grace=grace, output_tail=lambda: self.stderr[-3000:])

    def __repr__(self) -> str:
        return f"HelperProcess({self.module} {' '.join(self.args)}, pid={self.process.pid})"


def writer(args: list[str], env: dict[str, str]) -> HelperProcess:
    return HelperProcess("cb_storage_dagster_tests.support.writer_process", args, env)


def run_together(workers: list[HelperProcess], go_file: Path, *, timeout: float = 300.0) -> None:
    """Wait until every worker is ready, release them at once, and wait for them to end."""
    try:
        for worker in workers:
            worker.wait_for("ready", timeout=120)
        go_file.touch()
    except BaseException:
        end_all(workers, timeout=0)
        raise
    end_all(workers, timeout=timeout)


def end_all(workers: list[HelperProcess], *, timeout: float) -> None:
    """Wait up to ``timeout`` s for each worker to exit (0: do not wait), then kill whatever still
    runs; raises ``TimeoutExpired`` if one had to be killed, and if any process of their groups is left."""
    try:
        for worker in workers:
            if timeout > 0:
                worker.wait(timeout=timeout)
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.kill()
            else:
                worker.stop()  # asserts that it left no process behind
