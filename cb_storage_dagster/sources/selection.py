"""Which market-data source the definitions use, chosen by the environment.

``CB_STORAGE_SOURCE=synthetic`` (the default: runs anywhere, no network) or ``ccxt`` (real
exchanges). The ccxt source reads its settings from ``CB_STORAGE_CCXT_*`` variables, each
optional:

=====================================  ==============================================  ==========
variable                               meaning                                         default
=====================================  ==============================================  ==========
``CB_STORAGE_CCXT_DEFAULT_QUOTE``      quote currency of every coin                    ``USDT``
``CB_STORAGE_CCXT_SYMBOLS``            overrides ``kraken:BTC=BTC/USD,...``            none
``CB_STORAGE_CCXT_API_URLS``           ``binance=http://host/binance,...`` (proxy/test) none
``CB_STORAGE_CCXT_TIMEOUT_MS``         one request's timeout                           ``10000``
``CB_STORAGE_CCXT_RATE_LIMIT_MS``      ms between requests                             ccxt's
``CB_STORAGE_CCXT_PAGE_LIMIT``         rows per request (at most the exchange's cap)   the cap
``CB_STORAGE_CCXT_MAX_ATTEMPTS``       attempts per request (transient failures)       ``5``
``CB_STORAGE_CCXT_MAX_WAIT_SECONDS``   total backoff per request                       ``60``
``CB_STORAGE_CCXT_ORDER_BOOK_DEPTH``   levels per side in a snapshot                   ``20``
=====================================  ==============================================  ==========

Everything is validated when the definitions load: a bad value stops the code location with a
message naming the variable.

Example:
    >>> type(market_data_source_from_env({})).__name__
    'SyntheticMarketDataSource'
    >>> source = market_data_source_from_env({"CB_STORAGE_SOURCE": "ccxt", "CB_STORAGE_CCXT_SYMBOLS": "kraken:BTC=BTC/USD"})
    >>> source.symbol_for("kraken", "BTC")
    'BTC/USD'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from cb_storage_dagster.domain.errors import SourceConfigError
from cb_storage_dagster.sources.base import MarketDataSource
from cb_storage_dagster.sources.ccxt.source import CcxtMarketDataSource
from cb_storage_dagster.sources.ccxt.symbols import parse_symbol_overrides
from cb_storage_dagster.sources.synthetic import SyntheticMarketDataSource

__all__ = ["SOURCE_ENV", "market_data_source_from_env"]

SOURCE_ENV = "CB_STORAGE_SOURCE"
_PREFIX = "CB_STORAGE_CCXT_"
_NUMBERS = {"TIMEOUT_MS": ("timeout_ms", int), "RATE_LIMIT_MS": ("rate_limit_ms", float),
            "MAX_ATTEMPTS": ("max_attempts", int), "MAX_WAIT_SECONDS": ("max_wait_seconds", float),
            "ORDER_BOOK_DEPTH": ("order_book_depth", int), "PAGE_LIMIT": ("page_limit", int)}


def market_data_source_from_env(environ: Mapping[str, str] | None = None) -> MarketDataSource:
    """The source that ``CB_STORAGE_SOURCE`` names, configured from the environment."""
    env = os.environ if environ is None else environ
    kind = env.get(SOURCE_ENV, "synthetic").strip().lower() or "synthetic"
    if kind == "synthetic":
        return SyntheticMarketDataSource()
    if kind == "ccxt":
        return _ccxt_source(env)
    raise SourceConfigError(f"{SOURCE_ENV}={kind!r} is not a source: use 'synthetic' (the default) or 'ccxt'.")


def _ccxt_source(env: Mapping[str, str]) -> CcxtMarketDataSource:
    settings: dict[str, Any] = {}
    if value := env.get(_PREFIX + "DEFAULT_QUOTE", "").strip():
        settings["default_quote"] = value
    if value := env.get(_PREFIX + "SYMBOLS", "").strip():
        settings["symbol_overrides"] = parse_symbol_overrides(value)
    if value := env.get(_PREFIX + "API_URLS", "").strip():
        settings["api_urls"] = _parse_pairs(_PREFIX + "API_URLS", value)
    for suffix, (name, kind) in _NUMBERS.items():
        if value := env.get(_PREFIX + suffix, "").strip():
            try:
                settings[name] = kind(value)
            except ValueError:
                raise SourceConfigError(f"{_PREFIX}{suffix}={value!r} is not a number.") from None
    try:
        return CcxtMarketDataSource(**settings)
    except ValidationError as exc:
        problems = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        raise SourceConfigError(f"The ccxt source settings ({_PREFIX}*) are invalid: {problems}") from None


def _parse_pairs(variable: str, text: str) -> dict[str, str]:
    result = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SourceConfigError(f"{variable}: {item!r} has no '=': write EXCHANGE=URL, e.g. 'binance=http://127.0.0.1:8123/binance'.")
        result[key.strip()] = value.strip()
    return result
