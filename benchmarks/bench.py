"""Benchmark: our storage manager and IO manager against raw delta-rs, a one-file Parquet
floor and dagster-deltalake-pandas, side by side in one run, on generated market data.

    make bench        # --quick: 2 instruments x 365 days, a few minutes on 2 cores
    make bench-full   # 8 instruments x 365 days, one commit per instrument-day

Every case is repeated (rounds interleave the implementations, so a slowly growing Delta log
or a noisy neighbour affects all of them alike) and reported as the median. The table
printed at the end has each case, its ratio and its target; the JSON file in
``benchmarks/results/`` has every sample. See ``benchmarks/README.md``.
"""

import argparse
import datetime as dt
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore")

import dagster as dg  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.dataset as ds  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from cb_storage_dagster.domain.keys import DataType  # noqa: E402
from cb_storage_dagster.domain.schemas import PARTITION_COLUMNS, normalize  # noqa: E402
from cb_storage_dagster.storage import (  # noqa: E402
    LocalFileBackend,
    PartitionSlot,
    StorageManagerImpl,
    WriteScope,
)
from cb_storage_dagster.storage import maintenance as mt  # noqa: E402
from cb_storage_dagster.storage.sql import delta_predicate  # noqa: E402

UTC = dt.timezone.utc
START = dt.date(2024, 1, 1)
EXCHANGE = "binance"
MINUTES = 1440

SIZES = {
    "quick": {"instruments": 2, "days": 365, "commit": "day", "repeats": 5, "io_repeats": 5,
              "list_instruments": 200, "list_days": 60, "ddl_repeats": 5, "thirty_runs_repeats": 1},
    "full": {"instruments": 8, "days": 365, "commit": "instrument-day", "repeats": 9, "io_repeats": 9,
             "list_instruments": 200, "list_days": 60, "ddl_repeats": 9, "thirty_runs_repeats": 2},
}


# -- data --------------------------------------------------------------------------------
def coin_name(i: int) -> str:
    return f"C{i:02d}"


def candles(coin: str, first: dt.date, days: int, seed: int = 0) -> pd.DataFrame:
    """Deterministic 1-minute OHLCV: a random walk per instrument."""
    n = days * MINUTES
    rng = np.random.default_rng(abs(hash((coin, first.toordinal(), seed))) % 2**32)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 5e-4, n)))
    spread = np.abs(rng.normal(0, 2e-4, n)) * close
    open_ = np.concatenate(([close[0]], close[:-1]))
    return pd.DataFrame({
        "exchange": EXCHANGE,
        "coin": coin,
        "timestamp": pd.date_range(pd.Timestamp(first, tz="UTC"), periods=n, freq="1min"),
        "open": open_,
        "high": np.maximum(open_, close) + spread,
        "low": np.maximum(np.minimum(open_, close) - spread, 1e-6),
        "close": close,
        "volume": rng.gamma(2.0, 3.0, n),
    })


def day_of(frame: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    start = pd.Timestamp(day, tz="UTC")
    mask = (frame["timestamp"] >= start) & (frame["timestamp"] < start + pd.Timedelta(days=1))
    return frame[mask].reset_index(drop=True)


# -- timing ------------------------------------------------------------------------------
class Rounds:
    """Interleaved repetitions: each round runs every implementation once, in rotating order."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        # Process CPU time (all threads, delta-rs' included): less sensitive than wall time to
        # neighbours on a shared machine, so it backs up ratios measured there.
        self.cpu_samples: dict[str, list[float]] = {}
        self.results: dict[str, Any] = {}

    def run(self, cases: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1) -> None:
        names = list(cases)
        for r in range(warmup + rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                gc.collect()
                start, cpu_start = time.perf_counter(), time.process_time()
                result = cases[name]()
                elapsed = (time.perf_counter() - start) * 1000
                cpu = (time.process_time() - cpu_start) * 1000
                self.results[name] = result
                if r >= warmup:
                    self.samples.setdefault(name, []).append(elapsed)
                    self.cpu_samples.setdefault(name, []).append(cpu)

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per case: wall and CPU medians and every sample."""
        return {k: {"median_ms": self.median(k), "samples": v,
                    "cpu_median_ms": statistics.median(self.cpu_samples[k]), "cpu_samples": self.cpu_samples[k]}
                for k, v in self.samples.items()}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


# -- the comparison environment ------------------------------------------------------------
def ddl_python(args: argparse.Namespace) -> Path | None:
    """Build (or reuse) benchmarks/.venv-ddl with dagster-deltalake-pandas; its python."""
    if args.no_ddl:
        return None
    venv = Path(args.ddl_venv)
    python = venv / "bin" / "python"
    stamp = venv / ".requirements"
    wanted = (HERE / "requirements-ddl.txt").read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"Building the comparison environment {venv} (dagster-deltalake-pandas, pandas<3) ...", flush=True)
    start = time.perf_counter()
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-r", str(HERE / "requirements-ddl.txt")], check=True)
    stamp.write_text(wanted)
    print(f"  built in {time.perf_counter() - start:.0f} s", flush=True)
    return python


def run_ddl_side(python: Path, work: Path, frame: pd.DataFrame, size: dict) -> dict:
    data = work / "ddl_input.parquet"
    frame.to_parquet(data)
    spec = {"data": str(data), "root": str(work / "ddl_store"), "repeats": size["ddl_repeats"],
            "read_days": 30, "read_sizes": [1, 30], "read_repeats": 3}
    spec_path = work / "ddl_spec.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run([str(python), str(HERE / "ddl_side.py"), str(spec_path)],
                          capture_output=True, text=True, timeout=900)
    for line in proc.stdout.splitlines():
        if line.startswith("DDL-RESULT "):
            return json.loads(line[len("DDL-RESULT "):])
    raise RuntimeError(f"dagster-deltalake-pandas side failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


# -- memory (subprocess) -------------------------------------------------------------------
MEMORY_SCRIPT = textwrap.dedent("""
    import datetime as dt, json, sys, warnings
    warnings.filterwarnings("ignore")
    sys.path.insert(0, sys.argv[2])
    import pyarrow as pa
    from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl

    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    utc = dt.timezone.utc
    manager = StorageManagerImpl(LocalFileBackend(sys.argv[1]))
    key = {"data_type": "ohlcv", "exchange": "binance", "coin": "C00"}
    start = dt.datetime(2024, 1, 1, tzinfo=utc)
    manager.get_range(key, start, start + dt.timedelta(days=2))  # libraries loaded, table open
    pa.default_memory_pool().release_unused()
    baseline = status("VmRSS:")
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset the peak (VmHWM) to the current RSS
    frame = manager.get_range(key, start, start + dt.timedelta(days=int(sys.argv[3])))
    peak = status("VmHWM:")
    print("MEM-RESULT " + json.dumps({
        "rows": len(frame), "baseline_rss": baseline, "peak_rss": peak, "peak_increase": peak - baseline,
        "result_bytes": int(frame.memory_usage(deep=True).sum()), "final_rss": status("VmRSS:")}))
""")


def measure_memory(root: Path, days: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(root), str(REPO), str(days)],
                          capture_output=True, text=True, timeout=300)
    for line in proc.stdout.splitlines():
        if line.startswith("MEM-RESULT "):
            out = json.loads(line[len("MEM-RESULT "):])
            out["exit_code"] = proc.returncode
            return out
    raise RuntimeError(f"memory subprocess failed ({proc.returncode}): {proc.stderr[-2000:]}")


# -- the benchmark -------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI size (a few minutes on 2 cores)")
    parser.add_argument("--out", help="JSON result path (default: benchmarks/results/<size>-<time>.json)")
    parser.add_argument("--work", help="working folder (default: a temporary folder, removed at the end)")
    parser.add_argument("--no-ddl", action="store_true", help="skip the dagster-deltalake-pandas side")
    parser.add_argument("--writes-only", action="store_true",
                        help="only the year of daily writes and the save_entry cases (implies --no-ddl)")
    parser.add_argument("--ddl-venv", default=str(HERE / ".venv-ddl"))
    args = parser.parse_args()
    size_name = "quick" if args.quick else "full"
    size = SIZES[size_name]
    t_start = time.perf_counter()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="cb-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "size": size_name, "params": size, "started": dt.datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "versions": _versions(),
    }
    try:
        python = None if args.writes_only else ddl_python(args)
        _bench(work, size, report, python, writes_only=args.writes_only)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    out = Path(args.out) if args.out else HERE / "results" / f"{size_name}-{dt.datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(render_table(report))
    print(f"\nJSON: {out}   ({report['seconds']} s)")
    return 0


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    return {p: md.version(p) for p in ("dagster", "deltalake", "pandas", "pyarrow")}


def _bench(work: Path, size: dict, report: dict, ddl: Path | None, writes_only: bool = False) -> None:
    from deltalake import DeltaTable, write_deltalake

    from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
    from cb_storage_dagster.orchestration.resources import LocalStorageResource

    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)  # noqa: E731
    n_inst, n_days = size["instruments"], size["days"]
    coins = [coin_name(i) for i in range(n_inst)]
    root = work / "store"
    backend = LocalFileBackend(root)
    manager = StorageManagerImpl(backend)
    year = {c: candles(c, START, n_days) for c in coins}
    days = [START + dt.timedelta(days=i) for i in range(n_days)]

    # 1. A year of daily writes ---------------------------------------------------------
    log(f"Writing {n_inst} instruments x {n_days} days, one commit per {size['commit']} ...")
    commit_ms: list[float] = []
    t0 = time.perf_counter()
    for day in days:
        # Each day is written by a new manager, as each daily Dagster run is a new process
        # (a delta-rs table object that made hundreds of commits slows down: PERFORMANCE.md).
        manager = StorageManagerImpl(backend)
        frames = {c: day_of(year[c], day) for c in coins}
        if size["commit"] == "day":
            start = time.perf_counter()
            manager.write_partitions("ohlcv", pd.concat(frames.values(), ignore_index=True),
                                     WriteScope.of_slots(PartitionSlot(EXCHANGE, c, day) for c in coins))
            commit_ms.append((time.perf_counter() - start) * 1000)
        else:
            for c in coins:
                start = time.perf_counter()
                manager.save_entry({"data_type": "ohlcv", "exchange": EXCHANGE, "coin": c, "date": day}, frames[c])
                commit_ms.append((time.perf_counter() - start) * 1000)
    table_uri = manager.delta.uri("ohlcv")
    files_year = len(DeltaTable(table_uri).file_uris())
    report["year_of_daily_writes"] = {
        "commits": len(commit_ms), "seconds": round(time.perf_counter() - t0, 1),
        "commit_ms_median": statistics.median(commit_ms), "commit_ms_p90": float(np.percentile(commit_ms, 90)),
        "active_files": files_year, "version": manager.table_version("ohlcv"),
    }
    log(f"  {report['year_of_daily_writes']}")

    # 2. Write one instrument-day: save_entry vs raw write_deltalake -----------------------
    log("Case: write one instrument-day ...")
    target_coin = coins[0]
    write_days = days[100:100 + size["repeats"] + 1]
    frames = {d: day_of(year[target_coin], d) for d in write_days}
    normalized = {d: normalize(frames[d], DataType.OHLCV, exchange=EXCHANGE, coin=target_coin) for d in write_days}
    # Both sides start from objects opened now (a process that has just started).
    raw_table = DeltaTable(table_uri)
    fresh = StorageManagerImpl(backend)
    counter = {"ours": 0, "raw": 0}

    def ours_save() -> None:
        d = write_days[counter["ours"] % len(write_days)]
        counter["ours"] += 1
        fresh.save_entry({"data_type": "ohlcv", "exchange": EXCHANGE, "coin": target_coin, "date": d}, frames[d])


    def raw_write() -> None:
        d = write_days[counter["raw"] % len(write_days)]
        counter["raw"] += 1
        predicate = (f"exchange = '{EXCHANGE}' AND coin = '{target_coin}' AND month = '{d:%Y-%m}' "
                     f"AND date = '{d.isoformat()}'")
        raw_table.update_incremental()  # like ours: see the latest version before writing
        write_deltalake(raw_table, normalized[d], mode="overwrite", predicate=predicate,
                        partition_by=list(PARTITION_COLUMNS))

    # A one-day write is short, so a busy neighbour moves single samples a lot: more rounds.
    rounds = Rounds()
    rounds.run({"save_entry": ours_save, "raw write_deltalake": raw_write}, 2 * size["repeats"] + 1)
    report["write_one_day"] = rounds.summary()

    # save_entry of 30 days (43,200 rows, no date on the key) vs raw write_deltalake of the
    # same rows with the same predicate, on the same table: where validation that grows
    # faster than the write would show.
    log("Case: save_entry of 30 days of one instrument ...")
    month_days = days[200:230]
    month_frame = pd.concat([day_of(year[target_coin], d) for d in month_days], ignore_index=True)
    month_rows = normalize(month_frame, DataType.OHLCV, exchange=EXCHANGE, coin=target_coin)
    month_predicate = delta_predicate(WriteScope.of_slots(PartitionSlot(EXCHANGE, target_coin, d) for d in month_days))
    raw_month_table = DeltaTable(table_uri)
    fresh_month = StorageManagerImpl(backend)

    def ours_save_30() -> None:
        fresh_month.save_entry({"data_type": "ohlcv", "exchange": EXCHANGE, "coin": target_coin}, month_frame)

    def raw_write_30() -> None:
        raw_month_table.update_incremental()
        write_deltalake(raw_month_table, month_rows, mode="overwrite", predicate=month_predicate,
                        partition_by=list(PARTITION_COLUMNS))

    rounds = Rounds()
    rounds.run({"save_entry": ours_save_30, "raw write_deltalake": raw_write_30}, 2 * size["repeats"] + 1)
    report["write_30_days_save_entry"] = {**rounds.summary(), "rows": month_rows.num_rows}
    if writes_only:
        return

    # 2b. Intraday: merge 15 minutes into a stored day of 1,440 candles vs replacing the day.
    log("Case: merge 15 minutes into a day vs replace the day ...")
    report["merge_15_minutes"] = merge_case(backend, year[target_coin], days[300], target_coin, size["repeats"])
    log(f"  {report['merge_15_minutes']['median_ms']}")

    # IO manager materialize of one partition (fresh table) vs dagster-deltalake-pandas.
    bench_parts = dg.MultiPartitionsDefinition({
        "date": dg.DailyPartitionsDefinition(start_date=START.isoformat(), timezone="UTC"),
        "instrument": dg.StaticPartitionsDefinition([f"{EXCHANGE}:{c}" for c in coins]),
    })
    io_manager = MarketDataIOManager(storage=LocalStorageResource(root_path=str(root)))

    @dg.asset(name="ohlcv_bench", partitions_def=bench_parts, metadata={"data_type": "ohlcv"},
              io_manager_key="market_data_io_manager")
    def ohlcv_bench(context: dg.AssetExecutionContext) -> pd.DataFrame:
        out = []
        for key in context.partition_keys:
            day_key, instrument = key.split("|")
            out.append(by_day[(instrument.split(":")[1], dt.date.fromisoformat(day_key))])
        return out[0] if len(out) == 1 else pd.concat(out, ignore_index=True)

    # The asset's own work is a dictionary look-up: the runs measure Dagster and storage.
    by_day = {(target_coin, d): day_of(year[target_coin], d) for d in days}
    instance = dg.DagsterInstance.ephemeral()
    resources = {"market_data_io_manager": io_manager}

    def materialize(**kwargs: Any) -> None:
        result = dg.materialize([ohlcv_bench], resources=resources, instance=instance, run_config=QUIET, **kwargs)
        assert result.success

    io_days = days[: size["io_repeats"] + 1]
    io_counter = {"n": 0}

    def io_one() -> None:
        d = io_days[io_counter["n"] % len(io_days)]
        io_counter["n"] += 1
        materialize(partition_key=f"{d.isoformat()}|{EXCHANGE}:{target_coin}")

    io_rounds = Rounds()
    io_rounds.run({"IO manager materialize": io_one}, size["io_repeats"])
    report["write_one_day"]["IO manager materialize"] = {
        "median_ms": io_rounds.median("IO manager materialize"), "samples": io_rounds.samples["IO manager materialize"]}

    ddl_result = None
    if ddl is not None:
        log("Case: dagster-deltalake-pandas side (separate venv) ...")
        ddl_result = run_ddl_side(ddl, work, candles(target_coin, START, 30), size)
        report["dagster_deltalake_pandas"] = ddl_result

    # 3. Write 30 days of one instrument ---------------------------------------------------
    log("Case: write 30 days of one instrument ...")
    first, last = days[200], days[229]
    range_tags = {"dagster/asset_partition_range_start": f"{first.isoformat()}|{EXCHANGE}:{target_coin}",
                  "dagster/asset_partition_range_end": f"{last.isoformat()}|{EXCHANGE}:{target_coin}"}
    thirty = [first + dt.timedelta(days=i) for i in range(30)]
    thirty_norm = normalize(pd.concat([day_of(year[target_coin], d) for d in thirty], ignore_index=True),
                            DataType.OHLCV, exchange=EXCHANGE, coin=target_coin)
    months = sorted({d.strftime("%Y-%m") for d in thirty})
    raw30_predicate = (f"exchange = '{EXCHANGE}' AND coin = '{target_coin}' AND month IN "
                       f"({', '.join(repr(m) for m in months)}) AND date >= '{first}' AND date <= '{last}'")
    raw_bench = DeltaTable(manager.delta.uri("ohlcv_bench"))

    def range_run() -> None:
        materialize(tags=range_tags)

    def thirty_runs() -> None:
        for d in thirty:
            materialize(partition_key=f"{d.isoformat()}|{EXCHANGE}:{target_coin}")

    def raw_30() -> None:
        raw_bench.update_incremental()
        write_deltalake(raw_bench, thirty_norm, mode="overwrite", predicate=raw30_predicate,
                        partition_by=list(PARTITION_COLUMNS))

    w30 = Rounds()
    w30.run({"one range run": range_run, "raw one-commit write": raw_30}, size["repeats"])
    w30.run({"30 single-partition runs": thirty_runs}, size["thirty_runs_repeats"], warmup=0)
    report["write_30_days"] = {k: {"median_ms": w30.median(k), "samples": v} for k, v in w30.samples.items()}
    stored_30 = manager.get_range({"data_type": "ohlcv", "exchange": EXCHANGE, "coin": target_coin},
                                  _at(first), _at(last + dt.timedelta(days=1)), table="ohlcv_bench")
    report["write_30_days"]["rows_stored"] = len(stored_30)

    # 4. Reads before and after maintenance ---------------------------------------------
    floors = {}
    for n in (1, 30, n_days):
        path = work / f"floor_{n}.parquet"
        pq.write_table(normalize(year[target_coin].iloc[: n * MINUTES], DataType.OHLCV, exchange=EXCHANGE,
                                 coin=target_coin).drop_columns(["month"]), path)
        floors[n] = path
    report["reads"] = {}
    report["reads"]["before_maintenance"] = read_cases(manager, io_manager, bench_parts, table_uri, floors,
                                                       target_coin, n_days, size, log)
    report["files_before_maintenance"] = _file_counts(table_uri)
    log("Maintenance: compaction (sorted by time) + checkpoint + vacuum ...")
    result = mt.maintain_table(backend, "ohlcv", retention_hours=0, min_retention_hours=0)
    report["maintenance"] = {**result.summary, "compaction_seconds": result.compaction.seconds,
                             "checkpoint_seconds": result.checkpoint.seconds, "vacuum_seconds": result.vacuum.seconds}
    report["files_after_maintenance"] = _file_counts(table_uri)
    log(f"  {report['maintenance']}")
    report["reads"]["after_maintenance"] = read_cases(manager, io_manager, bench_parts, table_uri, floors,
                                                      target_coin, n_days, size, log)
    if ddl_result:
        report["reads"]["dagster_deltalake_pandas"] = ddl_result.get("reads")

    # 5. Memory -------------------------------------------------------------------------
    log("Case: memory of a 365-day get_range (subprocess) ...")
    report["memory"] = measure_memory(root, n_days)

    # 6. Listing ------------------------------------------------------------------------
    log(f"Case: listing at {size['list_instruments']} instruments x {size['list_days']} days ...")
    report["listing"] = listing_case(work / "listing", size, log)


def merge_case(backend, year: pd.DataFrame, day: dt.date, coin: str, repeats: int) -> dict:
    """A 15-minute intraday merge (``save_entry(mode="merge")``, each batch revising its 15
    candles, so every merge really updates) into a stored day of 1,440 candles, against the
    replace write of the whole day; plus re-merging a batch already stored (no commit)."""
    key = {"data_type": "ohlcv", "exchange": EXCHANGE, "coin": coin, "date": day}
    whole_day = day_of(year, day).reset_index(drop=True)
    manager = StorageManagerImpl(backend)
    manager.save_entry(key, whole_day)
    counter = {"merge": 0}

    def merge_15() -> None:
        n = counter["merge"]
        counter["merge"] += 1
        quarter = whole_day.iloc[(n % 96) * 15:(n % 96) * 15 + 15]
        manager.save_entry(key, quarter.assign(volume=quarter["volume"] + n + 1), mode="merge")

    same = whole_day.iloc[:15]
    manager.save_entry(key, same, mode="merge")

    def merge_again() -> None:
        manager.save_entry(key, same, mode="merge")

    def replace_day() -> None:
        manager.save_entry(key, whole_day)

    rounds = Rounds()
    rounds.run({"merge 15 min": merge_15, "replace the day": replace_day, "re-merge, no change": merge_again}, repeats)
    stored = manager.get_range({k: v for k, v in key.items() if k != "date"}, _at(day), _at(day + dt.timedelta(days=1)))
    return {
        "median_ms": {k: rounds.median(k) for k in rounds.samples},
        "samples": rounds.samples,
        "rows_after": len(stored),
        "correct": len(stored) == len(whole_day) and stored["timestamp"].is_unique,
    }


def _at(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


def _file_counts(table_uri: str) -> dict:
    from deltalake import DeltaTable

    table = DeltaTable(table_uri)
    root = Path(table_uri.removeprefix("file://"))
    stored = [p for p in root.rglob("*.parquet") if "_delta_log" not in p.parts and "_cb_registry" not in p.parts]
    return {"active_files": len(table.file_uris()), "stored_files": len(stored),
            "stored_bytes": sum(p.stat().st_size for p in stored),
            "log_files": len(list((root / "_delta_log").iterdir()))}


def read_cases(manager, io_manager, parts, table_uri, floors, coin, n_days, size, log) -> dict:
    from deltalake import DeltaTable, QueryBuilder

    raw_table = DeltaTable(table_uri)
    key = {"data_type": "ohlcv", "exchange": EXCHANGE, "coin": coin}
    out = {}

    def one_size(n: int) -> None:
        start, end = _at(START), _at(START + dt.timedelta(days=n))
        months = sorted({(START + dt.timedelta(days=i)).strftime("%Y-%m") for i in range(n)})
        month_list = ", ".join(f"'{m}'" for m in months)
        sql = (f"SELECT * FROM t WHERE exchange = '{EXCHANGE}' AND coin = '{coin}' AND month IN ({month_list}) "
               f"AND timestamp >= '{start.isoformat()}' AND timestamp < '{end.isoformat()}'")
        ts_type = pa.timestamp("us", tz="UTC")
        row_filter = (ds.field("timestamp") >= pa.scalar(start, ts_type)) & (ds.field("timestamp") < pa.scalar(end, ts_type))
        pruning = [("exchange", "=", EXCHANGE), ("coin", "=", coin), ("month", "in", months)]
        upstream = dg.build_output_context(asset_key=dg.AssetKey("ohlcv"), definition_metadata={"data_type": "ohlcv"})
        input_context = dg.build_input_context(
            upstream_output=upstream, asset_key=dg.AssetKey("downstream"), asset_partitions_def=parts,
            asset_partition_key_range=dg.PartitionKeyRange(
                f"{START.isoformat()}|{EXCHANGE}:{coin}",
                f"{(START + dt.timedelta(days=n - 1)).isoformat()}|{EXCHANGE}:{coin}"),
            dagster_type=dg.DagsterType(lambda _, __: True, name="Any"),
        )

        def raw_querybuilder():
            raw_table.update_incremental()
            return pa.table(QueryBuilder().register("t", raw_table).execute(sql).read_all()).to_pandas()

        def raw_dataset():
            raw_table.update_incremental()
            return raw_table.to_pyarrow_dataset(file_pruning_predicate=pruning).to_table(filter=row_filter).to_pandas()

        cases = {
            "get_range": lambda: manager.get_range(key, start, end),
            "IO manager load_input": lambda: io_manager.load_input(input_context),
            "raw deltalake QueryBuilder": raw_querybuilder,
            "raw deltalake pyarrow dataset": raw_dataset,
            "one-file floor (pyarrow)": lambda: pq.read_table(floors[n]).to_pandas(),
        }
        rounds = Rounds()
        rounds.run(cases, size["repeats"] if n < 365 else max(3, size["repeats"] // 2))
        medians = {k: rounds.median(k) for k in cases}
        rows = {k: len(v) for k, v in rounds.results.items()}
        raw_best = min(medians["raw deltalake QueryBuilder"], medians["raw deltalake pyarrow dataset"])
        out[str(n)] = {"median_ms": medians, "rows": rows, "expected_rows": n * MINUTES,
                       "correct": all(r == n * MINUTES for r in rows.values()), "raw_best_ms": raw_best,
                       "samples": rounds.samples}
        log(f"  read {n:>3} days: " + ", ".join(f"{k} {v:.1f} ms" for k, v in medians.items()))

    for n in (1, 30, n_days):
        one_size(n)
    return out


def listing_case(root: Path, size: dict, log) -> dict:
    backend = LocalFileBackend(root)
    writer = StorageManagerImpl(backend)
    coins = [f"L{i:03d}" for i in range(size["list_instruments"])]
    hours = pd.date_range("2024-01-01", periods=24, freq="1h", tz="UTC")
    for d in range(size["list_days"]):
        day = START + dt.timedelta(days=d)
        stamps = hours + pd.Timedelta(days=d)
        frame = pd.DataFrame({"exchange": EXCHANGE, "coin": np.repeat(coins, 24), "timestamp": np.tile(stamps, len(coins)),
                              "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 1.0})
        writer.write_partitions("ohlcv", frame, WriteScope.of_slots(PartitionSlot(EXCHANGE, c, day) for c in coins))
    files = len(writer.delta.open("ohlcv").file_uris())
    out: dict[str, Any] = {"instruments": len(coins), "days": size["list_days"], "active_files": files}
    cold = StorageManagerImpl(backend)
    start = time.perf_counter()
    cold_coins = cold.list_coins(EXCHANGE, "ohlcv")
    out["list_coins_cold_ms"] = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    cold_dates = cold.list_dates(EXCHANGE, coins[7], "ohlcv")
    out["list_dates_after_cold_coins_ms"] = (time.perf_counter() - start) * 1000

    def list_storage():
        items = backend.list_items("ohlcv")
        return sorted({p.split("coin=")[1].split("/")[0] for p in items if "coin=" in p})

    rounds = Rounds()
    rounds.run({
        "list_coins": lambda: writer.list_coins(EXCHANGE, "ohlcv"),
        "list_dates": lambda: writer.list_dates(EXCHANGE, coins[7], "ohlcv"),
        "listing the storage": list_storage,
    }, 7)
    out["median_ms"] = {k: rounds.median(k) for k in rounds.samples}
    out["correct"] = (
        rounds.results["list_coins"] == coins == cold_coins == rounds.results["listing the storage"]
        and rounds.results["list_dates"] == cold_dates
        and len(cold_dates) == size["list_days"]
    )
    compaction = mt.compact_table(backend, "ohlcv", sort_by_time=False)
    out["compaction_seconds"] = compaction.seconds
    mt.checkpoint_table(backend, "ohlcv")
    cold = StorageManagerImpl(backend)
    start = time.perf_counter()
    cold.list_coins(EXCHANGE, "ohlcv")
    out["list_coins_cold_after_checkpoint_ms"] = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    after_dates = cold.list_dates(EXCHANGE, coins[7], "ohlcv")
    out["list_dates_cold_after_compaction_ms"] = (time.perf_counter() - start) * 1000
    out["correct"] = out["correct"] and after_dates == cold_dates
    log(f"  {json.dumps({k: v for k, v in out.items() if k != 'samples'}, default=str)}")
    return out


# -- the table ---------------------------------------------------------------------------
def render_table(report: dict) -> str:
    rows: list[tuple[str, str, str, str, str, str]] = []

    def ms(v: float | None) -> str:
        return "-" if v is None else (f"{v:.1f} ms" if v < 1000 else f"{v / 1000:.2f} s")

    def x(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}x"

    def verdict(ok: bool | None) -> str:
        return "-" if ok is None else ("met" if ok else "NOT met")

    def save_entry_row(case: str, result: dict, target: float) -> tuple[str, str, str, str, str, str]:
        save, raw = result["save_entry"]["median_ms"], result["raw write_deltalake"]["median_ms"]
        cpu = ratio(result["save_entry"].get("cpu_median_ms"), result["raw write_deltalake"].get("cpu_median_ms"))
        return (case, "save_entry", ms(save), f"raw write_deltalake {ms(raw)}", x(ratio(save, raw)),
                f"<= {target:.2f}x: {verdict(ratio(save, raw) <= target)}" + ("" if cpu is None else f" (CPU time {x(cpu)})"))

    w = report["write_one_day"]
    rows.append(save_entry_row("write 1 instrument-day", w, 1.15))
    m30 = report["write_30_days_save_entry"]
    rows.append(save_entry_row(f"write 30 days, 1 instrument ({m30['rows']:,} rows)", m30, 1.20))
    if "write_30_days" not in report:  # --writes-only
        return _render(rows, report)
    io = w["IO manager materialize"]["median_ms"]
    ddl = (report.get("dagster_deltalake_pandas") or {}).get("write_one_day_ms")
    rows.append(("write 1 instrument-day", "IO manager materialize", ms(io),
                 f"dagster-deltalake-pandas {ms(ddl)}", x(ratio(io, ddl)),
                 f"<= 1.00x: {verdict(None if ddl is None else io <= ddl)}"))
    mg = report["merge_15_minutes"]["median_ms"]
    rows.append(("merge 15 min into a 1,440-candle day", "save_entry(mode='merge')", ms(mg["merge 15 min"]),
                 f"replace the day {ms(mg['replace the day'])}; re-merge unchanged {ms(mg['re-merge, no change'])}",
                 x(ratio(mg["merge 15 min"], mg["replace the day"])),
                 "-" + ("" if report["merge_15_minutes"]["correct"] else "; ROWS WRONG")))
    w30 = report["write_30_days"]
    one, many, raw30 = (w30[k]["median_ms"] for k in ("one range run", "30 single-partition runs", "raw one-commit write"))
    rows.append(("write 30 days, 1 instrument", "one range run", ms(one),
                 f"30 runs {ms(many)}; raw 1 commit {ms(raw30)}", f"{many / one:.1f}x faster",
                 f">= 10x: {verdict(many / one >= 10)}"))
    for phase in ("before_maintenance", "after_maintenance"):
        for n, case in report["reads"][phase].items():
            med = case["median_ms"]
            label = f"read {n} d ({phase.split('_')[0]} maint.)"
            check = "rows ok" if case["correct"] else f"ROWS WRONG {case['rows']}"
            r = ratio(med["get_range"], case["raw_best_ms"])
            rows.append((label, "get_range", ms(med["get_range"]),
                         f"raw deltalake {ms(case['raw_best_ms'])}; floor {ms(med['one-file floor (pyarrow)'])}",
                         x(r), f"<= 1.10x: {verdict(r <= 1.10)}; {check}"))
            r2 = ratio(med["IO manager load_input"], case["raw_best_ms"])
            rows.append((label, "IO manager load_input", ms(med["IO manager load_input"]), "raw deltalake", x(r2),
                         f"<= 1.10x: {verdict(r2 <= 1.10)}"))
            if int(n) >= 365:
                f = ratio(med["get_range"], med["one-file floor (pyarrow)"])
                rows.append((label, "get_range vs floor", ms(med["get_range"]),
                             f"one Parquet file {ms(med['one-file floor (pyarrow)'])}", x(f),
                             f"<= 2x floor: {verdict(f <= 2.0)}"))
    ddl_reads = report["reads"].get("dagster_deltalake_pandas") or {}
    for n, case in ddl_reads.items():
        expected = int(n) * 1440
        rows.append((f"read {n} d", "dagster-deltalake-pandas load_input", ms(case["ms"]), "(for reference)",
                     "-", "rows ok" if case["rows"] == expected else f"ROWS WRONG: {case['rows']} of {expected}"))
    lst = report["listing"]
    for name in ("list_coins", "list_dates"):
        v = lst["median_ms"][name]
        rows.append((f"{name} ({lst['instruments']} x {lst['days']} d)", f"{name} (table open)", ms(v),
                     f"listing the storage {ms(lst['median_ms']['listing the storage'])}", "-",
                     f"<= 50 ms: {verdict(v <= 50)}" + ("" if lst["correct"] else "; WRONG")))
    rows.append((f"list_coins ({lst['instruments']} x {lst['days']} d)", "list_coins, cold (opens table)",
                 ms(lst["list_coins_cold_ms"]), f"after checkpoint {ms(lst['list_coins_cold_after_checkpoint_ms'])}",
                 "-", f"<= 50 ms: {verdict(lst['list_coins_cold_ms'] <= 50)}"))
    mem = report["memory"]
    mr = mem["peak_increase"] / mem["result_bytes"]
    rows.append(("memory, 365-day get_range", "peak RSS increase", f"{mem['peak_increase'] / 1e6:.0f} MB",
                 f"result {mem['result_bytes'] / 1e6:.0f} MB", x(mr), f"<= 2.5x: {verdict(mr <= 2.5)}"))
    fb, fa = report["files_before_maintenance"], report["files_after_maintenance"]
    m = report["maintenance"]
    rows.append(("files after a year of daily writes", "active / stored", f"{fb['active_files']} / {fb['stored_files']}",
                 f"after maintenance {fa['active_files']} / {fa['stored_files']}", "-",
                 f"compaction {m['compaction_seconds']:.1f} s"))
    return _render(rows, report)


def _render(rows: list[tuple[str, str, str, str, str, str]], report: dict) -> str:
    widths = [max(len(r[i]) for r in rows + [HEADER]) for i in range(6)]
    line = lambda r: "| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(r)) + " |"  # noqa: E731
    out = [line(HEADER), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    y = report["year_of_daily_writes"]
    out.append("")
    out.append(f"Size: {report['size']} ({report['params']['instruments']} instruments x {report['params']['days']} days, "
               f"{y['commits']} commits, median commit {y['commit_ms_median']:.0f} ms); "
               f"{report['machine']['cpus']} CPUs; {report['versions']}")
    return "\n".join(out)


QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
HEADER = ("case", "ours", "median", "compared with", "ratio", "target")

if __name__ == "__main__":
    from cb_storage_dagster.entrypoint import run_and_exit

    run_and_exit(main)  # exit 0 despite delta-rs' abort at interpreter exit (STACK-NOTES)
