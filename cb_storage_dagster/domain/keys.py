"""Market-data keys: what a stored object is, validated once, and the instrument key codec.

Every exchange or coin name that can reach a path or a predicate goes through
:func:`validate_name` first; nothing else in the package builds paths from raw input.
An instrument key reads ``<exchange>:<coin>`` (``binance:BTC``): only
:func:`encode_instrument`, :func:`decode_instrument` and :func:`parse_instruments` write or
read that string.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from cb_storage_dagster.domain.errors import InvalidKeyError

_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_NAME_LENGTH = 64


class DataType(str, Enum):
    """The kinds of market data the storage layer knows."""

    OHLCV = "ohlcv"
    TRADES = "trades"
    ORDER_BOOK = "order_book"

    @classmethod
    def parse(cls, value: DataType | str) -> DataType:
        if isinstance(value, DataType):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            known = ", ".join(d.value for d in cls)
            raise InvalidKeyError(
                f"Unknown data type {value!r}. Use one of: {known}."
            ) from None


def validate_name(value: Any, what: str) -> str:
    """Return ``value`` if it is a safe exchange or coin name, else raise InvalidKeyError.

    Allowed: letters, digits, ``.``, ``_`` and ``-``; it must start with a letter or digit,
    be at most 64 characters and not be ``..``-like. Such a name can be put in a path and in
    a quoted SQL literal without escaping.

    >>> validate_name("BTC", "coin")
    'BTC'
    """
    if not isinstance(value, str):
        raise InvalidKeyError(f"{what} must be a string, got {type(value).__name__}.")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidKeyError(
            f"{what} is {len(value)} characters long; at most {MAX_NAME_LENGTH} are allowed."
        )
    if not _NAME_PATTERN.fullmatch(value) or ".." in value:
        raise InvalidKeyError(
            f"Invalid {what} {value!r}: use only letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit, no '..'), e.g. 'binance' or 'BTC'."
        )
    return value


def parse_date(value: Any, what: str = "date") -> dt.date:
    """Accept a ``datetime.date`` or an ISO ``YYYY-MM-DD`` string."""
    if isinstance(value, dt.datetime):
        raise InvalidKeyError(f"{what} must be a date, not a datetime: {value!r}.")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidKeyError(f"Invalid {what} {value!r}: expected a date such as '2024-01-31'.")


@dataclass(frozen=True, order=True)
class MarketDataKey:
    """Identifies market data of one type for one instrument, optionally one UTC day.

    Example:
        >>> key = MarketDataKey("ohlcv", "binance", "BTC", "2024-01-02")
        >>> key.data_type, key.exchange, key.coin, key.date
        (<DataType.OHLCV: 'ohlcv'>, 'binance', 'BTC', datetime.date(2024, 1, 2))

    The seed design's dict form is accepted by :meth:`from_context`.
    """

    data_type: DataType
    exchange: str
    coin: str
    date: dt.date | None = None

    def __init__(
        self,
        data_type: DataType | str,
        exchange: str,
        coin: str,
        date: dt.date | str | None = None,
    ) -> None:
        object.__setattr__(self, "data_type", DataType.parse(data_type))
        object.__setattr__(self, "exchange", validate_name(exchange, "exchange"))
        object.__setattr__(self, "coin", validate_name(coin, "coin"))
        object.__setattr__(self, "date", None if date is None else parse_date(date))

    @classmethod
    def from_context(cls, context: MarketDataKeyLike) -> MarketDataKey:
        """Build a key from a key or from the seed's dict ``{"exchange", "coin", "data_type"[, "date"]}``."""
        if isinstance(context, MarketDataKey):
            return context
        if not isinstance(context, Mapping):
            raise InvalidKeyError(
                "context must be a MarketDataKey or a dict with 'data_type', 'exchange' "
                f"and 'coin', got {type(context).__name__}."
            )
        missing = [k for k in ("data_type", "exchange", "coin") if k not in context]
        if missing:
            raise InvalidKeyError(f"context is missing {', '.join(missing)}.")
        return cls(
            context["data_type"], context["exchange"], context["coin"], context.get("date")
        )

    def partition(self, date: dt.date | None = None) -> PartitionSlot:
        day = date or self.date
        if day is None:
            raise InvalidKeyError("This operation needs a date on the key.")
        return PartitionSlot(self.exchange, self.coin, day)


MarketDataKeyLike = MarketDataKey | Mapping[str, Any]


@dataclass(frozen=True, order=True)
class PartitionSlot:
    """One exchange/coin/UTC-day: the unit that a write replaces.

    >>> PartitionSlot("binance", "BTC", dt.date(2024, 1, 2)).month
    '2024-01'
    """

    exchange: str
    coin: str
    date: dt.date

    def __post_init__(self) -> None:
        validate_name(self.exchange, "exchange")
        validate_name(self.coin, "coin")
        if not isinstance(self.date, dt.date) or isinstance(self.date, dt.datetime):
            raise InvalidKeyError(f"PartitionSlot.date must be a date, got {self.date!r}.")

    @property
    def month(self) -> str:
        return self.date.strftime("%Y-%m")

    def __str__(self) -> str:
        return f"{self.exchange}/{self.coin}/{self.date.isoformat()}"



def encode_instrument(exchange: str, coin: str) -> str:
    """The instrument key of ``exchange`` and ``coin``, both validated.

    >>> encode_instrument("binance", "BTC")
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


def parse_instruments(spec: str | Iterable[str]) -> list[str]:
    """Parse ``"binance:BTC, binance:ETH,coinbase:BTC"`` into validated, de-duplicated keys.

    >>> parse_instruments("binance:BTC, kraken:ETH,binance:BTC")
    ['binance:BTC', 'kraken:ETH']
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    keys: dict[str, None] = {}  # an ordered set: de-duplicating stays linear for thousands
    for raw in items:
        raw = raw.strip()
        if raw:
            keys.setdefault(encode_instrument(*decode_instrument(raw)))
    return list(keys)
