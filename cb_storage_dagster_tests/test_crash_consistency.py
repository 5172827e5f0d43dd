"""A writer SIGKILLed at random moments never leaves a partial partition behind.

A writer process (``support/writer_process.py``, mode ``crash``) replaces the same three days
of binance/BTC again and again, one generation after the other; every row of generation
``g`` carries ``volume = g``. The test kills it after a random delay, reads the table with a
fresh manager and checks that:

* the table reads (it is at a committed version; nothing half-written is visible);
* every day holds exactly one generation's rows, all of them (whole partitions only); with
  Delta, where a generation is one commit, the three days even hold the same generation;
* that generation is one the writer had begun, and not older than the last one it reported
  committed (an acknowledged write is never lost).

A final write that is allowed to finish converges to exactly the expected rows. Writers are
started ahead of time and released by a go-file, so the ~1 s interpreter start-up is not
paid between kills.
"""

from __future__ import annotations

import collections
import json
import random
import time

import pyarrow as pa
import pytest

from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl
from cb_storage_dagster_tests.support.processes import HelperProcess, storage_env, writer

DAYS, ROWS = 3, 1440  # a full day of 1-minute candles per partition


def stored_generations(manager: StorageManagerImpl) -> dict[str, collections.Counter]:
    """Per stored day: how many rows of each generation it holds."""
    table: pa.Table = manager.read_partitions("ohlcv", None)
    per_day: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for day, generation in zip(table.column("date").to_pylist(), table.column("volume").to_pylist(), strict=True):
        per_day[day.isoformat()][int(generation)] += 1
    return dict(per_day)


def check_consistent(manager: StorageManagerImpl, fmt: str, begun: set[int], acknowledged: int) -> int | None:
    """Assert the invariants above; return the generation stored (Delta) or None."""
    days = stored_generations(manager)
    if not days:
        assert acknowledged == 0, "a reported commit is missing"
        return None
    if fmt == "delta" or acknowledged:  # a Delta generation is one commit of all its days
        assert len(days) == DAYS, f"days {sorted(days)}"
    for day, generations in days.items():
        assert len(generations) == 1, f"{day} mixes generations {dict(generations)}"
        (generation, rows), = generations.items()
        assert rows == ROWS, f"{day} holds {rows} of generation {generation}'s {ROWS} rows"
        assert generation in begun, f"{day} holds generation {generation} that was never written"
        assert generation >= acknowledged, f"{day} lost acknowledged generation {acknowledged}"
    stored = {next(iter(g)) for g in days.values()}
    if fmt == "delta":
        assert len(stored) == 1, f"one commit was split: {stored}"
        version = manager.table_version("ohlcv")
        assert version is not None and len(manager.delta.open("ohlcv").history()) == version + 1
        return stored.pop()
    return None


def kill_loop(backend, tmp_path, fmt: str, kills: int, window: float) -> dict[str, object]:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    env = storage_env(backend)

    def start(k: int) -> HelperProcess:
        return writer(["crash", "--gen-start", str(k * 1000 + 1), "--count", "0", "--days", str(DAYS),
                       "--rows", str(ROWS), "--format", fmt, "--go-file", str(tmp_path / f"go.{k}")], env)

    pending = collections.deque([start(0), start(1)])
    begun: set[int] = set()
    acknowledged = 0
    phases: collections.Counter[str] = collections.Counter()
    commits = 0
    durations: list[float] = []
    try:
        for k in range(kills):
            victim = pending.popleft()
            if k + 2 < kills:
                pending.append(start(k + 2))
            victim.wait_for("ready", timeout=120)
            (tmp_path / f"go.{k}").touch()
            # Cover a few writes: the window follows the write time seen so far (Azurite is slower).
            typical = sorted(durations)[len(durations) // 2] if durations else 0.0
            time.sleep(rng.uniform(0.0, max(window, 3 * typical)))  # deliberate: a random kill moment, not a wait
            code = victim.kill()
            events = [e for e in victim.events if e["event"] in ("begin", "done", "error")]
            assert not [e for e in events if e["event"] == "error"], events
            assert code == -9, (code, victim.stderr[-2000:])
            begun |= {e["generation"] for e in events}
            done = [e["generation"] for e in events if e["event"] == "done"]
            durations += [e["seconds"] for e in events if e["event"] == "done"]
            commits += len(done)
            acknowledged = max([acknowledged, *done])
            phases["before its first write" if not events else
                   "mid-write" if events[-1]["event"] == "begin" else "between writes"] += 1
            check_consistent(StorageManagerImpl(backend), fmt, begun, acknowledged)
    finally:
        for process in pending:
            process.kill()

    final = writer(["crash", "--gen-start", "999999", "--count", "1", "--days", str(DAYS),
                    "--rows", str(ROWS), "--format", fmt], env)
    assert final.wait(timeout=120) == 0, final.stderr[-2000:]
    manager = StorageManagerImpl(backend)
    assert check_consistent(manager, fmt, begun | {999999}, 999999) in (999999, None)
    assert manager.read_partitions("ohlcv", None).num_rows == DAYS * ROWS
    summary = {"format": fmt, "kills": kills, "seed": seed, "phases": dict(phases),
               "commits_acknowledged_before_kills": commits,
               "median_write_s": sorted(durations)[len(durations) // 2] if durations else None}
    if fmt == "delta":
        orphans = manager.delta.open("ohlcv").vacuum(retention_hours=0, enforce_retention_duration=False,
                                                     dry_run=True)
        summary["orphaned_data_files"] = len(orphans)
    print("crash loop:", json.dumps(summary))
    return summary


@pytest.mark.slow
def test_a_delta_writer_killed_at_random_moments_leaves_only_whole_committed_partitions(backend, tmp_path):
    summary = kill_loop(backend, tmp_path, "delta", kills=24, window=0.6)
    assert summary["phases"].get("mid-write", 0) >= 10  # most kills hit a write in progress


@pytest.mark.slow
def test_a_parquet_writer_killed_at_random_moments_leaves_only_whole_files(tmp_path):
    """Parquet/JSON objects are written by the local backend's temp file + fsync + rename
    (on Azure each is a single Put Blob, atomic by the service)."""
    backend = LocalFileBackend(tmp_path / "store")
    summary = kill_loop(backend, tmp_path, "parquet", kills=20, window=0.6)
    assert summary["phases"].get("mid-write", 0) >= 10
    leftovers = [p.name for p in backend.root_path.rglob("*.tmp")]
    print("temp files left by killed writers (never listed or read):", len(leftovers))
