"""The embedded synthetic market-data source: deterministic, realistic-looking data in memory.

:class:`SyntheticMarketDataSource` implements :class:`~cb_storage_dagster.sources.base.MarketDataSource`
and is the pipeline's default source, so that the pipeline, its checks and its storage can
run anywhere without credentials or network.

Example:
    >>> import datetime as dt
    >>> source = SyntheticMarketDataSource(trades_per_day=100)
    >>> trades = source.fetch_trades("binance", "BTC", dt.date(2024, 1, 2))
    >>> len(trades), trades["trade_id"].iloc[0]
    (100, 'binance-BTC-20240102-000001')
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field

from cb_storage_dagster.domain.keys import parse_date, validate_name
from cb_storage_dagster.sources.arrow_strings import numbered_strings, repeated_strings
from cb_storage_dagster.sources.base import ORDER_BOOK_COLUMNS, TRADE_COLUMNS, MarketDataSource
from cb_storage_dagster.sources.synthetic_prices import (
    _MICROS_PER_DAY,
    _PATH_STEP_SECONDS,
    _PATH_STEPS,
    _SECONDS_PER_DAY,
    _anchor_log_price,
    _rng,
    _round_to_tick,
    _round_to_ticks,
    _utc_timestamps,
)

__all__ = ["SyntheticMarketDataSource"]


class SyntheticMarketDataSource(MarketDataSource):
    """Deterministic, realistic-looking market data generated in memory (the default source).

    The same ``(exchange, coin, day, seed)`` always gives identical frames, on any machine:
    every random draw is seeded from a BLAKE2 hash of a text such as
    ``"binance:BTC:2024-01-02"``, never from Python's salted ``hash()``.

    How the data is made:

    * The mid price follows a geometric random walk. Its value at each UTC midnight depends
      only on the coin and the date (so ``binance:BTC`` and ``coinbase:BTC`` track each other
      and day *N*'s close meets day *N+1*'s open); within the day a Brownian bridge on a
      ten-second grid connects the two midnights. Well-known coins start near BTC 40 000,
      ETH 2 500 and SOL 100; other coins get a base price between 0.1 and 1 000 derived from
      their name. Each exchange quotes a small, stable basis around the shared mid.
    * ``trades_per_day`` trades: the day is cut into that many equal slots and each slot
      gets one trade at a random instant, so arrivals are random but cover the whole day.
      Sizes are lognormal (median notional about 500 in quote currency); buys print
      slightly above the mid and sells slightly below. Trade ids read
      ``<exchange>-<coin>-<yyyymmdd>-<nnnnnn>`` starting at 1.
    * An order-book snapshot every ``snapshot_interval_minutes`` from midnight, with
      ``depth`` levels per side: level 0 is the best price, each further level is strictly
      further from the mid (gaps grow with depth) and resting amounts grow with depth.

    Generating one day of either data set takes a few milliseconds.

    Example:
        >>> import datetime as dt
        >>> source = SyntheticMarketDataSource(snapshot_interval_minutes=720, depth=2)
        >>> book = source.fetch_order_book("coinbase", "ETH", dt.date(2024, 3, 1))
        >>> len(book), book["side"].tolist()[:4], book["level"].tolist()[:4]
        (8, ['bid', 'bid', 'ask', 'ask'], [0, 1, 0, 1])
        >>> source.fetch_order_book("coinbase", "ETH", dt.date(2024, 3, 1)).equals(book)
        True
    """

    trades_per_day: int = Field(
        default=2880, description="Trades generated per instrument and UTC day (at least 1)."
    )
    snapshot_interval_minutes: int = Field(
        default=60, description="Minutes between order-book snapshots (1 to 1440)."
    )
    depth: int = Field(default=10, description="Order-book levels per side (at least 1).")
    daily_volatility: float = Field(
        default=0.03, description="Standard deviation of the daily log return (e.g. 0.03 = 3%)."
    )
    seed: int = Field(
        default=0, description="Changes the whole synthetic market; same seed, same data."
    )

    def fetch_trades(self, exchange: str, coin: str, day: dt.date) -> pd.DataFrame:
        """Synthetic trades of one instrument-day; see the class docstring.

        Example:
            >>> import datetime as dt
            >>> trades = SyntheticMarketDataSource(trades_per_day=3).fetch_trades(
            ...     "binance", "ETH", dt.date(2024, 1, 2))
            >>> trades["trade_id"].tolist()
            ['binance-ETH-20240102-000001', 'binance-ETH-20240102-000002', 'binance-ETH-20240102-000003']
        """
        return self.fetch_trades_many(exchange, [coin], day)

    def fetch_trades_many(self, exchange: str, coins: Sequence[str], day: dt.date) -> pd.DataFrame:
        """Synthetic trades of many coins of one exchange-day in one frame, coin after coin:
        row for row what :meth:`fetch_trades` gives for each coin, built in one pass (an
        exchange-day of 2,000 instruments in about a second, not one frame per coin).

        Example:
            >>> import datetime as dt
            >>> source = SyntheticMarketDataSource(trades_per_day=10)
            >>> both = source.fetch_trades_many("binance", ["BTC", "ETH"], dt.date(2024, 1, 2))
            >>> both.groupby("coin").size().to_dict()
            {'BTC': 10, 'ETH': 10}
            >>> both[both["coin"] == "ETH"].reset_index(drop=True).equals(
            ...     source.fetch_trades("binance", "ETH", dt.date(2024, 1, 2)))
            True
        """
        if self.trades_per_day < 1:
            raise ValueError(f"trades_per_day must be at least 1, got {self.trades_per_day}.")
        checked = [_checked_instrument_day(exchange, coin, day) for coin in coins]
        exchange, day = validate_name(exchange, "exchange"), parse_date(day, "day")
        names = [coin for _, coin, _ in checked]
        micros, price, amount, is_buy = (array.reshape(-1) for array in self._trade_arrays(exchange, names, day))
        n = self.trades_per_day
        # Strings from bytes (arrow_strings.py), in pandas' Arrow-backed layout: no row is a Python object.
        table = pa.table({
            "exchange": repeated_strings([exchange], len(micros)),
            "coin": repeated_strings(names, n),
            "timestamp": pa.array(np.datetime64(day.isoformat(), "us") + micros.astype("timedelta64[us]"),
                                  pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")),
            "trade_id": numbered_strings([f"{exchange}-{coin}-{day:%Y%m%d}-" for coin in names], n, width=6),
            "price": pa.array(price, pa.float64()),
            "amount": pa.array(amount, pa.float64()),
            "side": pa.DictionaryArray.from_arrays(
                pa.array(np.where(is_buy, 0, 1).astype(np.int32)), pa.array(["buy", "sell"], pa.large_string())
            ).cast(pa.large_string()),
        })
        return table.select(TRADE_COLUMNS).to_pandas()

    def _trade_arrays(
        self, exchange: str, coins: Sequence[str], day: dt.date
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Trades of each coin as (coins x trades_per_day) arrays: microseconds after midnight,
        price, amount, is-buy. Each coin's draws come from its own generator (so a coin's data
        does not depend on the others asked with it); the arithmetic runs on all coins at once."""
        n, k = self.trades_per_day, len(coins)
        uniforms = np.empty((k, 3, n))
        normals = np.empty((k, n))
        for row, coin in enumerate(coins):
            rng = _rng(self.seed, "trades", exchange, coin, day.isoformat())
            uniforms[row] = rng.random((3, n))
            normals[row] = rng.standard_normal(n)

        # One trade per equal slot of the day at a random offset: sorted and unique by
        # construction (slots are at least 1 us wide for any sane trades_per_day).
        slot_edges = np.linspace(0, _MICROS_PER_DAY, n + 1)
        offsets = uniforms[:, 0] * np.diff(slot_edges)
        micros = np.minimum((slot_edges[:-1] + offsets).astype(np.int64), _MICROS_PER_DAY - 1)

        mid = self._mid_prices_many(exchange, coins, day, micros / 1e6)
        is_buy = uniforms[:, 1] < 0.5
        half_spread = 0.5e-4 * (1.0 + uniforms[:, 2])  # 0.5 to 1 basis point
        price = mid * np.where(is_buy, 1.0 + half_spread, 1.0 - half_spread)
        price = _round_to_ticks(price, coins)

        notional = np.exp(math.log(500.0) + 1.2 * normals)  # lognormal, median 500
        amount = np.maximum(np.round(notional / price, 8), 1e-8)
        return micros, price, amount, is_buy

    def fetch_order_book(self, exchange: str, coin: str, day: dt.date) -> pd.DataFrame:
        """Synthetic order-book snapshots of one instrument-day; see the class docstring.

        Rows are ordered by timestamp, then bids (best first), then asks (best first).
        """
        exchange, coin, day = _checked_instrument_day(exchange, coin, day)
        interval = self.snapshot_interval_minutes
        if not 1 <= interval <= 1440:
            raise ValueError(f"snapshot_interval_minutes must be 1 to 1440, got {interval}.")
        if self.depth < 1:
            raise ValueError(f"depth must be at least 1, got {self.depth}.")
        rng = _rng(self.seed, "order_book", exchange, coin, day.isoformat())
        snapshot_seconds = np.arange(0, _SECONDS_PER_DAY, interval * 60, dtype=np.int64)
        return self._books(exchange, coin, day, snapshot_seconds, rng)

    def fetch_order_book_snapshot(self, exchange: str, coin: str, at: dt.datetime) -> pd.DataFrame:
        """One synthetic snapshot at ``at`` (whole seconds; identical for the same ``at``).

        Example:
            >>> import datetime as dt
            >>> at = dt.datetime(2024, 3, 1, 12, 15, tzinfo=dt.UTC)
            >>> book = SyntheticMarketDataSource(depth=2).fetch_order_book_snapshot("binance", "BTC", at)
            >>> len(book), set(book["timestamp"]) == {at}
            (4, True)
        """
        exchange, coin = validate_name(exchange, "exchange"), validate_name(coin, "coin")
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"Snapshot instant {at!r} has no time zone; use an aware UTC datetime.")
        if self.depth < 1:
            raise ValueError(f"depth must be at least 1, got {self.depth}.")
        at = at.astimezone(dt.UTC).replace(microsecond=0)
        day = at.date()
        second = (at - dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)).seconds
        rng = _rng(self.seed, "order_book_snapshot", exchange, coin, at.isoformat())
        return self._books(exchange, coin, day, np.array([second], dtype=np.int64), rng)

    def _books(
        self, exchange: str, coin: str, day: dt.date, snapshot_seconds: np.ndarray,
        rng: np.random.Generator,
    ) -> pd.DataFrame:
        """Snapshots at ``snapshot_seconds`` after midnight of ``day``, drawn from ``rng``."""
        n_snapshots, depth = len(snapshot_seconds), self.depth
        mid = self._mid_prices(exchange, coin, day, snapshot_seconds.astype(np.float64))

        # Distance from the mid, in relative terms, per (snapshot, side, level): a half
        # spread of 0.5-1.5 bp at level 0, then strictly positive gaps growing with depth.
        shape = (n_snapshots, 2, depth)
        half_spread = 0.5e-4 * (1.0 + rng.random((n_snapshots, 2, 1)))
        gaps = 1e-4 * (1.0 + 0.25 * np.arange(depth)) * (0.5 + rng.random(shape))
        gaps[:, :, 0] = 0.0
        distance = half_spread + np.cumsum(gaps, axis=2)
        direction = np.array([-1.0, 1.0]).reshape(1, 2, 1)  # bid below, ask above the mid
        price = mid.reshape(-1, 1, 1) * (1.0 + direction * distance)
        price = _round_to_tick(price, coin)

        notional = rng.lognormal(math.log(2_000.0), 0.8, shape) * (1.0 + np.arange(depth))
        amount = np.maximum(np.round(notional / price, 8), 1e-8)

        micros = np.repeat(snapshot_seconds * 1_000_000, 2 * depth)
        return pd.DataFrame(
            {
                "exchange": exchange,
                "coin": coin,
                "timestamp": _utc_timestamps(day, micros),
                "side": np.tile(np.repeat(["bid", "ask"], depth), n_snapshots),
                "level": np.tile(np.arange(depth, dtype=np.int32), 2 * n_snapshots),
                "price": price.reshape(-1).astype(np.float64),
                "amount": amount.reshape(-1).astype(np.float64),
            },
            columns=ORDER_BOOK_COLUMNS,
        ).astype({"exchange": "str", "coin": "str", "side": "str"})

    def _mid_prices(
        self, exchange: str, coin: str, day: dt.date, seconds: np.ndarray
    ) -> np.ndarray:
        """The exchange's mid price at ``seconds`` after midnight UTC of ``day``."""
        return self._mid_prices_many(exchange, [coin], day, np.asarray(seconds).reshape(1, -1))[0]

    def _mid_prices_many(
        self, exchange: str, coins: Sequence[str], day: dt.date, seconds: np.ndarray
    ) -> np.ndarray:
        """Mid prices of each coin (rows) at ``seconds`` after midnight UTC of ``day``.

        A Brownian bridge from this midnight to the next on a ten-second grid, shared by every
        exchange quoting the coin (and by trades and books), linear in between; plus the
        exchange's small stable basis.
        """
        sigma = self.daily_volatility
        ordinal = day.toordinal()
        start = np.array([_anchor_log_price(self.seed, coin, ordinal, sigma) for coin in coins])
        end = np.array([_anchor_log_price(self.seed, coin, ordinal + 1, sigma) for coin in coins])
        walk = np.zeros((len(coins), _PATH_STEPS + 1))
        for row, coin in enumerate(coins):
            walk[row, 1:] = _rng(self.seed, "path", coin, day.isoformat()).standard_normal(_PATH_STEPS)
        np.cumsum(walk, axis=1, out=walk)
        walk *= sigma / math.sqrt(_PATH_STEPS)
        basis = 2e-4 * np.array(
            [_rng(self.seed, "basis", exchange, coin, day.isoformat()).standard_normal() for coin in coins]
        )

        position = np.clip(seconds.astype(np.float64), 0.0, float(_SECONDS_PER_DAY)) / _PATH_STEP_SECONDS
        left = np.minimum(np.floor(position).astype(np.int64), _PATH_STEPS - 1)
        weight = position - left

        def log_path(index: np.ndarray) -> np.ndarray:
            fraction = index / _PATH_STEPS
            return (start[:, None] + (end - start)[:, None] * fraction
                    + np.take_along_axis(walk, index, axis=1) - fraction * walk[:, -1:])

        below, above = log_path(left), log_path(left + 1)
        return np.exp(below + weight * (above - below) + basis[:, None])


def _checked_instrument_day(exchange: str, coin: str, day: dt.date | str) -> tuple[str, str, dt.date]:
    return validate_name(exchange, "exchange"), validate_name(coin, "coin"), parse_date(day, "day")
