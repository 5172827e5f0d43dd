"""Pure market-data transforms: trades to candles, candles to coarser candles.

No Dagster here: the assets call these functions, and so can service code or a notebook.
Column lists and dtypes come from the storage layer's canonical schemas
(:func:`canonical_columns`, :func:`canonical_dtypes`). The candle functions return the
canonical OHLCV columns (:data:`OHLCV_COLUMNS`) sorted by exchange, coin and timestamp,
with ``timestamp`` as ``datetime64[us, UTC]`` (the start of the candle) and float64 prices
and volume. Only intervals that contain data produce a candle; an empty input gives an
empty frame with the canonical columns.

Example:
    >>> import pandas as pd
    >>> trades = pd.DataFrame({
    ...     "exchange": "binance", "coin": "BTC",
    ...     "timestamp": pd.to_datetime(["2024-01-02 00:00:10", "2024-01-02 00:00:50"], utc=True),
    ...     "trade_id": ["1", "2"], "price": [100.0, 101.0], "amount": [1.0, 2.0],
    ...     "side": ["buy", "sell"],
    ... })
    >>> trades_to_ohlcv(trades)[["open", "high", "low", "close", "volume"]].values.tolist()
    [[100.0, 101.0, 100.0, 101.0, 3.0]]
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from cb_storage_dagster.domain.keys import DataType
from cb_storage_dagster.domain.schemas import CANONICAL_SCHEMAS

__all__ = [
    "OHLCV_COLUMNS",
    "canonical_columns",
    "canonical_dtypes",
    "empty_frame",
    "resample_ohlcv",
    "trades_to_ohlcv",
]


def canonical_columns(data_type: DataType | str) -> list[str]:
    """The canonical columns of ``data_type``, in order, as the storage layer defines them.

    >>> canonical_columns("trades")
    ['exchange', 'coin', 'timestamp', 'trade_id', 'price', 'amount', 'side']
    """
    return list(CANONICAL_SCHEMAS[DataType.parse(data_type)].names)


def canonical_dtypes(data_type: DataType | str) -> dict[str, str]:
    """pandas dtypes of the canonical columns of ``data_type``.

    >>> canonical_dtypes("order_book")["level"], canonical_dtypes("ohlcv")["timestamp"]
    ('int32', 'datetime64[us, UTC]')
    """
    return {
        field.name: _pandas_dtype(field.type)
        for field in CANONICAL_SCHEMAS[DataType.parse(data_type)]
    }


def empty_frame(data_type: DataType | str) -> pd.DataFrame:
    """A frame with no rows and the canonical columns and dtypes of ``data_type``."""
    return pd.DataFrame(
        {name: pd.Series(dtype=dtype) for name, dtype in canonical_dtypes(data_type).items()}
    )


def _pandas_dtype(arrow_type: pa.DataType) -> str:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "str"
    if pa.types.is_timestamp(arrow_type):
        return f"datetime64[{arrow_type.unit}, {arrow_type.tz}]"
    return arrow_type.to_pandas_dtype().__name__


OHLCV_COLUMNS = canonical_columns(DataType.OHLCV)
"""Canonical OHLCV columns, in order; ``timestamp`` is the candle's open time."""

_OHLCV_DTYPES = canonical_dtypes(DataType.OHLCV)
_INSTRUMENT = ["exchange", "coin"]


def trades_to_ohlcv(trades: pd.DataFrame, interval: str = "1min") -> pd.DataFrame:
    """Aggregate trades into candles of ``interval`` per exchange and coin.

    ``open``/``close`` are the first/last trade price by timestamp (ties keep the input
    order), ``high``/``low`` the extreme prices and ``volume`` the summed ``amount``.
    ``interval`` is a fixed pandas frequency such as ``"1min"``, ``"15min"``, ``"1h"`` or
    ``"1D"``; candles are aligned to the UTC epoch, so ``"1D"`` candles open at midnight UTC.

    Example:
        >>> import pandas as pd
        >>> trades = pd.DataFrame({
        ...     "exchange": "binance", "coin": "ETH",
        ...     "timestamp": pd.to_datetime(
        ...         ["2024-01-02 00:00:05", "2024-01-02 00:00:30", "2024-01-02 00:02:00"], utc=True),
        ...     "price": [10.0, 12.0, 11.0], "amount": [1.0, 1.0, 0.5],
        ... })
        >>> candles = trades_to_ohlcv(trades)
        >>> candles["timestamp"].dt.strftime("%H:%M").tolist(), candles["close"].tolist()
        (['00:00', '00:02'], [12.0, 11.0])
    """
    _require_columns(trades, ["exchange", "coin", "timestamp", "price", "amount"], "trades")
    return _aggregate(
        trades,
        interval,
        {
            "open": ("price", "first"),
            "high": ("price", "max"),
            "low": ("price", "min"),
            "close": ("price", "last"),
            "volume": ("amount", "sum"),
        },
    )


def resample_ohlcv(ohlcv: pd.DataFrame, interval: str = "1D") -> pd.DataFrame:
    """Combine candles into coarser candles of ``interval`` per exchange and coin.

    ``open`` comes from the first candle of each interval, ``close`` from the last, ``high``
    and ``low`` are the extremes and ``volume`` the sum. ``interval`` must be a multiple of
    the input candles' interval (e.g. ``"1min"`` to ``"1h"`` or ``"1D"``); it is a fixed
    pandas frequency aligned to the UTC epoch.

    Example:
        >>> import pandas as pd
        >>> minutes = pd.DataFrame({
        ...     "exchange": "binance", "coin": "BTC",
        ...     "timestamp": pd.to_datetime(["2024-01-02 00:00", "2024-01-02 23:59"], utc=True),
        ...     "open": [10.0, 11.0], "high": [12.0, 11.5], "low": [9.0, 10.5],
        ...     "close": [11.0, 11.2], "volume": [3.0, 4.0],
        ... })
        >>> resample_ohlcv(minutes)[["open", "high", "low", "close", "volume"]].values.tolist()
        [[10.0, 12.0, 9.0, 11.2, 7.0]]
    """
    _require_columns(ohlcv, OHLCV_COLUMNS, "ohlcv")
    return _aggregate(
        ohlcv,
        interval,
        {
            "open": ("open", "first"),
            "high": ("high", "max"),
            "low": ("low", "min"),
            "close": ("close", "last"),
            "volume": ("volume", "sum"),
        },
    )


def _aggregate(
    frame: pd.DataFrame, interval: str, aggregations: dict[str, tuple[str, str]]
) -> pd.DataFrame:
    _check_interval(interval)
    if frame.empty:
        return empty_frame(DataType.OHLCV)
    frame = frame.assign(
        timestamp=pd.to_datetime(frame["timestamp"], utc=True).dt.as_unit("us")
    )
    # A stable sort makes "first"/"last" mean first/last by time, ties in input order.
    frame = frame.sort_values([*_INSTRUMENT, "timestamp"], kind="mergesort")
    buckets = frame["timestamp"].dt.floor(interval).rename("timestamp")
    candles = (
        frame.groupby([frame["exchange"], frame["coin"], buckets], sort=True)
        .agg(**aggregations)
        .reset_index()
    )
    return candles[OHLCV_COLUMNS].astype(_OHLCV_DTYPES).reset_index(drop=True)


def _check_interval(interval: str) -> None:
    try:
        width = pd.Timedelta(interval)
    except ValueError:
        width = None
    if width is None or width <= pd.Timedelta(0):
        raise ValueError(
            f"Invalid candle interval {interval!r}: use a fixed pandas frequency such as "
            "'1min', '15min', '1h' or '1D' (calendar frequencies like '1W' or '1M' are not "
            "supported)."
        )


def _require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise ValueError(f"{what} frame is missing column(s) {', '.join(missing)}.")
