"""Peer benchmark: the product (both Delta layouts) against ArcticDB on the same data, one run.

ArcticDB 6.28 pins ``pandas<3``, so it cannot share the product's environment: this script
creates ``benchmarks/.venv-arcticdb`` (system ``python3 -m venv`` + ``pip install
arcticdb==6.28.2`` from the configured package index) and runs
:mod:`peer_arcticdb_worker` there, talking to it over a pipe (JSON lines). Both sides
generate the same rows from :mod:`peer_data` (same seeds); every read is checked for equal
row counts and equal sums of ``close``.

ArcticDB: LMDB in a temporary folder, one symbol per instrument, ``write_batch`` /
``append_batch`` per exchange-day, ``read`` with a date range, ``read_batch`` for every
instrument, ``compact_data_batch`` as maintenance. The product: ``write_partitions`` of
one exchange-day per commit, ``get_range``, ``read_partitions`` of the exchange-day,
``list_coins``, ``maintain_table``; one table per layout.

Cases (rounds interleaved across the three systems, medians reported):
write one exchange-day; one instrument x D days warm and x 1 day warm; one instrument x D
days in a new process (open + read, timed inside the process after its imports); every
instrument x 1 day; list instruments in a new process; maintenance; reads before and after
maintenance. Each read phase starts with the writes' dirty pages written back (``os.sync``):
the product's writers, like delta-rs', leave data files to the kernel's write-back, which
otherwise runs, gigabytes of it, during the first reads of the phase on both sides (the issue's
targets are for an idle machine). New-process cases take one new process per system first
(not counted: the first new process after the writes reads the interpreter's own files again)
and as many rounds as the warm cases.

    python benchmarks/peer_bench.py                          # 2,000 x 30 (the issue's size)
    python benchmarks/peer_bench.py --instruments 200 --days 10 --rounds 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
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
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from peer_data import EXCHANGE, MINUTES, coin_name, exchange_day  # noqa: E402
from peer_data import days as day_list  # noqa: E402

from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl, WriteScope  # noqa: E402
from cb_storage_dagster.storage import maintenance as mt  # noqa: E402

ARCTICDB_VERSION = "6.28.2"
VENV = HERE / ".venv-arcticdb"
WORKER = HERE / "peer_arcticdb_worker.py"
SYSTEMS = ("exchange", "instrument", "arcticdb")


# -- the ArcticDB side --------------------------------------------------------------------
def arcticdb_python() -> Path:
    """The ArcticDB venv's interpreter, created on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV} (arcticdb=={ARCTICDB_VERSION})", flush=True)
        subprocess.run(["python3", "-m", "venv", str(VENV)], check=True)
    ok = subprocess.run([str(python), "-c", f"import arcticdb; assert arcticdb.__version__ == '{ARCTICDB_VERSION}'"],
                        capture_output=True)
    if ok.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"arcticdb=={ARCTICDB_VERSION}"], check=True)
    return python


class ArcticWorker:
    """The worker process and its pipe."""

    def __init__(self, python: Path, uri: str, instruments: int) -> None:
        self.python, self.uri = python, uri
        self.process = subprocess.Popen([str(python), str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, bufsize=1)
        self.version = self.call("init", uri=uri, instruments=instruments)["version"]

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        if "error" in answer:
            raise RuntimeError(f"ArcticDB worker, {op}: {answer['error']}")
        return answer

    def cold(self, *args: str) -> dict[str, Any]:
        out = subprocess.run([str(self.python), str(WORKER), *args], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def close(self) -> None:
        if self.process.poll() is None:
            self.call_quit()

    def call_quit(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.process.stdin.flush()
        self.process.wait(timeout=60)


# -- the product side ---------------------------------------------------------------------
COLD = """
import json, os, sys, time, datetime as dt
from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl
root, op = sys.argv[1], sys.argv[2]
t = time.perf_counter()
manager = StorageManagerImpl(LocalFileBackend(root))
if op == "list":
    out = {"count": len(manager.list_coins(sys.argv[3], "ohlcv"))}
else:
    key = {"data_type": "ohlcv", "exchange": sys.argv[3], "coin": sys.argv[4]}
    frame = manager.get_range(key, dt.datetime.fromisoformat(sys.argv[5]), dt.datetime.fromisoformat(sys.argv[6]))
    out = {"rows": len(frame), "close_sum": float(frame["close"].sum())}
out["ms"] = (time.perf_counter() - t) * 1000
print(json.dumps(out)); sys.stdout.flush(); os._exit(0)
"""


def product_table(instruments: int, day: dt.date) -> pa.Table:
    data = exchange_day(instruments, day)
    n = len(data["close"])
    return pa.table({
        "exchange": pa.array([EXCHANGE] * n, pa.string()),
        "coin": pa.array(data["coin"], pa.string()),
        "timestamp": pa.array(data["timestamp"], pa.timestamp("us", tz="UTC")),
        **{c: pa.array(data[c]) for c in ("open", "high", "low", "close", "volume")},
    })


class Product:
    """One product table of one layout: a writer manager and a separate reader manager."""

    def __init__(self, root: Path, layout: str) -> None:
        self.root, self.layout = root, layout
        self.writer = StorageManagerImpl(LocalFileBackend(root), default_layout=layout)
        self.reader = StorageManagerImpl(LocalFileBackend(root))

    def write_day(self, table: pa.Table, day: dt.date) -> dict[str, Any]:
        scope = WriteScope.of_exchange_days([(EXCHANGE, day)])
        gc.collect()
        t = time.perf_counter()
        self.writer.write_partitions("ohlcv", table, scope)
        return {"ms": (time.perf_counter() - t) * 1000}

    def read(self, coin: str, start: str, end: str) -> dict[str, Any]:
        key = {"data_type": "ohlcv", "exchange": EXCHANGE, "coin": coin}
        s, e = utc(start), utc(end)
        gc.collect()
        t = time.perf_counter()
        frame = self.reader.get_range(key, s, e)
        ms = (time.perf_counter() - t) * 1000
        return {"ms": ms, "rows": len(frame), "close_sum": float(frame["close"].sum())}

    def read_all(self, start: str, end: str) -> dict[str, Any]:
        day = dt.date.fromisoformat(start)
        scope = WriteScope.of_exchange_days([(EXCHANGE, day)])
        gc.collect()
        t = time.perf_counter()
        table = self.reader.read_partitions("ohlcv", scope)
        ms = (time.perf_counter() - t) * 1000
        return {"ms": ms, "rows": table.num_rows, "close_sum": float(np.sum(table.column("close").to_numpy()))}

    def cold(self, *args: str) -> dict[str, Any]:
        env = dict(os.environ, PYTHONPATH=str(HERE.parent))
        out = subprocess.run([sys.executable, "-c", COLD, str(self.root), *args], capture_output=True, text=True,
                             check=True, env=env)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def maintain(self) -> dict[str, Any]:
        t = time.perf_counter()
        mt.maintain_table(LocalFileBackend(self.root), "ohlcv", retention_hours=0, min_retention_hours=0)
        return {"ms": (time.perf_counter() - t) * 1000}


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


# -- the run ------------------------------------------------------------------------------
def check_same(case: str, answers: dict[str, dict[str, Any]]) -> None:
    """Every system read the same rows (count and sum of ``close``)."""
    rows = {s: a["rows"] for s, a in answers.items()}
    sums = {s: a["close_sum"] for s, a in answers.items()}
    if len(set(rows.values())) != 1:
        raise AssertionError(f"{case}: row counts differ: {rows}")
    ref = next(iter(sums.values()))
    if any(abs(v - ref) > 1e-9 * max(1.0, abs(ref)) for v in sums.values()):
        raise AssertionError(f"{case}: sums of close differ: {sums}")


def rounds(case: str, calls: dict[str, Any], count: int, results: dict[str, Any], expect_rows: int | None = None,
           warmup: int = 1) -> None:
    """``count`` interleaved rounds (rotating order) after ``warmup``; medians into results."""
    samples: dict[str, list[float]] = {s: [] for s in calls}
    names = list(calls)
    for r in range(warmup + count):
        order = names[r % len(names):] + names[:r % len(names)]
        answers = {s: calls[s]() for s in order}
        if "rows" in next(iter(answers.values())) or "count" in next(iter(answers.values())):
            if "count" in next(iter(answers.values())):
                counts = {s: a["count"] for s, a in answers.items()}
                if len(set(counts.values())) != 1 or (expect_rows is not None and expect_rows not in counts.values()):
                    raise AssertionError(f"{case}: counts differ: {counts}")
            else:
                check_same(case, answers)
                if expect_rows is not None and answers[names[0]]["rows"] != expect_rows:
                    raise AssertionError(f"{case}: {answers[names[0]]['rows']} rows, expected {expect_rows}")
        if r >= warmup:
            for s, a in answers.items():
                samples[s].append(a["ms"])
    results[case] = {s: statistics.median(v) for s, v in samples.items()}
    results[case + " (samples)"] = samples
    print(f"  {case}: " + ", ".join(f"{s} {results[case][s]:,.1f} ms" for s in names), flush=True)


def read_cases(phase: str, products: dict[str, Product], arctic: ArcticWorker, n: int, days: list[dt.date],
               count: int, results: dict[str, Any]) -> None:
    coin = coin_name(n // 3)
    first, last = days[0].isoformat(), (days[-1] + dt.timedelta(days=1)).isoformat()
    one_day = days[len(days) // 2]
    d1, d2 = one_day.isoformat(), (one_day + dt.timedelta(days=1)).isoformat()
    D = len(days)

    def all_systems(fn_product, fn_arctic) -> dict[str, Any]:
        calls = {layout: (lambda p=p: fn_product(p)) for layout, p in products.items()}
        calls["arcticdb"] = fn_arctic
        return calls

    os.sync()  # (see the module docstring: the phase on an idle machine)

    rounds(f"1 instrument x {D} days, warm, {phase}", all_systems(
        lambda p: p.read(coin, first, last), lambda: arctic.call("read", coin=coin, start=first, end=last)),
        count, results, D * MINUTES)
    rounds(f"1 instrument x 1 day, warm, {phase}", all_systems(
        lambda p: p.read(coin, d1, d2), lambda: arctic.call("read", coin=coin, start=d1, end=d2)),
        count, results, MINUTES)
    rounds(f"1 instrument x {D} days, new process, {phase}", all_systems(
        lambda p: p.cold("read", EXCHANGE, coin, first + "T00:00:00+00:00", last + "T00:00:00+00:00"),
        lambda: arctic.cold("--cold-read", arctic.uri, coin, first, last)),
        count, results, D * MINUTES)
    rounds(f"every instrument x 1 day, {phase}", all_systems(
        lambda p: p.read_all(d1, d2), lambda: arctic.call("read_all", start=d1, end=d2)),
        max(3, count // 2), results, n * MINUTES)
    rounds(f"list {n} instruments, new process, {phase}", all_systems(
        lambda p: p.cold("list", EXCHANGE), lambda: arctic.cold("--cold-list", arctic.uri)),
        count, results, n)


def run(n: int, days: list[dt.date], count: int, work: Path) -> dict[str, Any]:
    python = arcticdb_python()
    products = {layout: Product(work / layout, layout) for layout in ("exchange", "instrument")}
    (work / "arcticdb").mkdir(parents=True, exist_ok=True)
    arctic = ArcticWorker(python, f"lmdb://{work / 'arcticdb'}", n)
    results: dict[str, Any] = {"instruments": n, "days": len(days), "rounds": count, "arcticdb": arctic.version,
                               "load_before": os.getloadavg()}
    try:
        writes: dict[str, list[float]] = {s: [] for s in SYSTEMS}
        for i, day in enumerate(days):
            table = product_table(n, day)
            order = list(SYSTEMS[i % 3:] + SYSTEMS[:i % 3])
            for s in order:
                answer = arctic.call("write_day", day=day.isoformat()) if s == "arcticdb" else products[s].write_day(table, day)
                writes[s].append(answer["ms"])
            print(f"  day {i + 1}/{len(days)} written: " + ", ".join(f"{s} {writes[s][-1]:,.0f} ms" for s in SYSTEMS),
                  flush=True)
        steady = slice(1, None) if len(days) > 1 else slice(None)
        results["write one exchange-day"] = {s: statistics.median(v[steady]) for s, v in writes.items()}
        results["write one exchange-day (samples)"] = writes
        read_cases("before maintenance", products, arctic, n, days, count, results)
        maintenance = {s: (arctic.call("maintain") if s == "arcticdb" else products[s].maintain())["ms"] for s in SYSTEMS}
        results["maintenance"] = maintenance
        print("  maintenance: " + ", ".join(f"{s} {v / 1000:,.1f} s" for s, v in maintenance.items()), flush=True)
        read_cases("after maintenance", products, arctic, n, days, count, results)
    finally:
        arctic.close()
    results["load_after"] = os.getloadavg()
    return results


def report(results: dict[str, Any]) -> str:
    lines = [f"{results['instruments']} instruments x {results['days']} days, {results['rounds']} rounds, "
             f"ArcticDB {results['arcticdb']}, load {results['load_before'][0]:.2f} -> {results['load_after'][0]:.2f}",
             "", "| case | product, exchange layout | product, instrument layout | ArcticDB | ratios exchange / instrument vs ArcticDB |",
             "|---|---|---|---|---|"]
    for case, values in results.items():
        if not isinstance(values, dict) or case.endswith("(samples)") or set(values) != set(SYSTEMS):
            continue
        unit = (lambda v: f"{v / 1000:,.2f} s") if case == "maintenance" else (lambda v: f"{v:,.1f} ms")
        a = values["arcticdb"]
        lines.append(f"| {case} | {unit(values['exchange'])} | {unit(values['instrument'])} | {unit(a)} | "
                     f"{values['exchange'] / a:.2f}x / {values['instrument'] / a:.2f}x |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instruments", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds per read case (after 1 warm-up)")
    parser.add_argument("--out", help="JSON result path (default: benchmarks/results/peer-<time>.json)")
    parser.add_argument("--work", help="working folder (default: a temporary folder, removed at the end)")
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="cb-bench-peer-"))
    out = Path(args.out) if args.out else HERE / "results" / f"peer-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"peer benchmark: {args.instruments} instruments x {args.days} days in {work}", flush=True)
    try:
        results = run(args.instruments, day_list(args.days), args.rounds, work)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print()
    print(report(results))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    from cb_storage_dagster.entrypoint import run_and_exit

    run_and_exit(main)
