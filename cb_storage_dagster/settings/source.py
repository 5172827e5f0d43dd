"""The market-data source's settings: :class:`SourceSettings` (``SOURCE``, ``CCXT_*``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import field_validator
from pydantic_settings import NoDecode

from cb_storage_dagster.settings.base import CbStorageSettings, _blank_is_unset, _invalid, parse_pairs


class SourceSettings(CbStorageSettings):
    """Which market-data source the definitions use (``source``), and the ccxt source's
    settings (``ccxt_*``; unset ones keep ``CcxtMarketDataSource``'s defaults).

    Example:
        >>> settings = SourceSettings.load({"CB_STORAGE_SOURCE": "ccxt", "CB_STORAGE_CCXT_PAGE_LIMIT": "200"})
        >>> settings.source, settings.ccxt_options()
        ('ccxt', {'page_limit': 200})
    """

    _what: ClassVar[str] = "source"

    source: Literal["synthetic", "ccxt"] = "synthetic"
    ccxt_default_quote: str | None = None
    ccxt_symbols: Annotated[dict[str, str], NoDecode] = {}
    """Symbol overrides, ``kraken:BTC=BTC/USD,...``."""
    ccxt_api_urls: Annotated[dict[str, str], NoDecode] = {}
    """Base URLs per exchange, ``binance=http://host/binance,...`` (a proxy, or a test server)."""
    ccxt_timeout_ms: int | None = None
    ccxt_rate_limit_ms: float | None = None
    ccxt_page_limit: int | None = None
    ccxt_max_attempts: int | None = None
    ccxt_max_wait_seconds: float | None = None
    ccxt_order_book_depth: int | None = None

    _PAIR_HINTS: ClassVar[dict[str, str]] = {
        "ccxt_symbols": "write INSTRUMENT=SYMBOL, e.g. 'kraken:BTC=BTC/USD'",
        "ccxt_api_urls": "write EXCHANGE=URL, e.g. 'binance=http://127.0.0.1:8123/binance'",
    }

    def ccxt_options(self) -> dict[str, Any]:
        """Keyword arguments of ``CcxtMarketDataSource`` for the ccxt settings that are set."""
        options = {
            name.removeprefix("ccxt_"): value
            for name, value in self
            if name.startswith("ccxt_") and value is not None and value != {}
        }
        if "symbols" in options:
            options["symbol_overrides"] = options.pop("symbols")
        return options

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, value: Any) -> Any:
        text = str(value).lower()
        if text not in ("synthetic", "ccxt"):
            raise _invalid("is not a source: use 'synthetic' (the default) or 'ccxt'.")
        return text

    @field_validator("ccxt_timeout_ms", "ccxt_page_limit", "ccxt_max_attempts", "ccxt_order_book_depth", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        return cls._number(value, int)

    @field_validator("ccxt_rate_limit_ms", "ccxt_max_wait_seconds", mode="before")
    @classmethod
    def _real_number(cls, value: Any) -> Any:
        return cls._number(value, float)

    @staticmethod
    def _number(value: Any, kind: type) -> Any:
        if value is None or isinstance(value, (int, float)):
            return value
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise _invalid("is not a number.") from None

    @field_validator("ccxt_symbols", "ccxt_api_urls", mode="before")
    @classmethod
    def _pairs(cls, value: Any, info: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return parse_pairs(value, cls._PAIR_HINTS[info.field_name])
        except ValueError as error:
            raise _invalid(f"holds {error}") from None

    _blank = field_validator("*", mode="before")(_blank_is_unset)  # defined last: runs first
