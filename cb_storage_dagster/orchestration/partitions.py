"""Dagster partitions of market-data assets, and the one codec for their keys.

Two partition profiles (see :class:`PartitionProfile`):

* ``instrument`` (default): an instrument partition key is ``<exchange>:<coin>`` (e.g.
  ``binance:BTC``); a multi-partition key reads ``<date>|<instrument>`` (Dagster sorts
  dimensions by name).
* ``exchange`` (large universes): a multi-partition key reads ``<date>|<exchange>`` and
  stands for every configured instrument of that exchange-day.

Only this module encodes or decodes multi-partition keys; the instrument key itself is
:mod:`cb_storage_dagster.domain.keys`' codec.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

import dagster as dg

from cb_storage_dagster.domain.errors import ConfigurationError, InvalidKeyError
from cb_storage_dagster.domain.keys import (
    PartitionSlot,
    decode_instrument,
    encode_instrument,
    parse_date,
    validate_name,
)

INSTRUMENTS_PARTITIONS_NAME = "instruments"
DATE_DIMENSION = "date"
INSTRUMENT_DIMENSION = "instrument"
EXCHANGE_DIMENSION = "exchange"
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


class PartitionProfile(StrEnum):
    """How market-data assets are partitioned (``$CB_STORAGE_PARTITIONING``).

    ``instrument``: date x instrument, one Dagster partition per instrument-day (a few
    hundred instruments at most). ``exchange``: date x exchange, one Dagster partition per
    exchange-day holding every configured instrument of that exchange (thousands).
    """

    INSTRUMENT = "instrument"
    EXCHANGE = "exchange"

    @classmethod
    def parse(cls, value: str | None) -> PartitionProfile:
        """``None`` or blank -> ``instrument``; anything else must name a profile.

        >>> PartitionProfile.parse(" Exchange ")
        <PartitionProfile.EXCHANGE: 'exchange'>
        """
        text = (value or "").strip().lower() or cls.INSTRUMENT.value
        try:
            return cls(text)
        except ValueError:
            raise ConfigurationError(
                f"Unknown partition profile {value!r}: set CB_STORAGE_PARTITIONING to "
                f"'instrument' (date x instrument, the default) or 'exchange' (date x exchange)."
            ) from None


def exchange_day_partitions(
    exchanges: Iterable[str], start_date: str = DEFAULT_START_DATE, *, end_offset: int = 0
) -> dg.MultiPartitionsDefinition:
    """``date`` (daily, UTC) x ``exchange`` (static: the exchanges of the configured instruments);
    ``end_offset=1`` makes today a partition too (see :func:`daily_partitions`).

    Static rather than dynamic: an exchange list of a few dozen keys changes only with the
    configuration (which reloads the code location anyway), needs no sensor, and never
    invalidates Dagster's partition-status cache the way adding a dynamic key does.
    """
    keys = sorted({validate_name(e, "exchange") for e in exchanges})
    if not keys:
        raise ConfigurationError(
            "The exchange profile needs at least one configured instrument: set "
            "CB_STORAGE_INSTRUMENTS or CB_STORAGE_INSTRUMENTS_FILE."
        )
    return dg.MultiPartitionsDefinition(
        {
            DATE_DIMENSION: daily_partitions(start_date, end_offset=end_offset),
            EXCHANGE_DIMENSION: dg.StaticPartitionsDefinition(keys),
        }
    )


def coins_by_exchange(instruments: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Group ``<exchange>:<coin>`` keys by exchange, keeping their order.

    >>> coins_by_exchange(["binance:BTC", "kraken:ETH", "binance:SOL"])
    {'binance': ('BTC', 'SOL'), 'kraken': ('ETH',)}
    """
    grouped: dict[str, list[str]] = {}
    for key in instruments:
        exchange, coin = decode_instrument(key)
        grouped.setdefault(exchange, []).append(coin)
    return {exchange: tuple(coins) for exchange, coins in grouped.items()}


def decode_exchange_day_key(key: str | dg.MultiPartitionKey) -> tuple[str, dt.date]:
    """Turn ``2024-01-02|binance`` (or a MultiPartitionKey) into ``("binance", date)``."""
    date_key, exchange = _date_and_second_key(key, EXCHANGE_DIMENSION, "<date>|<exchange>")
    return validate_name(exchange, "exchange"), parse_date(date_key)


def _date_and_second_key(key: str | dg.MultiPartitionKey, dimension: str, shape: str) -> tuple[str, str]:
    """The ``date`` key and the other dimension's key of a two-dimensional partition key."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims[DATE_DIMENSION], dims[dimension]
    parts = str(key).split("|")
    if len(parts) != 2:
        raise InvalidKeyError(f"Partition key {key!r} must look like '{shape}'.")
    return parts[0], parts[1]


def is_exchange_day_key(key: str | dg.MultiPartitionKey) -> bool:
    """``True`` for ``<date>|<exchange>``, ``False`` for ``<date>|<exchange>:<coin>``."""
    if isinstance(key, dg.MultiPartitionKey):
        return EXCHANGE_DIMENSION in key.keys_by_dimension
    return ":" not in str(key).partition("|")[2]


def slots_of_keys(
    keys: Iterable[str | dg.MultiPartitionKey],
    coins: Mapping[str, Sequence[str]] | None = None,
) -> list[PartitionSlot]:
    """The (exchange, coin, UTC day) slots that partition keys of either profile stand for.

    An exchange-day key expands to every coin ``coins`` lists for the exchange (none when
    the exchange has no configured coin), an instrument-day key to itself.

    >>> [str(s) for s in slots_of_keys(["2024-01-02|binance"], {"binance": ["BTC", "ETH"]})]
    ['binance/BTC/2024-01-02', 'binance/ETH/2024-01-02']
    """
    slots: set[PartitionSlot] = set()
    for key in keys:
        if is_exchange_day_key(key):
            exchange, day = decode_exchange_day_key(key)
            slots.update(PartitionSlot(exchange, coin, day) for coin in (coins or {}).get(exchange, ()))
        else:
            slots.add(decode_multi_key(key))
    return sorted(slots)


def decode_multi_key(key: str | dg.MultiPartitionKey) -> PartitionSlot:
    """Turn ``2024-01-02|binance:BTC`` (or a MultiPartitionKey) into a PartitionSlot."""
    date_key, instrument_key = _date_and_second_key(key, INSTRUMENT_DIMENSION, "<date>|<exchange>:<coin>")
    exchange, coin = decode_instrument(instrument_key)
    return PartitionSlot(exchange, coin, parse_date(date_key))


def encode_multi_key(slot: PartitionSlot) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey(
        {
            DATE_DIMENSION: slot.date.isoformat(),
            INSTRUMENT_DIMENSION: encode_instrument(slot.exchange, slot.coin),
        }
    )


