"""The one exceptions module of cb-storage-dagster, with one notion of "transient".

Every error the project raises is a :class:`ProjectError`, whose ``transient`` attribute
says whether the same call may succeed if simply tried again; the retry layers
(:func:`cb_storage_dagster.retry.is_transient`, Dagster's step and run retries) decide on that
attribute and nothing else. Two families share it:

* :class:`StorageError`: everything the storage API raises (``WriteConflictError`` and
  ``BackendUnavailableError`` are transient; bad data, keys, configuration are not);
* :class:`SourceError`: what a market-data source raises (``SourceUnavailableError`` is
  transient; a refused request or an impossible day is not).

Messages say what is wrong and what to do about it; they never contain a secret (account
keys, SAS tokens, client secrets or connection strings).

Example:
    >>> WriteConflictError("lost").transient, SourceUnavailableError("binance did not answer").transient
    (True, True)
    >>> InvalidDataError("NaN price").transient, SourceRequestError("binance:DOGE: unknown symbol").transient
    (False, False)
"""

from __future__ import annotations

from typing import ClassVar


class ProjectError(Exception):
    """Base class of every error this project raises, storage and source alike."""

    transient: ClassVar[bool] = False
    """True when simply trying the same call again later may succeed (a commit conflict,
    throttling, a network failure, an outage); False when it never will."""


class StorageError(ProjectError):
    """Base class of every error raised by the storage layer.

    ``transient`` (see :class:`ProjectError`) is True for a commit conflict or an outage and
    False for bad data, a bad key or a bad configuration.
    """


class InvalidKeyError(StorageError, ValueError):
    """An exchange, coin, data type, date or identifier is not acceptable.

    Raised before anything is read or written, e.g. for ``coin="BTC' OR '1'='1"`` or an
    identifier containing ``..``.
    """


class UnsupportedFormatError(StorageError, ValueError):
    """A storage format other than ``delta``, ``parquet`` or ``json`` was requested."""


class UnsupportedWriteModeError(StorageError, ValueError):
    """A write mode other than ``replace`` or ``merge``, or ``merge`` into a format that
    cannot merge safely (Parquet, JSON)."""


class SchemaMismatchError(StorageError, ValueError):
    """The data does not fit the canonical schema of its data type.

    The message names the column (missing, wrong type, or a value that cannot be cast
    without loss).
    """


class InvalidDataError(StorageError, ValueError):
    """A value is not acceptable although its type is: NaN/negative prices, duplicate
    candle timestamps, an unknown trade side, ..."""


class PartitionMismatchError(StorageError, ValueError):
    """Rows do not belong to the exchange/coin/day partitions being written."""


class TimeRangeError(StorageError, ValueError):
    """A requested time range is invalid (naive datetimes, end before start)."""


class NotFoundError(StorageError, LookupError):
    """The requested object or table does not exist."""


class CorruptTableError(StorageError):
    """A path where a Delta table is expected holds something that is not a readable table."""


class UnsupportedTableFeatureError(StorageError):
    """The Delta table is intact but uses a protocol version or table feature that neither
    this product's reader nor delta-rs (which it falls back to) can read.

    Raised e.g. for a reader feature added by a newer engine. The table is left as it is;
    read it with the engine that wrote it, or upgrade ``deltalake``. Not transient: trying
    again with the same software gives the same answer.
    """


class BackendUnavailableError(StorageError, ConnectionError):
    """The storage backend cannot be reached (after the configured retries)."""

    transient = True


class AuthenticationError(StorageError, PermissionError):
    """The backend refused the credentials. The credentials themselves are never shown."""


class WriteConflictError(StorageError):
    """A commit kept conflicting with concurrent writers until the retry budget ran out."""

    transient = True


class ConfigurationError(StorageError, ValueError):
    """The storage configuration is incomplete or inconsistent; the message names the
    environment variable to set."""


class LayoutMismatchError(ConfigurationError):
    """A write asked explicitly for a Delta layout other than the one the existing table was
    created with (a table keeps its layout; see ``storage/layout.py``)."""


# -- market-data sources ------------------------------------------------------------------------
class SourceError(ProjectError):
    """Base class of every error a market-data source raises.

    The Dagster resource turns a transient one into a retryable ``dg.Failure`` and any other
    into a failure that is not retried.
    """


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


# -- retries --------------------------------------------------------------------------------------
class RetriesExhaustedError(ProjectError):
    """A transient failure outlasted the retry budget (raised by
    :func:`cb_storage_dagster.retry.run_with_retries`, chained to the last failure).

    Transient: a later run may succeed. Callers usually turn it into their own error
    (``WriteConflictError``, ``SourceUnavailableError``), keeping its facts: ``attempts`` made,
    ``waited_seconds`` of backoff, and ``why`` the retries stopped (the attempts or the wait budget).
    """

    transient = True

    def __init__(self, message: str, *, attempts: int = 0, waited_seconds: float = 0.0, why: str = "") -> None:
        super().__init__(message)
        self.attempts = attempts
        self.waited_seconds = waited_seconds
        self.why = why
