"""Cold reads benchmark: a new process opening a table and reading or listing it (issue 18, part 2).

For each Delta layout it writes N instruments x D days of 1-minute candles the way the
pipeline does (``instrument`` layout: one commit per batch of 50 instruments per day, like the
instrument profile's range runs; ``exchange`` layout: one commit per exchange-day), then
measures, each in a fresh Python process (imports excluded, reported apart), median of repeats:

* **open + 30-day read** of one instrument (``StorageManagerImpl(...).get_range``), on the
  table as written (checkpoints every ``CB_STORAGE_CHECKPOINT_INTERVAL`` commits) against
  the same table with its checkpoints removed (a table that only weekly maintenance
  checkpoints, i.e. delta-rs' default interval of 100 before it is reached);
* **list_coins** of the exchange (new manager): from the stamped instrument list (one LIST of
  the log, one small object), against the previous code path of the same run (stamp and coin
  registry disabled, checkpoints removed: the table is opened and, in the exchange layout,
  every data file's ``coin`` column read).

It also times one pipeline commit in process with and without the listing upkeep the writers
now do (advancing the stamp, registering coins), interleaved. Ratios are after / before,
measured in the same run. Targets of issue 18 (at 2,000 coins,
idle machine): open + read <= 100 ms, list_coins <= 50 ms.

    python benchmarks/bench_cold_reads.py                 # 500 instruments x 10 days
    python benchmarks/bench_cold_reads.py --quick         # 100 x 3 (a smoke run)
    python benchmarks/bench_cold_reads.py --instruments 2000 --days 30
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_scale import EXCHANGE, coin_name, exchange_day  # noqa: E402

from cb_storage_dagster.domain.keys import PartitionSlot  # noqa: E402
from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl, WriteScope  # noqa: E402
from cb_storage_dagster.storage.layout import LAYOUTS  # noqa: E402

FIRST_DAY = dt.date(2024, 1, 1)
BATCH = 50

CHILD = """
import json, os, sys, time
t0 = time.perf_counter()
import datetime as dt
from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl
from cb_storage_dagster.storage.delta.coin_registry import CoinRegistry
import deltalake, pandas, pyarrow.dataset, pyarrow.parquet  # libraries every process loads once
imported = time.perf_counter()
root, mode, registry, coin = sys.argv[1], sys.argv[2], sys.argv[3] == "on", sys.argv[4]
file_index = len(sys.argv) <= 5 or sys.argv[5] == "on"

class NoRegistry(CoinRegistry):  # the previous code path: every file's coins read, nothing kept
    def load(self, table):
        from cb_storage_dagster.storage.delta.coin_registry import SCHEMA
        return SCHEMA.empty_table()
    def _save(self, table, facts, all_files):
        pass

class NoStamp:  # the previous code path: the table is opened for every listing
    def lookup(self, table):
        return None
    def save(self, table, version, pairs):
        pass

start = time.perf_counter()
manager = StorageManagerImpl(LocalFileBackend(root))
if not registry:
    manager.delta.tables.coin_registry = NoRegistry(manager.backend)
    manager.delta.tables.instrument_snapshots = NoStamp()
if not file_index:  # the table opened through delta-rs (from its checkpoint), as before the file index
    manager.delta.tables.file_indexes.current = lambda table, **_: None
utc = dt.timezone.utc
if mode == "read":
    rows = len(manager.get_range({"data_type": "ohlcv", "exchange": "binance", "coin": coin},
                                 dt.datetime(2024, 1, 1, tzinfo=utc), dt.datetime(2024, 1, 31, tzinfo=utc)))
else:
    rows = len(manager.list_coins("binance", "ohlcv"))
done = time.perf_counter()
print(json.dumps({"ms": (done - start) * 1000, "import_ms": (imported - t0) * 1000, "rows": rows}), flush=True)
os._exit(0)
"""


def build(root: Path, layout: str, coins: list[str], days: list[dt.date]) -> int:
    manager = StorageManagerImpl(LocalFileBackend(root), default_layout=layout)
    commits = 0
    for day in days:
        data = exchange_day(coins, day)
        if layout == "exchange":
            manager.write_partitions("ohlcv", data, WriteScope.of_exchange_days([(EXCHANGE, day)]))
            commits += 1
            continue
        for i in range(0, len(coins), BATCH):
            batch = coins[i:i + BATCH]
            rows = data.slice(i * 1440, len(batch) * 1440)
            manager.write_partitions("ohlcv", rows, WriteScope.of_slots(PartitionSlot(EXCHANGE, c, day) for c in batch))
            commits += 1
    return commits


def write_overhead(root: Path, layout: str, coins: list[str], day: dt.date, repeats: int) -> tuple[float, float]:
    """Median ms of one pipeline commit (a batch of 50 instruments' day, or an exchange-day)
    with the listing upkeep after it (stamp, coin registry) and without, interleaved."""
    from cb_storage_dagster.storage.delta import write as delta_write

    manager = StorageManagerImpl(LocalFileBackend(root))
    upkeep = delta_write.keep_listings_current
    data = exchange_day(coins, day)
    if layout == "instrument":
        data = data.slice(0, BATCH * 1440)
        scope = WriteScope.of_slots(PartitionSlot(EXCHANGE, c, day) for c in coins[:BATCH])
    else:
        scope = WriteScope.of_exchange_days([(EXCHANGE, day)])
    samples: dict[bool, list[float]] = {True: [], False: []}
    try:
        for i in range(repeats + 1):
            for on in (True, False) if i % 2 else (False, True):
                delta_write.keep_listings_current = upkeep if on else (lambda *args: None)
                started = time.perf_counter()
                manager.write_partitions("ohlcv", data, scope)
                if i:
                    samples[on].append((time.perf_counter() - started) * 1000)
    finally:
        delta_write.keep_listings_current = upkeep
    return statistics.median(samples[False]), statistics.median(samples[True])


def without_checkpoints(root: Path, into: Path) -> None:
    """A copy of the table as delta-rs' defaults leave it: no checkpoint yet, no file index."""
    shutil.copytree(root, into)
    log = into / "ohlcv" / "_delta_log"
    for path in log.iterdir():
        if ".checkpoint." in path.name or path.name == "_last_checkpoint":
            path.unlink()
    (into / "ohlcv" / "_cb_registry" / "files.parquet").unlink(missing_ok=True)


def cold(root: Path, mode: str, registry: bool, coin: str, repeats: int, file_index: bool = True) -> dict[str, float]:
    samples = []
    for _ in range(repeats + 1):
        env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
        out = subprocess.run([sys.executable, "-c", CHILD, str(root), mode, "on" if registry else "off", coin,
                              "on" if file_index else "off"],
                             capture_output=True, text=True, check=True, env=env)
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    samples = samples[1:]  # the first run warms the page cache
    return {"ms": statistics.median(s["ms"] for s in samples),
            "import_ms": statistics.median(s["import_ms"] for s in samples), "rows": samples[0]["rows"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instruments", type=int, default=500)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.instruments, args.days, args.repeats = 100, 3, 3
    coins = [coin_name(i) for i in range(args.instruments)]
    days = [FIRST_DAY + dt.timedelta(days=i) for i in range(args.days)]
    probe = coins[len(coins) // 2]
    print(f"{args.instruments} instruments x {args.days} days; load: {os.getloadavg()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as work:
        for layout in LAYOUTS:
            root, bare = Path(work) / layout, Path(work) / f"{layout}-no-checkpoints"
            started = time.perf_counter()
            commits = build(root, layout, coins, days)
            without_checkpoints(root, bare)
            checkpoints = sorted(p.name for p in (root / "ohlcv" / "_delta_log").glob("*.checkpoint.parquet"))
            print(f"{layout}: {commits} commits in {time.perf_counter() - started:.0f} s, checkpoints {checkpoints}")
            read_after = cold(root, "read", True, probe, args.repeats)
            read_before = cold(bare, "read", True, probe, args.repeats)
            read_checkpointed = cold(root, "read", True, probe, args.repeats, file_index=False)
            list_after = cold(root, "list", True, probe, args.repeats)
            list_before = cold(bare, "list", False, probe, args.repeats)
            assert read_after["rows"] == read_before["rows"] == read_checkpointed["rows"] == args.days * 1440
            assert list_after["rows"] == list_before["rows"] == args.instruments
            rows.append((layout, "open + 30-day read", read_before, read_after, 100))
            rows.append((layout, "open + 30-day read: checkpoints, no file index / file index",
                         read_checkpointed, read_after, 100))
            rows.append((layout, "list_coins", list_before, list_after, 50))
            plain, kept = write_overhead(root, layout, coins, days[-1], args.repeats)
            rows.append((layout, "one commit (in process): without / with listing upkeep",
                         {"ms": plain}, {"ms": kept}, None))
    print(f"\nload after: {os.getloadavg()}")
    print("| layout | case (new process) | before ms | after ms | after/before | target (2,000 coins, idle) |")
    print("|---|---|---|---|---|---|")
    for layout, case, before, after, target in rows:
        print(f"| {layout} | {case} | {before['ms']:.1f} | {after['ms']:.1f} | "
              f"{after['ms'] / before['ms']:.2f}x | {'-' if target is None else f'<= {target} ms'} |")
    print(f"(imports in the new process, not included: ~{rows[0][3]['import_ms']:.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
