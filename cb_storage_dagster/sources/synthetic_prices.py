"""The synthetic source's price model: seeded randomness from stable hashes (never Python's
salted ``hash()``), base prices and ticks per coin, the day-to-day price anchors, the
intraday path's grid. Plain functions, identical on any machine and in any process.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import pandas as pd

_MICROS_PER_DAY = 86_400_000_000
_SECONDS_PER_DAY = 86_400
_PATH_STEP_SECONDS = 10
"""Resolution of the intraday price path (a Brownian bridge between two midnights)."""
_PATH_STEPS = _SECONDS_PER_DAY // _PATH_STEP_SECONDS

# Round-number reference prices of well-known coins; any other coin gets a base price
# derived from its name, so that every coin is stable across runs and machines.
_BASE_PRICES = {"BTC": 40_000.0, "ETH": 2_500.0, "SOL": 100.0}

# Octaves of the day-to-day price anchors: periods 1, 2, 4, ..., 256 days. Summing
# interpolated noise at these scales gives a bounded, random-walk-like path that can be
# evaluated for any single day in O(octaves), without replaying history.
_ANCHOR_OCTAVES = 9


def _digest(*parts: object) -> int:
    text = ":".join(str(part) for part in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=16).digest(), "big")


def _rng(*parts: object) -> np.random.Generator:
    """A generator seeded from a stable hash of ``parts`` (identical across processes)."""
    return np.random.default_rng(_digest(*parts))


def _unit_uniform(*parts: object) -> float:
    """A stable number in the open interval (0, 1) derived from ``parts``."""
    return (_digest(*parts) % (2**53) + 0.5) / 2**53


def _base_price(coin: str) -> float:
    known = _BASE_PRICES.get(coin.upper())
    if known is not None:
        return known
    return 10.0 ** (-1.0 + 4.0 * _unit_uniform("base_price", coin.upper()))


def _tick_decimals(coin: str) -> int:
    """About six significant digits of the coin's base price (BTC 0.01, ETH 0.001)."""
    return max(0, 6 - math.floor(math.log10(_base_price(coin))))


def _round_to_tick(price: np.ndarray, coin: str) -> np.ndarray:
    """Round to the coin's tick (:func:`_tick_decimals`)."""
    decimals = _tick_decimals(coin)
    return np.maximum(np.round(price, decimals), 10.0**-decimals)


def _round_to_ticks(price: np.ndarray, coins: Sequence[str]) -> np.ndarray:
    """Round each row of ``price`` to its coin's tick, like :func:`_round_to_tick` row by row."""
    scale = 10.0 ** np.array([_tick_decimals(coin) for coin in coins], dtype=np.float64)[:, None]
    return np.maximum(np.rint(price * scale) / scale, 1.0 / scale)


@functools.lru_cache(maxsize=65_536)
def _anchor_log_price(seed: int, coin: str, day_ordinal: int, sigma: float) -> float:
    """Log mid price at midnight UTC starting day ``day_ordinal`` (a ``date.toordinal()``).

    Multi-octave value noise: the octave of period ``p`` days interpolates standard normals
    placed every ``p`` days with amplitude ``sigma * sqrt(p) / 2``, which makes day-to-day
    changes about ``sigma`` wide while keeping the price within a realistic band.
    """
    normal = NormalDist()
    log_price = math.log(_base_price(coin))
    for octave in range(_ANCHOR_OCTAVES):
        period = 2**octave
        knot, offset = divmod(day_ordinal, period)
        left = normal.inv_cdf(_unit_uniform(seed, "anchor", coin, octave, knot))
        right = normal.inv_cdf(_unit_uniform(seed, "anchor", coin, octave, knot + 1))
        weight = offset / period
        log_price += 0.5 * sigma * math.sqrt(period) * ((1 - weight) * left + weight * right)
    return log_price


def _utc_timestamps(day: dt.date, micros: np.ndarray) -> pd.DatetimeIndex:
    midnight = np.datetime64(day.isoformat(), "us")
    return pd.DatetimeIndex(midnight + micros.astype("timedelta64[us]")).tz_localize("UTC")
