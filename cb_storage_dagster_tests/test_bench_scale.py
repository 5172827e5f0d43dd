"""`make bench-scale` works: the scale benchmark runs end to end at a tiny size, exits 0 and
reports every measurement for both layouts (its numbers are not asserted: speed targets
live in the benchmark, not in tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_scale_benchmark_runs_and_reports_both_layouts(tmp_path):
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_scale.py"), "--quick", "--instruments", "30",
         "--days", "2", "--out", str(out), "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=500, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "get_range vs 4-instrument table" in done.stdout
    results = json.loads(out.read_text())
    by_layout = {r["layout"]: r for r in results["layouts"]}
    assert set(by_layout) == {"instrument", "exchange"}
    # 30 instruments x 2 days: one file per instrument-day, or one per exchange-day.
    assert by_layout["instrument"]["before"]["active_files"] == 60
    assert by_layout["exchange"]["before"]["active_files"] == 2
    assert by_layout["exchange"]["after"]["active_files"] == 1
    for layout in by_layout.values():
        assert layout["write_ratio"] > 0 and layout["after"]["coins_listed"] == 30
        assert layout["after"]["checkpoint_bytes"] > 0
