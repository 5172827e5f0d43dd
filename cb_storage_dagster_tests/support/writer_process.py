"""A writer process for the concurrency and crash tests: ``python -m cb_storage_dagster_tests.support.writer_process``.

The storage comes from the ``CB_STORAGE_*`` environment, exactly as in production
(:meth:`StorageConfig.load`), so secrets never go through the command line. The process
prints one JSON object per line on stdout (flushed at once, so a parent that SIGKILLs it
knows what it had done):

* ``{"event": "ready"}`` once imports are done and the manager exists; with ``--go-file``
  it then waits until that file exists, so that many workers start writing together;
* ``{"event": "begin", ...}`` before each write and ``{"event": "done", ...}`` after it,
  with the committed version and how the commit went (attempts, conflicts, concurrent
  commits rebased over: see :class:`~cb_storage_dagster.storage.delta.commits.CommitReport`);
* ``{"event": "error", ...}`` if a write raised (the process then exits 3).

Modes (every row carries a signature in ``volume`` so a reader can tell whose rows it sees):

``disjoint``  write ``--count`` days of coin ``W<worker>``, one commit per day.
``same``      replace binance/BTC/2024-01-02 ``--count`` times; worker ``w`` writes
              ``5 + w`` rows with ``volume = 1000 * w + iteration``.
``create``    ``--rounds`` times: wait for ``<go-file>.<round>``, then write coin ``W<worker>``
              of one day into the new table ``<table><round>`` (all workers race to create it).
``merge``     ``--count`` merges, alternating between the shared binance/BTC of 2024-01-02
              (overlapping: merge ``i`` of worker ``w`` upserts the 15 minutes from minute
              ``10 * i + 5 * w``) and the worker's own coin ``W<worker>`` of that day
              (disjoint), each batch with ``volume = 1000 * w + i``.
``crash``     from generation ``--gen-start`` on, replace ``--days`` days of binance/BTC in one
              commit per generation, ``--rows`` rows a day with ``volume = generation``
              (``--count 0``: until killed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cb_storage_dagster_tests.support.servers import wait_until

UTC = dt.timezone.utc
# A writer released by a go file that never comes gives up instead of running forever.
GO_TIMEOUT = 600.0
FIRST_DAY = dt.date(2024, 1, 1)


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}, default=str) + "\n")
    sys.stdout.flush()


class CommitReports(logging.Handler):
    """Collects the CommitReports the Delta format logs (``create`` and ``write``)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.reports: list[Any] = []

    def emit(self, record: logging.LogRecord) -> None:
        report = getattr(record, "cb_commit", None)
        if report is not None:
            self.reports.append(report)

    def of(self, operation: str) -> Any | None:
        return next((r for r in reversed(self.reports) if r.operation == operation), None)


def candles(day: dt.date, rows: int, signature: float, *, coin: str = "BTC") -> pd.DataFrame:
    price = 100.0 + np.arange(rows, dtype="float64")
    return pd.DataFrame({
        "exchange": "binance",
        "coin": coin,
        "timestamp": pd.date_range(pd.Timestamp(day, tz="UTC"), periods=rows, freq="1min"),
        "open": price, "high": price + 1.0, "low": price - 1.0, "close": price + 0.5,
        "volume": np.full(rows, float(signature)),
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["disjoint", "same", "create", "merge", "crash"])
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--rows", type=int, default=5)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--gen-start", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--table", default="ohlcv")
    parser.add_argument("--format", default=None)
    parser.add_argument("--go-file", default=None)
    args = parser.parse_args(argv)

    from cb_storage_dagster.storage import StorageConfig, StorageError

    reports = CommitReports()
    delta_logger = logging.getLogger("cb_storage_dagster.storage.delta.table_format")
    delta_logger.addHandler(reports)
    delta_logger.setLevel(logging.DEBUG)
    manager = StorageConfig.load().build_manager()
    emit("ready", pid=os.getpid())
    if args.go_file and args.mode != "create":
        go = Path(args.go_file)
        wait_until(go.exists, GO_TIMEOUT, f"the go file {go}", interval=0.005)

    def save(key: dict, frame: pd.DataFrame, table: str = args.table, mode: str = "replace", **info: object) -> None:
        emit("begin", **info)
        reports.reports.clear()
        started = time.monotonic()
        try:
            result = manager.save_entry(key, frame, args.format, table=table, mode=mode)  # type: ignore[arg-type]
        except StorageError as exc:
            emit("error", error=type(exc).__name__, message=str(exc), **info)
            raise SystemExit(3) from None
        report, create = reports.of("merge" if mode == "merge" else "write"), reports.of("create")
        if create is not None:
            info["create_attempts"] = create.attempts
        emit(
            "done", version=result.version, rows=result.row_count,
            seconds=round(time.monotonic() - started, 4),
            attempts=getattr(report, "attempts", 1),
            conflicts=list(getattr(report, "conflicts", ())),
            concurrent_commits=getattr(report, "concurrent_commits", 0),
            max_commit_retries=getattr(report, "max_commit_retries", None),
            **info,
        )

    if args.mode == "disjoint":
        coin = f"W{args.worker}"
        for i in range(args.count):
            day = FIRST_DAY + dt.timedelta(days=i)
            key = {"data_type": "ohlcv", "exchange": "binance", "coin": coin, "date": day}
            save(key, candles(day, args.rows, args.worker, coin=coin), worker=args.worker, day=day.isoformat())
    elif args.mode == "same":
        day = FIRST_DAY + dt.timedelta(days=1)
        key = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC", "date": day}
        for i in range(args.count):
            signature = 1000 * args.worker + i
            save(key, candles(day, 5 + args.worker, signature), worker=args.worker, signature=signature)
    elif args.mode == "create":
        coin = f"W{args.worker}"
        key = {"data_type": "ohlcv", "exchange": "binance", "coin": coin, "date": FIRST_DAY}
        for r in range(args.rounds):
            go = Path(f"{args.go_file}.{r}")
            wait_until(go.exists, GO_TIMEOUT, f"the go file {go}", interval=0.002)
            save(key, candles(FIRST_DAY, args.rows, args.worker, coin=coin), table=f"{args.table}{r}", round=r)
    elif args.mode == "merge":
        day = FIRST_DAY + dt.timedelta(days=1)
        for i in range(args.count):
            signature = 1000 * args.worker + i
            if i % 2 == 0:
                coin, first = "BTC", 10 * i + 5 * args.worker
            else:
                coin, first = f"W{args.worker}", 15 * i
            frame = candles(day, 15, signature, coin=coin)
            frame["timestamp"] += pd.Timedelta(minutes=first)
            key = {"data_type": "ohlcv", "exchange": "binance", "coin": coin, "date": day}
            save(key, frame, mode="merge", worker=args.worker, signature=signature, coin=coin, first_minute=first)
    else:
        key = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}
        generation = args.gen_start
        while args.count == 0 or generation < args.gen_start + args.count:
            frame = pd.concat(
                [candles(FIRST_DAY + dt.timedelta(days=d), args.rows, generation) for d in range(args.days)],
                ignore_index=True,
            )
            save(key, frame, generation=generation)
            generation += 1
    emit("finished")
    return 0


def run() -> None:
    """:func:`main`, then leave at once (``os._exit`` after flushing), as the product's CLI
    does: delta-rs' Rust threads can abort a short process at interpreter shutdown (delta-rs
    issue 2184, "terminate called without an active exception"), which turned a writer that
    committed everything into a failed one under load."""
    try:
        code = main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    run()
