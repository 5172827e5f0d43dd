"""Scale benchmark: the two Delta layouts at thousands of instruments of one exchange.

For each layout (``instrument``: exchange/coin/month partitions; ``exchange``: exchange/month
partitions, coin a sorted data column) it writes N instruments x D days of 1-minute candles,
one commit per exchange-day (``WriteScope.of_exchange_days``), then measures:

* the write of one exchange-day in one commit, against raw ``write_deltalake`` of the same
  rows, layout and predicate into a twin table, interleaved day by day (target <= 2x);
* data files and bytes after D days, before and after the weekly maintenance
  (``maintain_table``: sorted compaction, checkpoint, vacuum with retention 0 here);
* ``_delta_log`` files/bytes and checkpoint bytes;
* a cold table open in a new process (before and after maintenance);
* ``get_range`` of one instrument x D days, against the same read on a 4-instrument table of
  the default layout built the same way (target <= 2x, after maintenance);
* ``list_coins`` of the exchange, cold (new manager) and warm.

Every timing is the median of repetitions measured in this run (the machine is shared).

    python benchmarks/bench_scale.py            # 2,000 instruments x 30 days (tens of minutes)
    python benchmarks/bench_scale.py --quick    # 200 instruments x 3 days (a smoke run)
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from cb_storage_dagster.domain.keys import DataType  # noqa: E402
from cb_storage_dagster.domain.schemas import normalize  # noqa: E402
from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl, WriteScope  # noqa: E402
from cb_storage_dagster.storage import maintenance as mt  # noqa: E402
from cb_storage_dagster.storage.layout import LAYOUTS, partition_columns  # noqa: E402
from cb_storage_dagster.storage.sql import delta_predicate  # noqa: E402

EXCHANGE = "binance"
MINUTES = 1440
FIRST_DAY = dt.date(2024, 1, 1)
SIZES = {
    "full": {"instruments": 2000, "days": 30, "raw_days": 4, "repeats": 7, "open_repeats": 5},
    "quick": {"instruments": 200, "days": 3, "raw_days": 3, "repeats": 3, "open_repeats": 2},
}
SMALL_UNIVERSE = 4


# -- data --------------------------------------------------------------------------------
def coin_name(i: int) -> str:
    return f"C{i:05d}"


def exchange_day(coins: list[str], day: dt.date) -> pa.Table:
    """Every coin's 1-minute candles of one day: deterministic random walks, coin-major."""
    rng = np.random.default_rng(day.toordinal())
    n = len(coins) * MINUTES
    steps = rng.normal(0, 5e-4, (len(coins), MINUTES))
    close = (100.0 * np.exp(np.cumsum(steps, axis=1))).ravel()
    spread = np.abs(rng.normal(0, 2e-4, n)) * close
    open_ = np.concatenate(([close[0]], close[:-1]))
    start = np.datetime64(day.isoformat(), "us")
    minutes = start + np.arange(MINUTES).astype("timedelta64[m]").astype("timedelta64[us]")
    return pa.table({
        "exchange": pa.array([EXCHANGE] * n, pa.string()),
        "coin": pa.array(np.repeat(np.array(coins, dtype=object), MINUTES), pa.string()),
        "timestamp": pa.array(np.tile(minutes, len(coins)), pa.timestamp("us", tz="UTC")),
        "open": open_,
        "high": np.maximum(open_, close) + spread,
        "low": np.maximum(np.minimum(open_, close) - spread, 1e-6),
        "close": close,
        "volume": rng.gamma(2.0, 3.0, n),
    })


# -- measuring ---------------------------------------------------------------------------
def timed(fn) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    out = fn()
    return (time.perf_counter() - start) * 1000, out


def median_ms(fn, repeats: int, warmup: int = 1) -> tuple[float, Any]:
    samples, out = [], None
    for i in range(warmup + repeats):
        ms, out = timed(fn)
        if i >= warmup:
            samples.append(ms)
    return statistics.median(samples), out


def dir_stats(path: Path, pattern: str = "*") -> tuple[int, int]:
    files = [p for p in path.rglob(pattern) if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def table_stats(root: Path, table: str = "ohlcv") -> dict[str, int]:
    base = root / table
    data_files, data_bytes = 0, 0
    for p in base.rglob("*.parquet"):
        if "_delta_log" not in p.parts and "_cb_registry" not in p.parts:
            data_files += 1
            data_bytes += p.stat().st_size
    log_files, log_bytes = dir_stats(base / "_delta_log")
    cp_files, cp_bytes = dir_stats(base / "_delta_log", "*.checkpoint*.parquet")
    from deltalake import DeltaTable

    active = DeltaTable(str(base)).get_add_actions(flatten=True)
    active = pa.table(active)
    return {
        "active_files": active.num_rows,
        "active_bytes": int(pa.compute.sum(active.column("size_bytes")).as_py() or 0),
        "stored_files": data_files, "stored_bytes": data_bytes,
        "partition_folders": len({p.parent for p in base.rglob("*.parquet") if "_delta_log" not in p.parts and "_cb_registry" not in p.parts}),
        "log_files": log_files, "log_bytes": log_bytes,
        "checkpoint_files": cp_files, "checkpoint_bytes": cp_bytes,
    }


COLD_OPEN = """
import sys, time
t = time.perf_counter()
from deltalake import DeltaTable
imported = time.perf_counter()
table = DeltaTable(sys.argv[1])
table.version()
opened = time.perf_counter()
print((opened - imported) * 1000)
import os; sys.stdout.flush(); os._exit(0)
"""


def cold_open_ms(path: Path, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", COLD_OPEN, str(path)], capture_output=True, text=True, check=True)
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def utc(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


# -- one table -------------------------------------------------------------------------------
def build(root: Path, layout: str, coins: list[str], days: list[dt.date], raw_days: int) -> dict[str, Any]:
    """Write ``days`` exchange-days (one commit each); twin raw writes for the first days."""
    from deltalake import write_deltalake

    manager = StorageManagerImpl(LocalFileBackend(root), default_layout=layout)
    raw_uri = str(root / "raw_ohlcv")
    ours_ms, raw_ms, normalize_ms = [], [], []
    for i, day in enumerate(days):
        data = exchange_day(coins, day)
        scope = WriteScope.of_exchange_days([(EXCHANGE, day)])
        ms, _ = timed(lambda data=data, scope=scope: manager.write_partitions("ohlcv", data, scope))
        ours_ms.append(ms)
        if i < raw_days:
            ms, rows = timed(lambda data=data: normalize(data, DataType.OHLCV))
            normalize_ms.append(ms)
            kwargs: dict[str, Any] = {}
            if layout == "exchange":
                from deltalake import WriterProperties

                from cb_storage_dagster.storage.layout import EXCHANGE_LAYOUT_ROW_GROUP_ROWS

                kwargs["writer_properties"] = WriterProperties(max_row_group_size=EXCHANGE_LAYOUT_ROW_GROUP_ROWS)
            mode = "overwrite" if i else "append"
            predicate = delta_predicate(scope) if i else None
            ms, _ = timed(lambda rows=rows, mode=mode, predicate=predicate, kwargs=kwargs: write_deltalake(
                raw_uri, rows, mode=mode, partition_by=list(partition_columns(layout)),
                predicate=predicate, **kwargs))
            raw_ms.append(ms)
        print(f"  {layout}: day {i + 1}/{len(days)} written in {ours_ms[-1]:.0f} ms", flush=True)
    # The first commit creates the table: compare the steady state.
    compare = slice(1, raw_days) if raw_days > 1 else slice(0, raw_days)
    ours_med = statistics.median(ours_ms[compare])
    raw_med = statistics.median(raw_ms[compare])
    shutil.rmtree(raw_uri, ignore_errors=True)
    return {"write_ms_median": statistics.median(ours_ms[1:] or ours_ms), "write_ms_all": ours_ms,
            "write_ms_vs_raw": ours_med, "raw_write_ms": raw_med, "write_ratio": ours_med / raw_med,
            "normalize_ms": statistics.median(normalize_ms[compare])}


def reads(root: Path, coin: str, days: list[dt.date], repeats: int) -> dict[str, Any]:
    key = {"data_type": "ohlcv", "exchange": EXCHANGE, "coin": coin}
    start, end = utc(days[0]), utc(days[-1] + dt.timedelta(days=1))
    manager = StorageManagerImpl(LocalFileBackend(root))
    first_ms, frame = timed(lambda: manager.get_range(key, start, end))
    assert len(frame) == len(days) * MINUTES, (len(frame), coin)
    warm_ms, frame = median_ms(lambda: manager.get_range(key, start, end), repeats)
    assert len(frame) == len(days) * MINUTES and frame["timestamp"].is_monotonic_increasing
    cold_list = []
    for _ in range(max(1, repeats // 2)):
        fresh = StorageManagerImpl(LocalFileBackend(root))
        ms, listed = timed(lambda fresh=fresh: fresh.list_coins(EXCHANGE, "ohlcv"))
        cold_list.append(ms)
    warm_list, listed = median_ms(lambda: fresh.list_coins(EXCHANGE, "ohlcv"), repeats)
    return {"get_range_first_ms": first_ms, "get_range_ms": warm_ms,
            "list_coins_cold_ms": statistics.median(cold_list), "list_coins_warm_ms": warm_list,
            "coins_listed": len(listed)}


def measure_layout(work: Path, layout: str, coins: list[str], days: list[dt.date], size: dict) -> dict[str, Any]:
    root = work / layout
    print(f"{layout}: writing {len(coins)} instruments x {len(days)} days", flush=True)
    out: dict[str, Any] = {"layout": layout, "instruments": len(coins), "days": len(days)}
    out.update(build(root, layout, coins, days, size["raw_days"]))
    probe = coins[len(coins) // 3]
    out["before"] = table_stats(root)
    out["before"]["cold_open_ms"] = cold_open_ms(root / "ohlcv", size["open_repeats"])
    out["before"].update(reads(root, probe, days, size["repeats"]))
    print(f"{layout}: maintenance", flush=True)
    ms, result = timed(lambda: mt.maintain_table(LocalFileBackend(root), "ohlcv", retention_hours=0, min_retention_hours=0))
    out["maintenance_ms"] = ms
    out["compaction_ms"] = result.compaction.seconds * 1000
    out["after"] = table_stats(root)
    out["after"]["cold_open_ms"] = cold_open_ms(root / "ohlcv", size["open_repeats"])
    out["after"].update(reads(root, probe, days, size["repeats"]))
    return out


def small_baseline(work: Path, days: list[dt.date], size: dict) -> dict[str, Any]:
    """The same read on a 4-instrument table of today's default layout, after maintenance."""
    root = work / "small"
    coins = [coin_name(i) for i in range(SMALL_UNIVERSE)]
    manager = StorageManagerImpl(LocalFileBackend(root))
    for day in days:
        manager.write_partitions("ohlcv", exchange_day(coins, day), WriteScope.of_exchange_days([(EXCHANGE, day)]))
    mt.maintain_table(LocalFileBackend(root), "ohlcv", retention_hours=0, min_retention_hours=0)
    return reads(root, coins[1], days, size["repeats"])


# -- report --------------------------------------------------------------------------------
def mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def report(results: dict[str, Any]) -> str:
    small = results["small_universe"]
    rows = [("", *(r["layout"] for r in results["layouts"]))]

    def add(label: str, fn) -> None:
        rows.append((label, *(fn(r) for r in results["layouts"])))

    n, d = results["instruments"], results["days"]
    add(f"write one exchange-day ({n} x 1,440 rows, 1 commit), median", lambda r: f"{r['write_ms_median']:,.0f} ms")
    add("  vs raw write_deltalake, same rows/layout/predicate", lambda r: f"{r['write_ms_vs_raw']:,.0f} / {r['raw_write_ms']:,.0f} ms = {r['write_ratio']:.2f}x (target <= 2x)")
    add("  of which validating/normalizing the rows (schemas.normalize)", lambda r: f"{r['normalize_ms']:,.0f} ms")
    for phase in ("before", "after"):
        tag = f"after {d} days, {phase} maintenance"
        add(f"data files / partition folders ({tag})", lambda r, p=phase: f"{r[p]['active_files']:,} / {r[p]['partition_folders']:,}")
        add(f"data bytes, active (stored) ({tag})", lambda r, p=phase: f"{mb(r[p]['active_bytes'])} ({mb(r[p]['stored_bytes'])})")
        add(f"_delta_log files / bytes ({tag})", lambda r, p=phase: f"{r[p]['log_files']:,} / {mb(r[p]['log_bytes'])}")
        add(f"checkpoint bytes ({tag})", lambda r, p=phase: mb(r[p]['checkpoint_bytes']))
        add(f"cold table open, new process ({tag})", lambda r, p=phase: f"{r[p]['cold_open_ms']:,.0f} ms")
        add(f"get_range 1 instrument x {d} days, first / warm ({tag})", lambda r, p=phase: f"{r[p]['get_range_first_ms']:,.0f} / {r[p]['get_range_ms']:,.0f} ms")
        add(f"list_coins ({n} coins), cold / warm ({tag})", lambda r, p=phase: f"{r[p]['list_coins_cold_ms']:,.0f} / {r[p]['list_coins_warm_ms']:,.1f} ms")
    add("maintenance (compaction of it)", lambda r: f"{r['maintenance_ms'] / 1000:,.1f} s ({r['compaction_ms'] / 1000:,.1f} s)")
    add(f"get_range vs {SMALL_UNIVERSE}-instrument table ({small['get_range_ms']:.1f} ms), after maintenance",
        lambda r: f"{r['after']['get_range_ms'] / small['get_range_ms']:.2f}x (target <= 2x)")
    width = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(row, width)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in width))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke size: 200 instruments x 3 days")
    parser.add_argument("--instruments", type=int, help="override the number of instruments")
    parser.add_argument("--days", type=int, help="override the number of days")
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated layouts to measure")
    parser.add_argument("--out", help="JSON result path (default: benchmarks/results/scale-<size>-<time>.json)")
    parser.add_argument("--work", help="working folder (default: a temporary folder, removed at the end)")
    args = parser.parse_args()
    size_name = "quick" if args.quick else "full"
    size = dict(SIZES[size_name])
    if args.instruments:
        size["instruments"] = args.instruments
    if args.days:
        size["days"] = args.days
        size["raw_days"] = min(size["raw_days"], args.days)
    coins = [coin_name(i) for i in range(size["instruments"])]
    days = [FIRST_DAY + dt.timedelta(days=i) for i in range(size["days"])]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="cb-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"size": size_name, "instruments": len(coins), "days": len(days), "layouts": []}
    out = Path(args.out) if args.out else HERE / "results" / f"scale-{size_name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        results["small_universe"] = small_baseline(work, days, size)
        for layout in args.layouts.split(","):
            results["layouts"].append(measure_layout(work, layout.strip(), coins, days, size))
            shutil.rmtree(work / layout.strip(), ignore_errors=True)
            out.write_text(json.dumps(results, indent=2, default=str))  # partial results survive
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(report(results))
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    from cb_storage_dagster.entrypoint import run_and_exit

    run_and_exit(main)  # exit 0 despite delta-rs' abort at interpreter exit (STACK-NOTES)
