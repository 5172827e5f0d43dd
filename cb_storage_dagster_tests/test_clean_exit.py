"""Entry points that read Delta data exit 0 every time, despite delta-rs' abort at exit.

delta-rs issue 2184 (STACK-NOTES): a short process that read with threads often dies at
interpreter exit with SIGABRT (exit code 134) after its work is done. Entry points end
through :func:`cb_storage_dagster.entrypoint.run_and_exit`, which flushes and exits at once.
These tests run the processes for real, with output piped and ``PYTHONUNBUFFERED`` unset
(so that output lost at exit would show).
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl
from cb_storage_dagster_tests.support.data import ohlcv
from cb_storage_dagster_tests.support.processes import REPO_ROOT, storage_env

READER = "cb_storage_dagster_tests.support.read_table"


@pytest.fixture
def tiny_table_env(tmp_path: Path) -> dict[str, str]:
    backend = LocalFileBackend(tmp_path / "store")
    manager = StorageManagerImpl(backend)
    for day in ("2024-01-02", "2024-01-03"):
        manager.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}, ohlcv(day, n=20))
    env = storage_env(backend)
    env.pop("PYTHONUNBUFFERED", None)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=env, cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def run_many(args: list[str], env: dict[str, str], times: int) -> list[subprocess.CompletedProcess[str]]:
    """``times`` runs, two at a time (one per core)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda _: run(args, env), range(times)))


@pytest.mark.slow
def test_a_delta_reading_script_exits_0_fifty_times_in_a_row(tiny_table_env):
    started = time.monotonic()
    runs = run_many(["-m", READER], tiny_table_env, 50)
    elapsed = time.monotonic() - started
    codes = collections.Counter(r.returncode for r in runs)
    control = collections.Counter(r.returncode for r in run_many(["-m", READER, "--plain-exit"], tiny_table_env, 10))
    print(f"50 guarded runs in {elapsed:.1f} s: exit codes {dict(codes)}; "
          f"the same script with a plain interpreter exit: {dict(control)} (-6 = SIGABRT: the delta-rs abort)")
    assert codes == {0: 50}, [r.stderr[-500:] for r in runs if r.returncode]
    for result in runs:  # and the output made it out of the process every time
        assert json.loads(result.stdout) == {"rows": 40, "days": 2, "threaded_rows": 40}


@pytest.mark.slow
def test_the_demo_exits_0_with_its_whole_output_every_time(tmp_path):
    env = storage_env(LocalFileBackend(tmp_path / "demo"))
    env.pop("PYTHONUNBUFFERED", None)
    runs = run_many(["-m", "cb_storage_dagster.demo"], env, 10)
    for result in runs:
        assert result.returncode == 0, result.stderr[-2000:]
        lines = result.stdout.splitlines()
        assert lines[0].startswith("saved 1440 candles for 2024-01-01")
        assert lines[-1] == "dates: ['2024-01-01', '2024-01-02']"


@pytest.mark.parametrize(("body", "code", "stdout", "stderr"), [
    ("print('done')\nreturn 0", 0, "done\n", ""),
    ("print('partial')\nreturn 3", 3, "partial\n", ""),
    ("print('before')\nraise ValueError('boom')", 1, "before\n", "ValueError: boom"),
    ("raise SystemExit(4)", 4, "", ""),
    ("raise SystemExit('fatal: no config')", 1, "", "fatal: no config"),
    ("return None", 0, "", ""),
])
def test_run_and_exit_flushes_and_keeps_the_exit_code(body, code, stdout, stderr):
    indented = "\n".join("    " + line for line in body.splitlines())
    script = (
        "import atexit, sys\n"
        "from cb_storage_dagster.entrypoint import run_and_exit\n"
        "def main():\n" + indented + "\n"
        "run_and_exit(main)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    result = run(["-c", script], env)
    assert result.returncode == code
    assert result.stdout == stdout
    assert stderr in result.stderr
