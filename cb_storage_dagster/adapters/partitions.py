"""Dagster partitions of market-data assets, and the one codec for their keys.

An instrument partition key is ``<exchange>:<coin>`` (e.g. ``binance:BTC``); a multi-partition
key reads ``<date>|<instrument>`` (Dagster sorts dimensions by name). Only this module
encodes or decodes those strings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import dagster as dg

from cb_storage_dagster.storage.errors import InvalidKeyError
from cb_storage_dagster.storage.keys import PartitionSlot, parse_date, validate_name

INSTRUMENTS_PARTITIONS_NAME = "instruments"
DATE_DIMENSION = "date"
INSTRUMENT_DIMENSION = "instrument"
DEFAULT_START_DATE = "2024-01-01"

instruments_partitions = dg.DynamicPartitionsDefinition(name=INSTRUMENTS_PARTITIONS_NAME)
"""Dynamic instrument partitions, kept in sync with configuration by a sensor."""


def daily_partitions(start_date: str = DEFAULT_START_DATE, *, end_offset: int = 0) -> dg.DailyPartitionsDefinition:
    """UTC days from ``start_date``; the last partition is yesterday (UTC), or today with
    ``end_offset=1`` (the day that intraday merges fill while it is still going on)."""
    return dg.DailyPartitionsDefinition(start_date=start_date, timezone="UTC", end_offset=end_offset)


def market_data_partitions(
    start_date: str = DEFAULT_START_DATE, *, end_offset: int = 0
) -> dg.MultiPartitionsDefinition:
    """``date`` (daily, UTC) x ``instrument`` (dynamic ``instruments``)."""
    return dg.MultiPartitionsDefinition(
        {
            DATE_DIMENSION: daily_partitions(start_date, end_offset=end_offset),
            INSTRUMENT_DIMENSION: instruments_partitions,
        }
    )


def encode_instrument(exchange: str, coin: str) -> str:
    """>>> encode_instrument("binance", "BTC")
    'binance:BTC'
    """
    return f"{validate_name(exchange, 'exchange')}:{validate_name(coin, 'coin')}"


def decode_instrument(key: str) -> tuple[str, str]:
    """The ``(exchange, coin)`` of an instrument key; :class:`InvalidKeyError` if it is not one.

    >>> decode_instrument("binance:BTC")
    ('binance', 'BTC')
    """
    exchange, sep, coin = str(key).partition(":")
    if not sep:
        raise InvalidKeyError(f"Instrument partition key {key!r} must look like '<exchange>:<coin>', e.g. 'binance:BTC'.")
    return validate_name(exchange, "exchange"), validate_name(coin, "coin")


def decode_multi_key(key: str | dg.MultiPartitionKey) -> PartitionSlot:
    """Turn ``2024-01-02|binance:BTC`` (or a MultiPartitionKey) into a PartitionSlot."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        date_key, instrument_key = dims[DATE_DIMENSION], dims[INSTRUMENT_DIMENSION]
    else:
        parts = str(key).split("|")
        if len(parts) != 2:
            raise ValueError(f"Partition key {key!r} must look like '<date>|<exchange>:<coin>'.")
        date_key, instrument_key = parts
    exchange, coin = decode_instrument(instrument_key)
    return PartitionSlot(exchange, coin, parse_date(date_key))


def encode_multi_key(slot: PartitionSlot) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey(
        {
            DATE_DIMENSION: slot.date.isoformat(),
            INSTRUMENT_DIMENSION: encode_instrument(slot.exchange, slot.coin),
        }
    )


def parse_instruments(spec: str | Iterable[str]) -> list[str]:
    """Parse ``"binance:BTC, binance:ETH,coinbase:BTC"`` into validated, de-duplicated keys."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    keys: list[str] = []
    for raw in items:
        raw = raw.strip()
        if not raw:
            continue
        key = encode_instrument(*decode_instrument(raw))
        if key not in keys:
            keys.append(key)
    return keys


def date_of(key: str) -> dt.date:
    return parse_date(key)
