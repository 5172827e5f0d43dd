"""StorageManagerImpl: keys, schemas and formats over one backend. No Dagster here.

The manager owns the order of a write (normalize, check the rows against the scope, one
commit, in :mod:`.writing`) and of a read (one pruned scan, sorted, projected); argument checks live in
:mod:`.arguments` and :mod:`.times`, the format of each table in :mod:`.catalog`, the
read's scan and the shape of its result in :mod:`.reading`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from cb_storage_dagster.domain.chunks import MarketDataChunks
from cb_storage_dagster.domain.keys import DataType, MarketDataKey, MarketDataKeyLike, validate_name
from cb_storage_dagster.domain.results import WriteResult
from cb_storage_dagster.domain.schemas import DATE_COLUMN, normalize
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.storage.arguments import WriteMode, parse_format, table_name
from cb_storage_dagster.storage.catalog import TableFormats
from cb_storage_dagster.storage.chunked import read_chunks
from cb_storage_dagster.storage.delta.table_format import DeltaFormat
from cb_storage_dagster.storage.files import JsonFormat, ParquetFormat
from cb_storage_dagster.storage.format import ReadRequest
from cb_storage_dagster.storage.interfaces import Filter, IStorageBackend, IStorageManager
from cb_storage_dagster.storage.layout import DEFAULT_LAYOUT, Layout, parse_layout
from cb_storage_dagster.storage.reading import read_table
from cb_storage_dagster.storage.sql import instrument_range_predicate, time_range_expression
from cb_storage_dagster.storage.times import days_in_range, time_range
from cb_storage_dagster.storage.writing import write_chunked, write_table

if TYPE_CHECKING:
    import pandas as pd


class StorageManagerImpl(IStorageManager):
    """Stores and reads market data (OHLCV, trades, order-book snapshots) on a backend.

    One table per data type (``ohlcv``, ``trades``, ``order_book``; a ``table=`` argument
    picks another name, e.g. ``ohlcv_1d``). Delta is the default format; Parquet and JSON
    store one object per exchange/coin/day. New Delta tables are created in
    ``default_layout`` (``"instrument"``: exchange/coin/month partitions; ``"exchange"``:
    exchange/month partitions with coin a sorted data column, for thousands of instruments);
    an existing table keeps its layout.

    Example:
        >>> import datetime as dt, tempfile
        >>> import pandas as pd
        >>> from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl
        >>> manager = StorageManagerImpl(LocalFileBackend(tempfile.mkdtemp()))
        >>> candles = pd.DataFrame({
        ...     "timestamp": pd.date_range("2024-01-02", periods=3, freq="1min", tz="UTC"),
        ...     "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0})
        >>> result = manager.save_entry(
        ...     {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}, candles)
        >>> result.row_count, result.version
        (3, 1)
        >>> utc = dt.timezone.utc
        >>> len(manager.get_range({"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"},
        ...     dt.datetime(2024, 1, 2, tzinfo=utc), dt.datetime(2024, 1, 3, tzinfo=utc)))
        3
    """

    def __init__(
        self,
        backend: IStorageBackend,
        *,
        default_format: str = "delta",
        max_commit_retries: int | None = None,
        default_layout: Layout = DEFAULT_LAYOUT,
        checkpoint_interval: int | None = None,
    ) -> None:
        self.backend = backend
        self.default_format = parse_format(default_format) or "delta"
        delta_options: dict[str, Any] = {"default_layout": parse_layout(default_layout) or DEFAULT_LAYOUT}
        if max_commit_retries is not None:
            delta_options["max_commit_retries"] = max_commit_retries
        if checkpoint_interval is not None:  # commits between Delta checkpoints (settings/storage.py)
            delta_options["checkpoint_interval"] = checkpoint_interval
        self._tables = TableFormats(backend, {
            "delta": DeltaFormat(backend, **delta_options),
            "parquet": ParquetFormat(backend),
            "json": JsonFormat(backend),
        }, self.default_format)

    def __repr__(self) -> str:
        return f"StorageManagerImpl(backend={self.backend!r}, default_format={self.default_format!r})"

    @property
    def delta(self) -> DeltaFormat:
        return self._tables.delta

    # -- tables and formats ------------------------------------------------------------
    table_name = staticmethod(table_name)  # the validated table name of a data type

    def table_uri(self, data_type: DataType | str, table: str | None = None) -> str:
        return self.backend.get_uri_for_identifier(self.table_name(data_type, table))

    def stored_format(self, table: str) -> str | None:
        """The format ``table`` is stored in, or ``None`` if it holds nothing yet."""
        return self._tables.stored_format(table)

    # -- writes ------------------------------------------------------------------------
    def save_entry(
        self,
        context: MarketDataKeyLike,
        data: pd.DataFrame | pa.Table,
        format_hint: str | None = None,
        *,
        table: str | None = None,
        mode: WriteMode = "replace",
        layout: Layout | None = None,
    ) -> WriteResult:
        """Store ``data`` for one instrument.

        With a ``date`` on the key exactly that UTC day is replaced (an empty frame clears
        it); without one, exactly the days present in the data are replaced. Re-saving the
        same data is idempotent. Rows of another exchange, coin or day are refused with
        :class:`PartitionMismatchError` before anything is written.

        ``mode="merge"`` upserts instead (Delta only): rows are matched on the data type's
        natural key (``exchange, coin, timestamp``; plus ``trade_id`` for trades; plus
        ``side, level`` for order books), changed rows are updated, new ones inserted and
        no stored row is deleted, in one commit. Merging rows already stored changes
        nothing and creates no version. A batch that repeats a key raises
        :class:`InvalidDataError`; Parquet/JSON tables raise
        :class:`UnsupportedWriteModeError`.

        ``layout`` is the Delta layout of a table this write creates (default: the manager's
        ``default_layout``); on an existing table of another layout it raises
        :class:`LayoutMismatchError`.
        """
        key = MarketDataKey.from_context(context)
        normalized = normalize(data, key.data_type, exchange=key.exchange, coin=key.coin)
        if key.date is not None:
            scope = WriteScope.of_slots([key.partition()])
        else:
            days = pc.unique(normalized.column(DATE_COLUMN)).to_pylist()
            scope = WriteScope.of_slots([key.partition(d) for d in days])
        return write_table(self._tables, self.table_name(key.data_type, table), key.data_type, normalized, scope,
                           format_hint, mode, layout)

    def write_partitions(
        self,
        data_type: DataType | str,
        data: pd.DataFrame | pa.Table | MarketDataChunks,
        scope: WriteScope,
        *,
        format: str | None = None,
        table: str | None = None,
        mode: WriteMode = "replace",
        layout: Layout | None = None,
    ) -> WriteResult:
        """Replace exactly ``scope`` (slots, whole days or the whole table) with ``data``,
        or with ``mode="merge"`` upsert ``data`` into it (see :meth:`save_entry`).

        This is the entry point of the Dagster IO manager: one commit for a whole range
        (e.g. ``WriteScope.of_exchange_days`` for every instrument of an exchange-day).
        ``layout`` as in :meth:`save_entry`.

        :class:`MarketDataChunks` are checked chunk by chunk as they stream into one Delta
        commit (:mod:`.chunked`; memory holds one chunk, whatever the run's size), and their
        failed instrument-days are left out of ``scope``: their stored rows stay. A merge,
        or a Parquet/JSON table, gathers the chunks into one table first.
        """
        data_type = DataType.parse(data_type)
        name = self.table_name(data_type, table)
        if isinstance(data, MarketDataChunks):
            return write_chunked(self._tables, name, data_type, data, scope, format, mode, layout)
        exchange, coin = scope.sole_instrument or (None, None)  # fills missing exchange/coin columns
        normalized = normalize(data, data_type, exchange=exchange, coin=coin)
        return write_table(self._tables, name, data_type, normalized, scope, format, mode, layout)

    def table_version(
        self, data_type: DataType | str, *, table: str | None = None, refresh: bool = True
    ) -> int | None:
        """The Delta version of the table (``None`` for Parquet/JSON or no table).

        ``refresh=False`` gives the version this manager last read or wrote, without asking
        the storage again (what the IO manager records for the input it just loaded).
        """
        name = self.table_name(data_type, table)
        if self.stored_format(name) != "delta":
            return None
        return self.delta.open(name, refresh=refresh).version()

    def delete_range(
        self,
        context: MarketDataKeyLike,
        start_time: dt.datetime,
        end_time: dt.datetime,
        *,
        table: str | None = None,
    ) -> WriteResult:
        """Delete the instrument's rows with ``start_time <= timestamp < end_time``."""
        key = MarketDataKey.from_context(context)
        start, end = time_range(start_time, end_time)
        name = self.table_name(key.data_type, table)
        store = self._tables.for_read(name, None)
        if store is None:
            return WriteResult(uri=self.backend.get_uri_for_identifier(name), format=self.default_format,
                               table=name, version=None, row_count=0)
        if isinstance(store, DeltaFormat):
            return store.delete(name, instrument_range_predicate(key.exchange, key.coin, start, end))
        # Parquet/JSON: rewrite each touched day without the deleted rows.
        scope = WriteScope.of_slots([key.partition(d) for d in days_in_range(start, end)])
        kept = store.read(name, ReadRequest(key.data_type, scope))
        return store.write(name, key.data_type, kept.filter(~time_range_expression(start, end)), scope)

    # -- reads -------------------------------------------------------------------------
    def read_chunks(
        self,
        data_type: DataType | str,
        scope: WriteScope,
        *,
        table: str | None = None,
        chunk_instruments: int,
        as_of_version: int | None = None,
    ) -> MarketDataChunks:
        """``scope`` as :class:`MarketDataChunks` of at most ``chunk_instruments`` instruments
        x one day, read lazily one block at a time at one table version (:mod:`.chunked`)."""
        return read_chunks(self, DataType.parse(data_type), scope, table=table,
                           chunk_instruments=chunk_instruments, as_of_version=as_of_version)

    def read_partitions(
        self,
        data_type: DataType | str,
        scope: WriteScope | None,
        *,
        filters: Sequence[Filter] | None = None,
        columns: Sequence[str] | None = None,
        format_hint: str | None = None,
        table: str | None = None,
        time_range: tuple[dt.datetime, dt.datetime] | None = None,
        as_of_version: int | None = None,
        as_of_timestamp: dt.datetime | None = None,
    ) -> pa.Table:
        """Read ``scope`` (``None``: everything) in one pruned scan, as an Arrow table sorted
        by exchange, coin and timestamp."""
        data_type = DataType.parse(data_type)
        return read_table(
            self._tables, data_type, self.table_name(data_type, table), scope,
            filters=filters, columns=columns, format_hint=format_hint, time_range=time_range,
            as_of_version=as_of_version, as_of_timestamp=as_of_timestamp,
        )

    # -- listing -----------------------------------------------------------------------
    def list_exchanges(self, data_type: DataType | str, *, table: str | None = None) -> list[str]:
        """Exchanges with data, from the Delta log's partition values (or the Hive paths)."""
        return sorted({e for e, _ in self._tables.instruments(self.table_name(data_type, table))})

    def list_coins(
        self, exchange_name: str, data_type: DataType | str, *, table: str | None = None
    ) -> list[str]:
        """Coins of an exchange with data, from partition values (no data scan)."""
        validate_name(exchange_name, "exchange")
        instruments = self._tables.instruments(self.table_name(data_type, table))
        return sorted({c for e, c in instruments if e == exchange_name})

    def list_dates(
        self,
        exchange_name: str,
        coin: str,
        data_type: DataType | str,
        *,
        table: str | None = None,
    ) -> list[dt.date]:
        """UTC days with data for one instrument (from per-file statistics in the log)."""
        validate_name(exchange_name, "exchange")
        validate_name(coin, "coin")
        return self._tables.dates(self.table_name(data_type, table), exchange_name, coin)


__all__ = ["StorageManagerImpl"]
