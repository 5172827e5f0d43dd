"""The one exceptions module of cb-storage-dagster.

Every error the public API raises is a :class:`StorageError`. Messages say what is wrong
and what to do about it; they never contain a secret (account keys, SAS tokens, client
secrets or connection strings).
"""

from __future__ import annotations

from typing import ClassVar


class StorageError(Exception):
    """Base class of every error raised by the storage layer.

    ``transient`` tells a caller whether the same call may succeed if simply tried again
    (a commit conflict, throttling, an outage) or never will (bad data, a bad key, a bad
    configuration). Retry layers (the storage core's retry policy, Dagster's step and run
    retries) decide on this attribute and nothing else.
    """

    transient: ClassVar[bool] = False


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
