"""The peer benchmark's data: one exchange's 1-minute candles, generated with numpy only.

Imported by both sides of :mod:`peer_bench` (the product's venv and the ArcticDB venv, which
has no pyarrow), so each side builds the same rows from the same seed instead of shipping
gigabytes over the pipe. Every read is still checked: both sides return the row count and
the sum of ``close`` of what they read.

>>> day = exchange_day(3, "2024-01-01")
>>> len(day["close"]) == 3 * MINUTES, day["coin"][MINUTES]
(True, 'C00001')
"""

from __future__ import annotations

import datetime as dt

import numpy as np

EXCHANGE = "binance"
MINUTES = 1440
FIRST_DAY = dt.date(2024, 1, 1)


def coin_name(i: int) -> str:
    """The name of the ``i``-th instrument (sortable)."""
    return f"C{i:05d}"


def days(count: int) -> list[dt.date]:
    """The benchmark's ``count`` consecutive days."""
    return [FIRST_DAY + dt.timedelta(days=i) for i in range(count)]


def exchange_day(instruments: int, day: dt.date | str) -> dict[str, np.ndarray]:
    """Every instrument's candles of one day, coin-major: deterministic random walks.

    Returns numpy arrays ``coin`` (object), ``timestamp`` (datetime64[us], UTC, naive),
    ``open``, ``high``, ``low``, ``close``, ``volume``.
    """
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    rng = np.random.default_rng(day.toordinal())
    n = instruments * MINUTES
    steps = rng.normal(0, 5e-4, (instruments, MINUTES))
    close = (100.0 * np.exp(np.cumsum(steps, axis=1))).ravel()
    spread = np.abs(rng.normal(0, 2e-4, n)) * close
    open_ = np.concatenate(([close[0]], close[:-1]))
    start = np.datetime64(day.isoformat(), "us")
    minutes = start + np.arange(MINUTES).astype("timedelta64[m]").astype("timedelta64[us]")
    coins = np.array([coin_name(i) for i in range(instruments)], dtype=object)
    return {
        "coin": np.repeat(coins, MINUTES),
        "timestamp": np.tile(minutes, instruments),
        "open": open_,
        "high": np.maximum(open_, close) + spread,
        "low": np.maximum(np.minimum(open_, close) - spread, 1e-6),
        "close": close,
        "volume": rng.gamma(2.0, 3.0, n),
    }
