"""A two-minute tour of the storage manager without Dagster: ``python -m cb_storage_dagster.demo``.

Saves two days of synthetic 1-minute BTC candles to the configured backend (``CB_STORAGE_*``;
``make demo`` uses ./data), reads a range across the day boundary back and lists what is stored.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from cb_storage_dagster.entrypoint import run_and_exit
from cb_storage_dagster.storage import StorageConfig

UTC = dt.timezone.utc


def synthetic_candles(day: dt.date, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 40_000 * np.exp(np.cumsum(rng.normal(0, 0.0005, 1440)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0, 5, 1440))
    return pd.DataFrame(
        {
            "timestamp": pd.date_range(pd.Timestamp(day, tz="UTC"), periods=1440, freq="1min"),
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.lognormal(0, 1, 1440),
        }
    )


def main() -> int:
    config = StorageConfig.load()
    manager = config.build_manager()
    key = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}
    for offset, day in enumerate((dt.date(2024, 1, 1), dt.date(2024, 1, 2))):
        result = manager.save_entry(key, synthetic_candles(day, offset))
        print(f"saved {result.row_count} candles for {day} -> {result.uri} (version {result.version})")
    frame = manager.get_range(
        key,
        dt.datetime(2024, 1, 1, 23, 55, tzinfo=UTC),
        dt.datetime(2024, 1, 2, 0, 5, tzinfo=UTC),
        columns=["timestamp", "close"],
    )
    print(frame.to_string(index=False))
    print("exchanges:", manager.list_exchanges("ohlcv"))
    print("coins on binance:", manager.list_coins("binance", "ohlcv"))
    print("dates:", [d.isoformat() for d in manager.list_dates("binance", "BTC", "ohlcv")])
    return 0


if __name__ == "__main__":
    # delta-rs can abort at interpreter exit (STACK-NOTES, issue 2184): flush, then exit at once.
    run_and_exit(main)
