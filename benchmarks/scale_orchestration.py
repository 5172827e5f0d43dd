"""Orchestration at scale: the daily tick, the instruments sensor and one exchange-day run.

Measures, on a throw-away Dagster instance and a temporary local store:

* the instruments sensor at N instruments (first tick registering all, a tick with nothing
  to do, a tick replacing a quarter of them) and the daily tick of the ``instrument``
  profile (range runs over registered blocks) and of the ``exchange`` profile (one run per
  exchange): wall time of each evaluation and the runs requested;
* one day x N instruments of one exchange, end to end in the ``exchange`` profile: one
  ``dagster.materialize`` of the four assets and their checks into local Delta tables (the
  synthetic source at its default 2,880 trades per instrument-day): wall time, runs,
  commits per table, rows;
* partitions per asset of both profiles at 20 exchanges x 2,000 instruments x 5 years;
* issue 17's targets: the synthetic source and the two candle transforms for one
  exchange-day of N instruments, and the peak RSS of one run of D exchange-days x N
  instruments (trades -> ohlcv_1m -> ohlcv_1d with their checks, one range run), each run in
  a child process that reports its own peak (``ru_maxrss``), for each D of ``--days``
  (default 2 and 31): memory must not grow with D (``CB_STORAGE_CHUNK_INSTRUMENTS`` bounds it).

Run: ``make bench-scale-orchestration`` (N = 2,000, D = 2 and 31: tens of minutes on 2 cores),
or ``python benchmarks/scale_orchestration.py --instruments 200 --days 2,8 --skip-tick`` for a
quick look.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The package first, as the Dagster code location loads it: it configures delta-rs' allocator
# before delta-rs loads (storage/delta/backpressure.py).
import cb_storage_dagster  # noqa: E402, F401, I001
import dagster as dg  # noqa: E402
from deltalake import DeltaTable  # noqa: E402

from cb_storage_dagster.orchestration import SyntheticMarketDataSource, build_pipeline  # noqa: E402
from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager  # noqa: E402
from cb_storage_dagster.orchestration.resources import LocalStorageResource  # noqa: E402
from cb_storage_dagster.orchestration.sensors import INSTRUMENTS_FILE_ENV_VAR, build_instruments_sensor  # noqa: E402
from cb_storage_dagster_tests.support.sensors import apply_partition_requests  # noqa: E402

TABLES = ("trades", "order_book", "ohlcv_1m", "ohlcv_1d")
SCHEDULED = dt.datetime(2024, 3, 1, 0, 30, tzinfo=dt.UTC)


def universe(instruments: int, exchanges: int) -> list[str]:
    """``instruments`` keys spread over ``exchanges``, interleaved as a registry might list them."""
    per_exchange = -(-instruments // exchanges)
    keys = [f"ex{e:02d}:C{c:04d}" for c in range(per_exchange) for e in range(exchanges)]
    return keys[:instruments]


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def tick(instance: dg.DagsterInstance, profile: str, keys: list[str]) -> tuple[int, float]:
    repo = build_pipeline(profile, keys).definitions(
        {"market_data_io_manager": dg.InMemoryIOManager(), "market_data_source": SyntheticMarketDataSource()},
    ).get_repository_def()
    schedule = repo.get_schedule_def("daily_market_data_schedule")
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=SCHEDULED, repository_def=repo) as context:
        data, seconds = timed(lambda: schedule.evaluate_tick(context))
    return len(data.run_requests or []), seconds


def bench_tick_and_sensor(instruments: int, exchanges: int, workdir: Path) -> dict[str, object]:
    keys = universe(instruments, exchanges)
    listing = workdir / "instruments.txt"
    os.environ[INSTRUMENTS_FILE_ENV_VAR] = str(listing)
    out: dict[str, object] = {"instruments": instruments, "exchanges": exchanges}
    instruments_sensor = build_instruments_sensor()
    with dg.instance_for_test() as instance:
        listing.write_text("\n".join(keys))
        result, out["sensor_first_tick_s"] = timed(lambda: instruments_sensor(dg.build_sensor_context(instance=instance)))
        _, out["sensor_apply_first_s"] = timed(lambda: apply_partition_requests(instance, result))
        _, out["sensor_unchanged_tick_s"] = timed(lambda: instruments_sensor(dg.build_sensor_context(instance=instance)))
        quarter = instruments // 4
        listing.write_text("\n".join([*keys[quarter:], *(f"new:N{i:04d}" for i in range(quarter))]))
        result, out["sensor_replace_quarter_tick_s"] = timed(
            lambda: instruments_sensor(dg.build_sensor_context(instance=instance)))
        _, out["sensor_apply_replace_quarter_s"] = timed(lambda: apply_partition_requests(instance, result))
        out["instrument_tick_runs"], out["instrument_tick_s"] = tick(instance, "instrument", keys)
        out["exchange_tick_runs"], out["exchange_tick_s"] = tick(instance, "exchange", keys)
    del os.environ[INSTRUMENTS_FILE_ENV_VAR]
    return out


def bench_exchange_day(instruments: int, workdir: Path, layout: str = "exchange") -> dict[str, object]:
    keys = [f"binance:C{c:04d}" for c in range(instruments)]
    pipeline = build_pipeline("exchange", keys)
    store = workdir / "store"
    # The layout the exchange profile's definitions create their tables in (README).
    io_manager = MarketDataIOManager(storage=LocalStorageResource(root_path=str(store)), delta_layout=layout)
    with dg.instance_for_test() as instance:
        result, seconds = timed(lambda: dg.materialize(
            [*pipeline.assets.all, *pipeline.checks.all],
            resources={"market_data_io_manager": io_manager, "market_data_source": SyntheticMarketDataSource()},
            partition_key=dg.MultiPartitionKey({"date": "2024-01-02", "exchange": "binance"}),
            instance=instance, raise_on_error=False,
        ))
    out: dict[str, object] = {
        "instruments": instruments, "runs": 1, "success": result.success, "wall_s": round(seconds, 1),
        "checks_passed": sum(e.passed for e in result.get_asset_check_evaluations()),
        "checks": len(result.get_asset_check_evaluations()),
    }
    for table in TABLES:
        if not (store / table).exists():  # order_book: a daily run stores no order book
            continue
        history = DeltaTable(str(store / table)).history()
        out[f"{table}_writes"] = sum(h["operation"] == "WRITE" for h in history)
        out[f"{table}_rows"] = DeltaTable(str(store / table)).to_pyarrow_dataset().count_rows()
    out["layout"] = layout
    step_seconds = {}
    for event in result.all_events:
        if event.is_step_success:
            step_seconds[event.step_key] = round(event.event_specific_data.duration_ms / 1000, 1)
    out["step_seconds"] = step_seconds
    return out


def bench_source_and_transforms(instruments: int, rounds: int = 3) -> dict[str, object]:
    """The synthetic source and both transforms for ``rounds`` consecutive exchange-days of
    ``instruments`` (as a run of several days meets them): each time per round, and the median.
    The first round of a process also pays for its first large allocations."""
    from cb_storage_dagster.transforms import resample_ohlcv, trades_to_ohlcv

    coins = [f"C{c:04d}" for c in range(instruments)]
    source = SyntheticMarketDataSource()
    times: dict[str, list[float]] = {"synthetic_source_s": [], "trades_to_ohlcv_1m_s": [], "ohlcv_1m_to_1d_s": []}
    for day in range(rounds):
        trades, source_s = timed(lambda d=dt.date(2024, 1, 2 + day): source.fetch_trades_many("binance", coins, d))
        candles, minute_s = timed(lambda t=trades: trades_to_ohlcv(t, "1min"))
        _, daily_s = timed(lambda c=candles: resample_ohlcv(c, "1D"))
        for name, seconds in zip(times, (source_s, minute_s, daily_s)):
            times[name].append(round(seconds, 2))
        rows = {"trades": len(trades), "candles": len(candles)}
        del trades, candles
    out: dict[str, object] = {"instruments": instruments, "rounds": rounds, **rows}
    for name, values in times.items():
        out[name] = round(statistics.median(values), 2)
        out[name.removesuffix("_s") + "_rounds_s"] = values
    return out


def run_days(instruments: int, days: int, workdir: Path, chunk: int | None, layout: str) -> dict[str, object]:
    """One range run of ``days`` exchange-days x ``instruments`` (in this process)."""
    keys = [f"binance:C{c:04d}" for c in range(instruments)]
    pipeline = build_pipeline("exchange", keys)
    store = workdir / "store"
    io_manager = MarketDataIOManager(storage=LocalStorageResource(root_path=str(store)),
                                     chunk_instruments=chunk, delta_layout=layout)
    assets = [a for a in pipeline.assets.all if a.key.to_user_string() != "order_book"]
    first, last = dt.date(2024, 1, 1), dt.date(2024, 1, days)
    with dg.instance_for_test() as instance:
        result, seconds = timed(lambda: dg.materialize(
            [*assets, *pipeline.checks.all], selection=[a.key for a in assets],
            resources={"market_data_io_manager": io_manager, "market_data_source": SyntheticMarketDataSource()},
            tags={"dagster/asset_partition_range_start": f"{first.isoformat()}|binance",
                  "dagster/asset_partition_range_end": f"{last.isoformat()}|binance"},
            instance=instance, raise_on_error=False,
        ))
    out: dict[str, object] = {"instruments": instruments, "days": days, "success": result.success,
                              "wall_s": round(seconds, 1)}
    for table in ("trades", "ohlcv_1m", "ohlcv_1d"):
        history = DeltaTable(str(store / table)).history()
        out[f"{table}_writes"] = sum(h["operation"] == "WRITE" for h in history)
        out[f"{table}_rows"] = DeltaTable(str(store / table)).to_pyarrow_dataset().count_rows()
    out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)
    return out


def bench_memory(instruments: int, days: list[int], chunk: int | None, layout: str) -> list[dict[str, object]]:
    """:func:`run_days` for each D of ``days``, each in a child process of its own."""
    rows = []
    for d in days:
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, __file__, "--child-run", str(d), "--instruments", str(instruments),
                       "--layout", layout, "--workdir", tmp] + (["--chunk", str(chunk)] if chunk else [])
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                rows.append({"days": d, "error": done.stderr[-2000:]})
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def partition_counts(exchanges: int = 20, per_exchange: int = 2000, years: int = 5) -> dict[str, int]:
    days = (dt.date(2024 + years, 1, 1) - dt.date(2024, 1, 1)).days
    return {"days": days, "instrument_profile": exchanges * per_exchange * days,
            "exchange_profile": exchanges * days}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=2000)
    parser.add_argument("--exchanges", type=int, default=20, help="exchanges the tick/sensor universe spans")
    parser.add_argument("--skip-run", action="store_true", help="only the tick, the sensor and the counts")
    parser.add_argument("--skip-tick", action="store_true", help="no tick/sensor measurements")
    parser.add_argument("--days", default="2,31", help="exchange-days per memory run, comma-separated ('' : none)")
    parser.add_argument("--chunk", type=int, help="instruments per chunk (default CB_STORAGE_CHUNK_INSTRUMENTS)")
    parser.add_argument("--layout", default="exchange", choices=["instrument", "exchange"],
                        help="Delta layout of the memory runs (the exchange profile creates exchange-layout tables)")
    parser.add_argument("--child-run", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    warnings.simplefilter("ignore", dg.BetaWarning)  # backfill_policy / partitioned checks notices
    warnings.simplefilter("ignore", dg.PreviewWarning)
    if args.child_run:
        print(json.dumps(run_days(args.instruments, args.child_run, args.workdir, args.chunk, args.layout)))
        return
    results: dict[str, object] = {"partitions_per_asset": partition_counts(), "load_before": os.getloadavg()}
    results["source_and_transforms"] = bench_source_and_transforms(args.instruments)
    print(json.dumps(results, indent=1, default=str), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_tick:
            results["tick_and_sensor"] = bench_tick_and_sensor(args.instruments, args.exchanges, Path(tmp))
            print(json.dumps(results, indent=1, default=str), flush=True)
        if not args.skip_run:
            results["exchange_day_run"] = bench_exchange_day(args.instruments, Path(tmp), args.layout)
    days = [int(d) for d in args.days.split(",") if d.strip()]
    if days:
        results["memory_runs"] = bench_memory(args.instruments, days, args.chunk, args.layout)
    results["load_after"] = os.getloadavg()
    results["targets"] = targets(results)
    print(json.dumps(results, indent=1, default=str))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


def targets(results: dict[str, object]) -> list[str]:
    """Issue 17's targets next to the measured values (at the measured size; the targets are
    stated for 2,000 instruments)."""
    lines = []
    st = results.get("source_and_transforms") or {}
    each = f"median of {st.get('rounds')} exchange-days x {st.get('instruments')}"
    lines.append(f"trades -> ohlcv_1m, {each}: {st.get('trades_to_ohlcv_1m_s')} s "
                 f"(rounds {st.get('trades_to_ohlcv_1m_rounds_s')}; target <= 3 s at 2,000)")
    lines.append(f"ohlcv_1m -> ohlcv_1d: {st.get('ohlcv_1m_to_1d_s')} s (rounds {st.get('ohlcv_1m_to_1d_rounds_s')}; "
                 "target <= 0.5 s)")
    lines.append(f"synthetic source per exchange-day: {st.get('synthetic_source_s')} s "
                 f"(rounds {st.get('synthetic_source_rounds_s')}; target <= 3 s)")
    run = results.get("exchange_day_run")
    if isinstance(run, dict):
        lines.append(f"one exchange-day end to end: {run.get('wall_s')} s (target <= 20 s)")
    memory = [m for m in results.get("memory_runs") or [] if "peak_rss_gb" in m]
    for m in memory:
        lines.append(f"peak RSS, {m['days']} exchange-days x {m['instruments']}: {m['peak_rss_gb']} GB "
                     f"(target <= 2.5 GB), writes per table {m['trades_writes']}/{m['ohlcv_1m_writes']}/{m['ohlcv_1d_writes']}")
    if len(memory) >= 2:
        peaks = [m["peak_rss_gb"] for m in memory]
        lines.append(f"largest / smallest peak: {max(peaks) / min(peaks):.2f} (target <= 1.10)")
    return lines


if __name__ == "__main__":
    main()
