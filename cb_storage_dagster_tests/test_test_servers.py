"""The processes the tests start stop for sure, however the test run itself was started (issue 15).

A test run started as a background job of a non-interactive shell (a CI wrapper, ``nohup``,
``cmd &`` in a script) inherits SIGINT and SIGQUIT ignored. ``dagster code-server start`` gives
SIGTERM the SIGINT handler, so a server started with a plain ``Popen`` from such a run ignored
SIGTERM, never stopped, and failed the code-server test after leaking it. These tests run their
subject under a parent that ignores SIGINT and SIGQUIT, and check no process is left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from cb_storage_dagster_tests.support.servers import wait_until

REPO_ROOT = Path(__file__).resolve().parents[1]

# What a background job of a non-interactive shell gets: SIGINT and SIGQUIT ignored, inherited
# by everything it starts unless the starter resets them.
IGNORING_PARENT = (
    "import signal, subprocess, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "signal.signal(signal.SIGQUIT, signal.SIG_IGN); sys.exit(subprocess.call(sys.argv[1:]))"
)
MARKER = "CB_TEST_SERVERS_MARKER"


def run_ignoring_sigint(args: list[str], *, timeout: float, cwd: Path = REPO_ROOT) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run ``args`` under :data:`IGNORING_PARENT`; returns the result and the marker every
    process it started carries in its environment (see :func:`processes_marked`)."""
    marker = uuid.uuid4().hex
    completed = subprocess.run(
        [sys.executable, "-c", IGNORING_PARENT, *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, MARKER: marker},
    )
    return completed, marker


def processes_marked(marker: str) -> list[str]:
    """Live processes (anywhere on the machine, orphans included) whose environment has ``marker``."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and proc.environ().get(MARKER) == marker:
                found.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])}")
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize("starter", [
    "helper",
    pytest.param("plain", marks=pytest.mark.xfail(
        strict=True, reason="the old code path (plain Popen): the server inherits SIGINT ignored and ignores SIGTERM")),
])
def test_a_server_started_from_a_parent_that_ignores_sigint_stops_on_sigterm(starter, tmp_path):
    """The stand-in server handles signals as ``dagster code-server start`` does."""
    completed, marker = run_ignoring_sigint(
        [sys.executable, "-m", "cb_storage_dagster_tests.support.stop_probe", starter, str(tmp_path)], timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(completed.stdout.splitlines()[-1])
    assert processes_marked(marker) == []  # the probe cleans up even on the old code path
    assert "SIGINT" not in report["ignored"] and "SIGTERM" not in report["ignored"], report
    assert report["stopped_on_sigterm"], report
    assert report["left_after_stop"] == [], report


@pytest.mark.slow
def test_the_code_server_test_passes_and_leaves_nothing_when_sigint_is_ignored():
    """The CI failure of issue 15, replayed: the Dockerfile's code-server test from an ignoring parent."""
    test = "cb_storage_dagster_tests/test_deploy_config.py::test_the_dockerfile_command_starts_a_code_server_for_the_definitions"
    completed, marker = run_ignoring_sigint([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", test],
                                            timeout=300)
    left = processes_marked(marker)
    for line in left:  # do not leak them into this session either
        psutil.Process(int(line.split()[0])).kill()
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert left == []


def test_the_session_guard_names_kills_and_fails_a_process_left_running(tmp_path):
    (tmp_path / "test_leak.py").write_text(
        "import subprocess\n\n"
        "def test_leaks_a_child():\n"
        "    subprocess.Popen(['sleep', '300'])\n"
    )
    completed, marker = run_ignoring_sigint(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "cb_storage_dagster_tests.conftest",
         "-q", "test_leak.py"], timeout=120, cwd=tmp_path)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "left 1 process(es) running (now killed)" in completed.stdout and "sleep 300" in completed.stdout
    assert processes_marked(marker) == []


def test_wait_until_returns_the_value_or_names_what_it_waited_for():
    calls = iter([0, "", "ready"])
    assert wait_until(lambda: next(calls), timeout=5, what="the value", interval=0.01) == "ready"
    with pytest.raises(TimeoutError, match="the flag: not within 0.05 s"):
        wait_until(lambda: False, timeout=0.05, what="the flag", interval=0.01)
