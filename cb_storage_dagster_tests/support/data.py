"""Small, deterministic market-data frames for tests."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

UTC = dt.timezone.utc


def at(*args: int) -> dt.datetime:
    """``at(2024, 1, 2, 3)`` -> an aware UTC datetime."""
    return dt.datetime(*args, tzinfo=UTC)


def day_start(day: str | dt.date) -> pd.Timestamp:
    return pd.Timestamp(str(day), tz="UTC")


def ohlcv(day: str | dt.date, n: int = 10, *, exchange: str | None = "binance", coin: str | None = "BTC",
          price: float = 100.0, step: str = "1min", offset_minutes: int = 0) -> pd.DataFrame:
    start = day_start(day) + pd.Timedelta(minutes=offset_minutes)
    px = price + np.arange(n, dtype="float64")
    frame = pd.DataFrame({
        "timestamp": pd.date_range(start, periods=n, freq=step),
        "open": px, "high": px + 1.0, "low": px - 1.0, "close": px + 0.5,
        "volume": np.full(n, 2.0),
    })
    if coin is not None:
        frame.insert(0, "coin", coin)
    if exchange is not None:
        frame.insert(0, "exchange", exchange)
    return frame


def trades(day: str | dt.date, n: int = 10, *, exchange: str = "binance", coin: str = "BTC",
           price: float = 100.0) -> pd.DataFrame:
    start = day_start(day)
    return pd.DataFrame({
        "exchange": exchange, "coin": coin,
        "timestamp": pd.date_range(start, periods=n, freq="7s"),
        "trade_id": [f"{exchange}-{coin}-{start:%Y%m%d}-{i:06d}" for i in range(n)],
        "price": price + np.arange(n) * 0.1,
        "amount": np.full(n, 0.5),
        "side": ["buy" if i % 2 == 0 else "sell" for i in range(n)],
    })


def order_book(day: str | dt.date, snapshots: int = 3, depth: int = 2, *, exchange: str = "binance",
               coin: str = "BTC", price: float = 100.0) -> pd.DataFrame:
    rows = []
    for s, ts in enumerate(pd.date_range(day_start(day), periods=snapshots, freq="1h")):
        for side, sign in (("bid", -1), ("ask", 1)):
            for level in range(depth):
                rows.append({"exchange": exchange, "coin": coin, "timestamp": ts, "side": side,
                             "level": level, "price": price + s + sign * (level + 1) * 0.5,
                             "amount": 1.0 + level})
    frame = pd.DataFrame(rows)
    frame["level"] = frame["level"].astype("int32")
    return frame


MAKERS = {"ohlcv": ohlcv, "trades": trades, "order_book": order_book}
