"""What a market-data source raises: one base class whose ``transient`` attribute decides retries.

The source side's counterpart of :class:`cb_storage_dagster.domain.errors.StorageError`: the
Dagster resource turns a transient error into a retryable ``dg.Failure`` and any other into a
failure that is not retried.

Example:
    >>> SourceUnavailableError("binance did not answer").transient
    True
    >>> SourceRequestError("binance:DOGE: unknown symbol").transient
    False
"""

from __future__ import annotations

__all__ = [
    "DayOutOfRangeError",
    "SourceConfigError",
    "SourceError",
    "SourceRequestError",
    "SourceUnavailableError",
]


class SourceError(Exception):
    """Base class of every error a market-data source raises."""

    transient: bool = False
    """True when simply trying again later may succeed (network, rate limit, outage)."""


class SourceConfigError(SourceError, ValueError):
    """The source's configuration is invalid (raised when the configuration is loaded)."""


class SourceUnavailableError(SourceError):
    """The exchange did not answer usefully (network, rate limit, timeout, outage, garbled page),
    still after the retry budget; a later attempt may succeed."""

    transient = True


class SourceRequestError(SourceError):
    """The exchange refused the request for good (unknown symbol, bad credentials, bad request)."""


class DayOutOfRangeError(SourceRequestError):
    """The requested UTC day cannot have data: it lies in the future or before the listing."""
