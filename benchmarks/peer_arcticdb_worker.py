"""The ArcticDB side of the peer benchmark: a worker that answers JSON commands on a pipe.

Runs in its own virtual environment (ArcticDB 6.28 pins ``pandas<3``; :mod:`peer_bench`
creates ``benchmarks/.venv-arcticdb`` and starts this file there). One JSON object per
line on stdin, one JSON answer per line on stdout; every answer carries the time of the
measured call (``ms``, ``time.perf_counter`` around the ArcticDB call only) and, for
reads, ``rows`` and ``close_sum`` of what was read so the orchestrator checks that both
sides returned the same rows. LMDB backend, one symbol per instrument, the batch APIs.

    python peer_arcticdb_worker.py            # serve commands (started by peer_bench.py)
    python peer_arcticdb_worker.py --cold-read URI COIN START END   # new-process cases
    python peer_arcticdb_worker.py --cold-list URI
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import arcticdb as adb  # noqa: E402
from peer_data import MINUTES, coin_name, exchange_day  # noqa: E402

LIBRARY = "ohlcv"


def frames(instruments: int, day: str) -> list[tuple[str, pd.DataFrame]]:
    """One DataFrame per instrument (timestamp index), built before any timing starts."""
    data = exchange_day(instruments, day)
    index = pd.DatetimeIndex(data["timestamp"][:MINUTES], name="timestamp")
    out = []
    for i in range(instruments):
        rows = slice(i * MINUTES, (i + 1) * MINUTES)
        out.append((coin_name(i), pd.DataFrame(
            {c: data[c][rows] for c in ("open", "high", "low", "close", "volume")}, index=index)))
    return out


def summary(frame: pd.DataFrame) -> dict:
    return {"rows": len(frame), "close_sum": float(frame["close"].sum())}


class Worker:
    def __init__(self, uri: str, instruments: int) -> None:
        self.instruments = instruments
        self.arctic = adb.Arctic(uri)
        self.lib = self.arctic.get_library(LIBRARY, create_if_missing=True)
        self.written_days = 0

    def write_day(self, day: str) -> dict:
        payloads = [adb.WritePayload(symbol, frame) for symbol, frame in frames(self.instruments, day)]
        gc.collect()
        start = time.perf_counter()
        if self.written_days == 0:
            self.lib.write_batch(payloads)
        else:
            self.lib.append_batch(payloads)
        ms = (time.perf_counter() - start) * 1000
        self.written_days += 1
        return {"ms": ms, "rows": self.instruments * MINUTES}

    def read(self, coin: str, start: str, end: str) -> dict:
        window = (pd.Timestamp(start), pd.Timestamp(end) - pd.Timedelta(microseconds=1))
        gc.collect()
        t = time.perf_counter()
        frame = self.lib.read(coin, date_range=window).data
        ms = (time.perf_counter() - t) * 1000
        return {"ms": ms, **summary(frame)}

    def read_all(self, start: str, end: str) -> dict:
        window = (pd.Timestamp(start), pd.Timestamp(end) - pd.Timedelta(microseconds=1))
        symbols = [coin_name(i) for i in range(self.instruments)]
        gc.collect()
        t = time.perf_counter()
        items = self.lib.read_batch([adb.ReadRequest(s, date_range=window) for s in symbols])
        ms = (time.perf_counter() - t) * 1000
        rows = sum(len(item.data) for item in items)
        close = sum(float(item.data["close"].sum()) for item in items)
        return {"ms": ms, "rows": rows, "close_sum": close}

    def maintain(self) -> dict:
        """Compact every symbol (daily appends leave one segment per day) and drop the
        versions it supersedes: ArcticDB's counterpart of compaction + vacuum."""
        symbols = self.lib.list_symbols()
        t = time.perf_counter()
        items = self.lib.compact_data_batch(symbols, prune_previous_versions=True)
        ms = (time.perf_counter() - t) * 1000
        errors = [str(item) for item in items if isinstance(item, adb.DataError)]
        if errors:
            raise RuntimeError(f"compact_data_batch failed for {len(errors)} symbols: {errors[:3]}")
        return {"ms": ms}


def cold(argv: list[str]) -> dict:
    """A new process: open the library and run one call (timed from before the open)."""
    t = time.perf_counter()
    lib = adb.Arctic(argv[1]).get_library(LIBRARY)
    if argv[0] == "--cold-list":
        count = len(lib.list_symbols())
        return {"ms": (time.perf_counter() - t) * 1000, "count": count}
    window = (pd.Timestamp(argv[3]), pd.Timestamp(argv[4]) - pd.Timedelta(microseconds=1))
    frame = lib.read(argv[2], date_range=window).data
    return {"ms": (time.perf_counter() - t) * 1000, **summary(frame)}


def serve() -> None:
    worker: Worker | None = None
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        try:
            if op == "init":
                worker = Worker(command["uri"], command["instruments"])
                answer: dict = {"version": adb.__version__}
            elif op == "quit":
                break
            else:
                answer = getattr(worker, op)(**command)
        except Exception as exc:  # reported to the orchestrator, which stops the run
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("--cold"):
        print(json.dumps(cold(sys.argv[1:])))
    else:
        serve()
