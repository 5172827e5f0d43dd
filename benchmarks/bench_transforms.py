"""Time the candle transforms on one exchange-day of trades (default 2,000 instruments x 2,880
trades = 5.76 M rows) and one exchange-day of 1-minute candles; print seconds and the targets.

    python benchmarks/bench_transforms.py [--instruments 2000] [--trades-per-instrument 2880]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from cb_storage_dagster.transforms import resample_ohlcv, trades_to_ohlcv

TARGETS = {"trades_to_ohlcv": 3.0, "resample_ohlcv": 0.5}
"""Seconds on an idle 2-core machine, from issue 17."""


def exchange_day_of_trades(instruments: int, per_instrument: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = instruments * per_instrument
    start = pd.Timestamp("2024-01-02", tz="UTC").value // 1000
    offsets = np.sort(rng.integers(0, 86_400_000_000, size=(instruments, per_instrument)), axis=1).ravel()
    coins = np.repeat([f"C{i:04d}" for i in range(instruments)], per_instrument)
    return pd.DataFrame({
        "exchange": "binance",
        "coin": coins,
        "timestamp": pd.to_datetime(start + offsets, unit="us", utc=True),
        "trade_id": np.arange(n).astype(str),
        "price": 100.0 + rng.random(n),
        "amount": rng.random(n),
        "side": np.where(rng.random(n) < 0.5, "buy", "sell"),
    })


def best_of(fn, rounds: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(rounds):
        began = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - began)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=2000)
    parser.add_argument("--trades-per-instrument", type=int, default=2880)
    args = parser.parse_args()
    trades = exchange_day_of_trades(args.instruments, args.trades_per_instrument)
    seconds, minutes = best_of(lambda: trades_to_ohlcv(trades, "1min"))
    print(f"trades_to_ohlcv: {len(trades):,} trades -> {len(minutes):,} candles in {seconds:.2f} s "
          f"(target <= {TARGETS['trades_to_ohlcv']} s)")
    seconds, days = best_of(lambda: resample_ohlcv(minutes, "1D"))
    print(f"resample_ohlcv: {len(minutes):,} candles -> {len(days):,} daily candles in {seconds:.2f} s "
          f"(target <= {TARGETS['resample_ohlcv']} s)")


if __name__ == "__main__":
    main()
