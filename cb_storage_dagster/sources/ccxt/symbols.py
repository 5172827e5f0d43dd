"""Instrument keys (``exchange:COIN``) to exchange symbols (``BASE/QUOTE``), validated up front.

A coin trades against the default quote currency unless an override names the exact symbol,
e.g. Kraken quotes Bitcoin in US dollars: ``{"kraken:BTC": "BTC/USD"}``.

Example:
    >>> symbols = SymbolMap.build(default_quote="USDT", overrides={"kraken:BTC": "BTC/USD"})
    >>> symbols.symbol("binance", "BTC"), symbols.symbol("kraken", "BTC")
    ('BTC/USDT', 'BTC/USD')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from cb_storage_dagster.domain.errors import SourceConfigError
from cb_storage_dagster.domain.keys import validate_name
from cb_storage_dagster.settings import parse_pairs

__all__ = ["SymbolMap", "parse_symbol_overrides"]

# ccxt's unified spot symbols: BASE/QUOTE, upper-case letters and digits (e.g. 1INCH/USDT).
_CURRENCY = re.compile(r"^[A-Z0-9]{1,20}$")
_SYMBOL = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")


@dataclass(frozen=True)
class SymbolMap:
    """Maps ``(exchange, coin)`` to the exchange's unified symbol; build it with :meth:`build`."""

    default_quote: str
    overrides: Mapping[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def build(cls, default_quote: str, overrides: Mapping[str, str] | None = None) -> SymbolMap:
        """Validate the configuration and build the map; raises :class:`SourceConfigError`.

        >>> SymbolMap.build("usdt")
        Traceback (most recent call last):
        ...
        cb_storage_dagster.domain.errors.SourceConfigError: The default quote currency 'usdt' is not a currency code: use upper-case letters and digits, e.g. 'USDT'.
        """
        if not _CURRENCY.match(default_quote or ""):
            raise SourceConfigError(
                f"The default quote currency {default_quote!r} is not a currency code: use upper-case "
                "letters and digits, e.g. 'USDT'."
            )
        checked: dict[tuple[str, str], str] = {}
        for instrument, symbol in (overrides or {}).items():
            exchange, coin = _split_instrument(instrument)
            if not isinstance(symbol, str) or not _SYMBOL.match(symbol):
                raise SourceConfigError(
                    f"The symbol override for {instrument!r} is {symbol!r}, which is not a spot symbol: "
                    "write it as BASE/QUOTE in upper case, e.g. 'BTC/USD'."
                )
            checked[(exchange, coin)] = symbol
        return cls(default_quote, checked)

    def symbol(self, exchange: str, coin: str) -> str:
        """The exchange symbol of ``exchange:coin`` (the override, else ``COIN/DEFAULT_QUOTE``)."""
        override = self.overrides.get((exchange, coin))
        return override if override is not None else f"{coin.upper()}/{self.default_quote}"


def parse_symbol_overrides(text: str) -> dict[str, str]:
    """Parse ``"kraken:BTC=BTC/USD, binance:ETH=ETH/BTC"`` (the environment's form).

    >>> parse_symbol_overrides("kraken:BTC=BTC/USD, kraken:ETH=ETH/USD")
    {'kraken:BTC': 'BTC/USD', 'kraken:ETH': 'ETH/USD'}
    """
    try:
        return parse_pairs(text, "write INSTRUMENT=SYMBOL, e.g. 'kraken:BTC=BTC/USD'")
    except ValueError as exc:
        raise SourceConfigError(f"Symbol override {exc}") from None


def _split_instrument(instrument: str) -> tuple[str, str]:
    exchange, sep, coin = str(instrument).partition(":")
    if not sep:
        raise SourceConfigError(
            f"Symbol override key {instrument!r} is not an instrument: write EXCHANGE:COIN, e.g. 'kraken:BTC'."
        )
    try:
        return validate_name(exchange, "exchange"), validate_name(coin, "coin")
    except ValueError as exc:
        raise SourceConfigError(f"Symbol override key {instrument!r}: {exc}") from None
