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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cb_storage_dagster.domain.keys import DataType
from cb_storage_dagster.domain.schemas import CANONICAL_SCHEMAS

__all__ = [
    "OHLCV_COLUMNS",
    "TRADE_COLUMNS_FOR_CANDLES",
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

TRADE_COLUMNS_FOR_CANDLES = ["exchange", "coin", "timestamp", "price", "amount"]
"""The trade columns :func:`trades_to_ohlcv` reads (a chunked run reads only these)."""

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
    _require_columns(trades, TRADE_COLUMNS_FOR_CANDLES, "trades")
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
    """Vectorized group-by of (exchange, coin, candle start): Arrow for the keys, numpy
    ``ufunc.reduceat`` for the values.

    The semantics are pandas' ``groupby(...).agg`` on a frame stably sorted by exchange, coin
    and timestamp: rows with a missing exchange, coin or timestamp belong to no candle;
    ``first``/``last`` are the first/last non-NaN value by time (ties in input order), ``max``/
    ``min`` ignore NaN, ``sum`` of only NaN is 0. Cost: dictionary-encoding the two key columns,
    one stable sort of integer keys (skipped when the input is already in order, as a source's
    frames are) and one pass per value column.
    """
    width = _check_interval(interval)
    if frame.empty:
        return empty_frame(DataType.OHLCV)
    exchange = _encoded(frame["exchange"])
    coin = _encoded(frame["coin"])
    stamps_arrow = _one_array(pa.array(pd.to_datetime(frame["timestamp"], utc=True).dt.as_unit("us")))
    keep = ~np.asarray(
        pc.or_(pc.or_(pc.is_null(exchange.indices), pc.is_null(coin.indices)), pc.is_null(stamps_arrow))
    )
    everything = bool(keep.all())
    exchange_rank, exchange_names = _ranks(exchange)
    coin_rank, coin_names = _ranks(coin)
    instrument = (
        exchange_rank[_codes(exchange)] * len(coin_names) + coin_rank[_codes(coin)]
    )
    stamps = np.asarray(stamps_arrow.cast(pa.int64()).fill_null(0))
    if not everything:
        instrument, stamps = instrument[keep], stamps[keep]
    if len(stamps) == 0:
        return empty_frame(DataType.OHLCV)
    bucket = stamps - stamps % width
    order = _stable_order(instrument, stamps)
    if order is not None:
        instrument, bucket = instrument[order], bucket[order]
    change = np.empty(len(bucket), dtype=bool)
    change[0] = True
    np.not_equal(instrument[1:], instrument[:-1], out=change[1:])
    change[1:] |= bucket[1:] != bucket[:-1]
    starts = np.flatnonzero(change)
    columns: dict[str, np.ndarray] = {}
    for output, (source, how) in aggregations.items():
        values = frame[source].to_numpy(dtype="float64", na_value=np.nan)
        if not everything:
            values = values[keep]
        if order is not None:
            values = values[order]
        columns[output] = _reduce(values, starts, how)
    group = instrument[starts]
    candles = pa.table({
        "exchange": pa.DictionaryArray.from_arrays(pa.array(group // len(coin_names), pa.int32()), exchange_names),
        "coin": pa.DictionaryArray.from_arrays(pa.array(group % len(coin_names), pa.int32()), coin_names),
        "timestamp": pa.array(bucket[starts], pa.timestamp("us", tz="UTC")),
        **{name: pa.array(values) for name, values in columns.items()},
    })
    candles = candles.set_column(0, "exchange", candles["exchange"].cast(pa.string()))
    candles = candles.set_column(1, "coin", candles["coin"].cast(pa.string()))
    return candles.to_pandas()[OHLCV_COLUMNS].astype(_OHLCV_DTYPES).reset_index(drop=True)


def _encoded(column: pd.Series) -> pa.DictionaryArray:
    """A key column as one dictionary-encoded Arrow array (nulls for missing values)."""
    return pc.dictionary_encode(_one_array(pa.array(column, type=pa.string(), from_pandas=True)))


def _one_array(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array: Arrow-backed pandas columns convert to chunked arrays."""
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _ranks(encoded: pa.DictionaryArray) -> tuple[np.ndarray, pa.Array]:
    """For each dictionary index its rank in sorted order, and the sorted dictionary."""
    dictionary = encoded.dictionary
    order = np.asarray(pc.sort_indices(dictionary))
    rank = np.empty(len(order), dtype="int64")
    rank[order] = np.arange(len(order))
    return rank, dictionary.take(pa.array(order))


def _codes(encoded: pa.DictionaryArray) -> np.ndarray:
    return np.asarray(encoded.indices.fill_null(0)).astype("int64", copy=False)


def _stable_order(instrument: np.ndarray, stamps: np.ndarray) -> np.ndarray | None:
    """The stable sort by (instrument, timestamp), or None when the rows are in that order."""
    step = np.diff(instrument)
    in_order = bool(np.all((step > 0) | ((step == 0) & (np.diff(stamps) >= 0))))
    if in_order:
        return None
    return np.lexsort((stamps, instrument))


def _reduce(values: np.ndarray, starts: np.ndarray, how: str) -> np.ndarray:
    if how == "sum":
        return np.add.reduceat(np.nan_to_num(values, nan=0.0), starts)
    if how == "max":
        return np.fmax.reduceat(values, starts)
    if how == "min":
        return np.fmin.reduceat(values, starts)
    if how not in ("first", "last"):  # pragma: no cover - the aggregations above are the only callers
        raise ValueError(f"unknown aggregation {how!r}")
    ends = np.append(starts[1:], len(values))
    if not np.isnan(values).any():  # the common case: no missing value
        return values[starts] if how == "first" else values[ends - 1]
    positions = np.arange(len(values))
    valid = ~np.isnan(values)
    if how == "first":
        chosen = np.minimum.reduceat(np.where(valid, positions, len(values)), starts)
    else:
        chosen = np.maximum.reduceat(np.where(valid, positions, -1), starts)
    found = (chosen >= 0) & (chosen < len(values))
    result = np.full(len(starts), np.nan)
    result[found] = values[chosen[found]]
    return result


def _check_interval(interval: str) -> int:
    """The candle width in microseconds; a clear error for anything but a fixed frequency."""
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
    return int(width / pd.Timedelta(microseconds=1))


def _require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise ValueError(f"{what} frame is missing column(s) {', '.join(missing)}.")
