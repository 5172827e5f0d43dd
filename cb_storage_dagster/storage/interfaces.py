"""The two interfaces of the seed design: physical storage and the market-data facade."""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # heavy imports only for type checkers
    import pandas as pd
    import pyarrow as pa

    from cb_storage_dagster.domain.errors import StorageError
    from cb_storage_dagster.domain.keys import DataType, MarketDataKeyLike
    from cb_storage_dagster.domain.results import WriteResult
    from cb_storage_dagster.domain.scope import WriteScope

Filter = tuple[str, str, Any]
"""A ``(column, op, value)`` filter; ``op`` is one of ``= == != < <= > >= in not in``."""


class IStorageBackend(ABC):
    """Low-level, format-agnostic access to one storage location (a root directory, a container).

    Identifiers are relative ``a/b/c`` paths (see
    :func:`cb_storage_dagster.domain.identifiers.normalize_identifier`); a backend never
    lets an identifier escape its root. Errors are the project's own:
    :class:`~cb_storage_dagster.domain.errors.NotFoundError`,
    :class:`~cb_storage_dagster.domain.errors.BackendUnavailableError`,
    :class:`~cb_storage_dagster.domain.errors.AuthenticationError`.
    """

    @abstractmethod
    def get_uri_for_identifier(self, identifier: str) -> str:
        """The URI delta-rs and pyarrow use for ``identifier`` (``file://``, ``abfss://``, ...)."""

    @abstractmethod
    def get_storage_options(self) -> dict[str, str]:
        """delta-rs ``storage_options`` for URIs of this backend (may hold secrets: never log)."""

    @abstractmethod
    def save_bytes(self, identifier: str, data: bytes) -> None:
        """Store ``data`` atomically: readers see the old object or the new one, never a part."""

    @abstractmethod
    def load_bytes(self, identifier: str) -> bytes:
        """Return the object's bytes; :class:`NotFoundError` if it does not exist."""

    def load_head(self, identifier: str, size: int) -> bytes:
        """The object's first ``size`` bytes (all of it if it is smaller); :class:`NotFoundError`
        if it does not exist. Backends with ranged reads fetch only those bytes."""
        return self.load_bytes(identifier)[:size]

    @abstractmethod
    def list_items(self, prefix: str = "") -> list[str]:
        """Identifiers of all objects under ``prefix`` (recursive), sorted. Missing prefix: ``[]``."""

    @abstractmethod
    def exists(self, identifier: str) -> bool:
        """Whether an object (or a directory-like prefix) exists at ``identifier``."""

    @abstractmethod
    def delete(self, identifier: str) -> None:
        """Delete one object; deleting a missing object is not an error."""

    def prepare_for_writes(self) -> None:
        """Make the location writable by delta-rs (e.g. create a missing Azure container).

        Called before a Delta table is created; the default does nothing."""

    def describe(self) -> str:
        """A short, secret-free description for logs and metadata."""
        return type(self).__name__

    def translate_error(self, error: BaseException) -> StorageError | None:
        """Map an exception raised by delta-rs or pyarrow for this backend to a project
        error (unavailable, authentication, ...), or ``None`` if it is not backend-related."""
        return None


class IStorageManager(ABC):
    """The market-data facade application code talks to (see :class:`StorageManagerImpl`).

    Implementations provide the abstract methods; :meth:`get_range` is defined here, once,
    as a :meth:`read_partitions` of the instrument's days.
    """

    @abstractmethod
    def save_entry(
        self,
        context: MarketDataKeyLike,
        data: pd.DataFrame | pa.Table,
        format_hint: str | None = None,
        *,
        mode: Literal["replace", "merge"] = "replace",
    ) -> WriteResult:
        """Store ``data`` for the key, replacing exactly the exchange/coin/days it covers
        (``mode="replace"``), or upserting its rows by their natural key (``mode="merge"``)."""

    def get_range(
        self,
        context: MarketDataKeyLike,
        start_time: dt.datetime,
        end_time: dt.datetime,
        filters: Sequence[Filter] | None = None,
        columns: Sequence[str] | None = None,
        format_hint: str | None = None,
        *,
        table: str | None = None,
        as_of_version: int | None = None,
        as_of_timestamp: dt.datetime | None = None,
    ) -> pd.DataFrame:
        """Rows of one instrument with ``start_time <= timestamp < end_time``, sorted by time.

        Times must be timezone-aware (naive datetimes raise :class:`TimeRangeError`).
        ``filters`` are ``(column, op, value)`` tuples pushed down to file statistics;
        ``columns`` projects. Only the partitions of the range are read (one
        :meth:`read_partitions` of the instrument's days). An empty range, or no data at
        all, gives an empty frame with the canonical schema.
        """
        from cb_storage_dagster.domain.keys import MarketDataKey
        from cb_storage_dagster.domain.scope import WriteScope
        from cb_storage_dagster.storage.frame_conversion import as_frame
        from cb_storage_dagster.storage.times import days_in_range, time_range

        key = MarketDataKey.from_context(context)
        start, end = time_range(start_time, end_time)
        scope = WriteScope.of_slots([key.partition(d) for d in days_in_range(start, end)])
        table_data = self.read_partitions(
            key.data_type, scope, filters=filters, columns=columns, format_hint=format_hint,
            table=table, time_range=(start, end),
            as_of_version=as_of_version, as_of_timestamp=as_of_timestamp,
        )
        return as_frame(table_data)

    def get_many(
        self,
        data_type: DataType | str,
        selection: str | Iterable[str | tuple[str, str]],
        start_time: dt.datetime,
        end_time: dt.datetime,
        *,
        columns: Sequence[str] | None = None,
        filters: Sequence[Filter] | None = None,
        as_arrow: bool = False,
        table: str | None = None,
        format_hint: str | None = None,
    ) -> pd.DataFrame | pa.Table:
        """Rows of many instruments with ``start_time <= timestamp < end_time`` in one pruned
        scan, sorted by exchange, coin and timestamp: the cross-sectional read.

        ``selection`` is an exchange name (every instrument it has, e.g. ``"binance"``) or
        instruments as ``"exchange:coin"`` keys or ``(exchange, coin)`` pairs. ``columns``,
        ``filters`` and ``table`` as in :meth:`get_range`; ``as_arrow=True`` returns a
        ``pyarrow.Table`` instead of a DataFrame. Naive times raise :class:`TimeRangeError`,
        bad names and filters :class:`InvalidKeyError`; instruments without data give no rows.
        See :mod:`cb_storage_dagster.storage.cross_section`.
        """
        from cb_storage_dagster.storage.cross_section import get_many

        return get_many(
            self, data_type, selection, start_time, end_time, columns=columns, filters=filters,
            as_arrow=as_arrow, table=table, format_hint=format_hint,
        )

    @abstractmethod
    def read_partitions(self, data_type: DataType | str, scope: WriteScope | None, **options: Any) -> pa.Table:
        """Read ``scope`` (``None``: everything) in one pruned scan, as an Arrow table sorted
        by exchange, coin and timestamp.

        ``options``: the keyword arguments of :meth:`get_range` after ``end_time``
        (``filters``, ``columns``, ``format_hint``, ``table``, ``as_of_version``,
        ``as_of_timestamp``) and ``time_range``, a UTC ``(start, end)`` that bounds
        ``timestamp``.
        """

    @abstractmethod
    def list_exchanges(self, data_type: DataType | str) -> list[str]:
        """Exchanges that have data of ``data_type``."""

    @abstractmethod
    def list_coins(self, exchange_name: str, data_type: DataType | str) -> list[str]:
        """Coins of ``exchange_name`` that have data of ``data_type``."""

    @abstractmethod
    def list_dates(
        self, exchange_name: str, coin: str, data_type: DataType | str
    ) -> list[dt.date]:
        """UTC days that have data for the instrument."""

    @abstractmethod
    def delete_range(
        self, context: MarketDataKeyLike, start_time: dt.datetime, end_time: dt.datetime
    ) -> WriteResult:
        """Delete the instrument's rows with ``start_time <= timestamp < end_time``."""
