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
* partitions per asset of both profiles at 20 exchanges x 2,000 instruments x 5 years.

Run: ``make bench-scale-orchestration`` (N = 2,000, several minutes on 2 cores), or
``python benchmarks/scale_orchestration.py --instruments 200`` for a quick look.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import dagster as dg
from deltalake import DeltaTable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=SCHEDULED, repository_def=repo)
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


def bench_exchange_day(instruments: int, workdir: Path) -> dict[str, object]:
    keys = [f"binance:C{c:04d}" for c in range(instruments)]
    pipeline = build_pipeline("exchange", keys)
    store = workdir / "store"
    io_manager = MarketDataIOManager(storage=LocalStorageResource(root_path=str(store)))
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
        history = DeltaTable(str(store / table)).history()
        out[f"{table}_writes"] = sum(h["operation"] == "WRITE" for h in history)
        out[f"{table}_rows"] = DeltaTable(str(store / table)).to_pyarrow_dataset().count_rows()
    step_seconds = {}
    for event in result.all_events:
        if event.is_step_success:
            step_seconds[event.step_key] = round(event.event_specific_data.duration_ms / 1000, 1)
    out["step_seconds"] = step_seconds
    return out


def partition_counts(exchanges: int = 20, per_exchange: int = 2000, years: int = 5) -> dict[str, int]:
    days = (dt.date(2024 + years, 1, 1) - dt.date(2024, 1, 1)).days
    return {"days": days, "instrument_profile": exchanges * per_exchange * days,
            "exchange_profile": exchanges * days}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=2000)
    parser.add_argument("--exchanges", type=int, default=20, help="exchanges the tick/sensor universe spans")
    parser.add_argument("--skip-run", action="store_true", help="only the tick, the sensor and the counts")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    warnings.simplefilter("ignore", dg.BetaWarning)  # backfill_policy / partitioned checks notices
    warnings.simplefilter("ignore", dg.PreviewWarning)
    results: dict[str, object] = {"partitions_per_asset": partition_counts()}
    with tempfile.TemporaryDirectory() as tmp:
        results["tick_and_sensor"] = bench_tick_and_sensor(args.instruments, args.exchanges, Path(tmp))
        print(json.dumps(results, indent=1, default=str), flush=True)
        if not args.skip_run:
            results["exchange_day_run"] = bench_exchange_day(args.instruments, Path(tmp))
    print(json.dumps(results, indent=1, default=str))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
