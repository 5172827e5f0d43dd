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

The variables are declared in :class:`~cb_storage_dagster.settings.SourceSettings`. Everything
is validated when the definitions load: a bad value stops the code location with a message
naming the variable.

Example:
    >>> type(market_data_source_from_env({})).__name__
    'SyntheticMarketDataSource'
    >>> source = market_data_source_from_env({"CB_STORAGE_SOURCE": "ccxt", "CB_STORAGE_CCXT_SYMBOLS": "kraken:BTC=BTC/USD"})
    >>> source.symbol_for("kraken", "BTC")
    'BTC/USD'
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from cb_storage_dagster.domain.errors import ConfigurationError, SourceConfigError
from cb_storage_dagster.settings import SourceSettings
from cb_storage_dagster.sources.base import MarketDataSource
from cb_storage_dagster.sources.ccxt.source import CcxtMarketDataSource
from cb_storage_dagster.sources.synthetic import SyntheticMarketDataSource

__all__ = ["SOURCE_ENV", "market_data_source_from_env"]

SOURCE_ENV = SourceSettings.variable("source")


def market_data_source_from_env(environ: Mapping[str, str] | None = None) -> MarketDataSource:
    """The source that ``CB_STORAGE_SOURCE`` names, configured from the environment (or only
    from ``environ``, if given); a bad setting raises :class:`SourceConfigError` naming it."""
    try:
        settings = SourceSettings.load(environ)
    except ConfigurationError as error:
        raise SourceConfigError(str(error)) from None
    if settings.source == "synthetic":
        return SyntheticMarketDataSource()
    try:
        return CcxtMarketDataSource(**settings.ccxt_options())
    except ValidationError as exc:
        problems = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        raise SourceConfigError(f"The ccxt source settings (CB_STORAGE_CCXT_*) are invalid: {problems}") from None
