"""A streamed Delta write paces its producer by the process's resident set, so that delta-rs'
unbounded queue ahead of its encoder cannot hold the run (storage/delta/backpressure.py).
The pacing is a decision on numbers, checked here with a fake resident set and clock; the
memory it saves is measured by ``make bench-scale-orchestration`` (docs/SCALE.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cb_storage_dagster.storage.delta import backpressure
from cb_storage_dagster.storage.delta.backpressure import (
    DELTA_ALLOCATOR_CONF,
    DELTA_ALLOCATOR_VARIABLE,
    POLL_SECONDS,
    STALL_SECONDS,
    WriterBackpressure,
    resident_bytes,
)

MB = 1 << 20


class FakeProcess:
    """A resident set that follows a script, one value per look, and a clock that only counts."""

    def __init__(self, levels: list[int]) -> None:
        self.levels = levels
        self.slept = 0.0

    def measure(self) -> int:
        return self.levels.pop(0) if len(self.levels) > 1 else self.levels[0]

    def sleep(self, seconds: float) -> None:
        self.slept += seconds


def pacer(levels: list[int], budget: int = 100 * MB) -> tuple[WriterBackpressure, FakeProcess]:
    process = FakeProcess(levels)
    return WriterBackpressure(budget, measure=process.measure, sleep=process.sleep), process


def test_under_the_budget_the_producer_never_waits():
    paced, process = pacer([500 * MB, 550 * MB, 600 * MB])
    assert paced.before_chunk() == 0.0
    assert paced.before_chunk() == 0.0
    assert process.slept == 0.0


def test_over_the_budget_the_producer_waits_until_the_encoder_has_drained():
    # baseline 500 MB; two looks above 600 MB, then back at 600 MB
    paced, process = pacer([500 * MB, 700 * MB, 650 * MB, 600 * MB])
    waited = paced.before_chunk()
    assert waited == pytest.approx(2 * POLL_SECONDS)
    assert process.slept == pytest.approx(2 * POLL_SECONDS)
    assert paced.stalls == 0


def test_memory_held_by_something_else_stalls_once_then_becomes_the_baseline():
    paced, process = pacer([500 * MB, 900 * MB])  # never drops
    assert paced.before_chunk() == pytest.approx(STALL_SECONDS, abs=POLL_SECONDS)
    assert paced.stalls == 1
    assert paced.before_chunk() == 0.0  # 900 MB is the new level: no second stall
    assert paced.waited_seconds == pytest.approx(STALL_SECONDS, abs=POLL_SECONDS)


def test_without_a_resident_set_to_read_it_never_waits():
    paced = WriterBackpressure(1, measure=lambda: None, sleep=lambda _s: pytest.fail("must not wait"))
    assert paced.before_chunk() == 0.0


def test_the_resident_set_is_read_from_proc_on_linux():
    if not sys.platform.startswith("linux"):
        pytest.skip("/proc/self/statm is Linux only")
    level = resident_bytes()
    assert level is not None and 10 * MB < level < 64 * 1024 * MB


def test_importing_the_package_configures_delta_rs_allocator_before_delta_rs_loads():
    script = (
        "import os, sys; os.environ.pop('_RJEM_MALLOC_CONF', None); import cb_storage_dagster; "
        "print(os.environ.get('_RJEM_MALLOC_CONF')); print('deltalake' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.split() == [DELTA_ALLOCATOR_CONF, "False"]


def test_an_allocator_setting_of_the_user_is_kept(monkeypatch):
    monkeypatch.setenv(DELTA_ALLOCATOR_VARIABLE, "dirty_decay_ms:5000")
    backpressure.configure_delta_allocator()
    assert backpressure.os.environ[DELTA_ALLOCATOR_VARIABLE] == "dirty_decay_ms:5000"
