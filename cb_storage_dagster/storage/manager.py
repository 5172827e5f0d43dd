"""StorageManagerImpl: keys, schemas and formats over one backend. No Dagster here."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from cb_storage_dagster.domain.errors import (
    CorruptTableError,
    NotFoundError,
    PartitionMismatchError,
    TimeRangeError,
    UnsupportedFormatError,
    UnsupportedWriteModeError,
)
from cb_storage_dagster.domain.identifiers import normalize_identifier
from cb_storage_dagster.domain.keys import DataType, MarketDataKey, MarketDataKeyLike, validate_name
from cb_storage_dagster.domain.results import WriteResult
from cb_storage_dagster.domain.schemas import (
    CANONICAL_SCHEMAS,
    DATE_COLUMN,
    MONTH_COLUMN,
    canonical_schema,
    check_natural_keys,
    normalize,
)
from cb_storage_dagster.storage.delta.sorting import sort_rows
from cb_storage_dagster.storage.delta.table_format import DeltaFormat
from cb_storage_dagster.storage.files import FORMAT_MARKER, JsonFormat, ParquetFormat
from cb_storage_dagster.storage.format import FORMATS, FormatStore, ReadRequest
from cb_storage_dagster.storage.interfaces import Filter, IStorageBackend, IStorageManager
from cb_storage_dagster.storage.layout import DEFAULT_LAYOUT, Layout, parse_layout
from cb_storage_dagster.storage.sql import (
    WriteScope,
    days_in_range,
    sql_literal,
    utc_instant,
    validate_column,
    validate_filters,
)

if TYPE_CHECKING:
    import pandas as pd


WriteMode = Literal["replace", "merge"]
WRITE_MODES: tuple[str, ...] = ("replace", "merge")


def parse_write_mode(value: str | None) -> WriteMode:
    """``replace`` (the default) or ``merge``; anything else is refused.

    >>> parse_write_mode(" Merge ")
    'merge'
    """
    name = "replace" if value is None else str(value).strip().lower()
    if name not in WRITE_MODES:
        raise UnsupportedWriteModeError(
            f"Unknown write mode {value!r}; use 'replace' (the partitions hold exactly the data) "
            "or 'merge' (upsert the rows by their natural key)."
        )
    return name  # type: ignore[return-value]


def parse_format(value: str | None) -> str | None:
    if value is None:
        return None
    name = str(value).strip().lower()
    if name not in FORMATS:
        raise UnsupportedFormatError(f"Unknown format {value!r}; use one of: {', '.join(FORMATS)}.")
    return name


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
    ) -> None:
        self.backend = backend
        self.default_format = parse_format(default_format) or "delta"
        delta_options: dict[str, Any] = {"default_layout": parse_layout(default_layout) or DEFAULT_LAYOUT}
        if max_commit_retries is not None:
            delta_options["max_commit_retries"] = max_commit_retries
        self._formats: dict[str, FormatStore] = {
            "delta": DeltaFormat(backend, **delta_options),
            "parquet": ParquetFormat(backend),
            "json": JsonFormat(backend),
        }
        self._stored_formats: dict[str, str] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StorageManagerImpl(backend={self.backend!r}, default_format={self.default_format!r})"

    @property
    def delta(self) -> DeltaFormat:
        return self._formats["delta"]  # type: ignore[return-value]

    # -- tables and formats ------------------------------------------------------------
    @staticmethod
    def table_name(data_type: DataType | str, table: str | None = None) -> str:
        """The table a data type is stored in: ``table`` if given (validated), else the type."""
        if table is None:
            return DataType.parse(data_type).value
        clean = normalize_identifier(table)
        for segment in clean.split("/"):
            validate_name(segment, "table name segment")
        return clean

    def table_uri(self, data_type: DataType | str, table: str | None = None) -> str:
        return self.backend.get_uri_for_identifier(self.table_name(data_type, table))

    def stored_format(self, table: str) -> str | None:
        """The format ``table`` is stored in, or ``None`` if it holds nothing yet."""
        cached = self._stored_formats.get(table)
        if cached is not None:
            return cached
        found: str | None = None
        if self.delta.exists(table):
            found = "delta"
        else:
            try:
                marker = self.backend.load_bytes(f"{table}/{FORMAT_MARKER}").decode().strip()
                found = marker if marker in FORMATS else None
            except NotFoundError:
                found = None
        if found is not None:
            with self._lock:
                self._stored_formats[table] = found
        else:
            self._refuse_foreign_objects(table)
        return found

    def _refuse_foreign_objects(self, table: str) -> None:
        """A table folder that holds objects but no table of ours (no ``_delta_log``, no
        format marker) is someone else's data: reading it as "no rows" or writing a table
        over it would both be wrong, so nothing is done with it."""
        items = self.backend.list_items(table)
        nested = {i.split("/_delta_log/")[0] for i in items if "/_delta_log/" in i}
        nested |= {i.rsplit("/", 1)[0] for i in items if i.endswith(f"/{FORMAT_MARKER}")}
        foreign = [i for i in items if not any(i.startswith(f"{root}/") for root in nested)]
        if foreign:
            raise CorruptTableError(
                f"{table!r} in {self.backend.describe()} holds {len(foreign)} objects (e.g. "
                f"{foreign[0]!r}) but no Delta table and no {FORMAT_MARKER} marker: it is not a "
                "table of this storage layer. Nothing was read or written; move those objects "
                "aside, or use another table name."
            )

    def _write_format(self, table: str, format_hint: str | None) -> FormatStore:
        wanted = parse_format(format_hint) or self.default_format
        stored = self.stored_format(table)
        if stored is not None and stored != wanted:
            raise UnsupportedFormatError(
                f"Table {table!r} is stored as {stored}; it cannot also hold {wanted}. Write it "
                f"as {stored}, or use another table name for {wanted} data."
            )
        return self._formats[wanted]

    def _read_format(self, table: str, format_hint: str | None) -> FormatStore | None:
        hinted = parse_format(format_hint)
        stored = self.stored_format(table)
        if hinted is not None and stored is not None and hinted != stored:
            raise UnsupportedFormatError(
                f"Table {table!r} is stored as {stored}, not {hinted}; drop format_hint or pass {stored!r}."
            )
        name = stored or hinted
        return None if name is None else self._formats[name]

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
        return self._write(key.data_type, normalized, scope, format_hint, table, mode, layout)

    def write_partitions(
        self,
        data_type: DataType | str,
        data: pd.DataFrame | pa.Table,
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
        """
        data_type = DataType.parse(data_type)
        instruments = {(s.exchange, s.coin) for s in scope.slots} | set(scope.instruments)
        exchange, coin = (None, None)
        if len(instruments) == 1 and not (scope.days or scope.whole_table):
            exchange, coin = next(iter(instruments))  # fills missing exchange/coin columns
        normalized = normalize(data, data_type, exchange=exchange, coin=coin)
        return self._write(data_type, normalized, scope, format, table, mode, layout)

    def _write(
        self,
        data_type: DataType,
        normalized: pa.Table,
        scope: WriteScope,
        format_hint: str | None,
        table: str | None,
        mode: str | None = "replace",
        layout: Layout | None = None,
    ) -> WriteResult:
        write_mode = parse_write_mode(mode)
        name = self.table_name(data_type, table)
        layout = parse_layout(layout)
        store = self._write_format(name, format_hint)
        merge = write_mode == "merge"
        key_columns = check_natural_keys(normalized, data_type) if merge else ()
        if scope.is_empty or (merge and normalized.num_rows == 0):
            if merge and not isinstance(store, DeltaFormat):
                store.merge(name, data_type, normalized, scope, key_columns)  # refuses
            # Nothing to replace, or nothing to upsert: no commit.
            return WriteResult(
                uri=self.backend.get_uri_for_identifier(name), format=store.name, table=name,
                version=self.table_version(data_type, table=table) if merge else None,
                row_count=0, schema=normalized.schema, mode=write_mode,
                rows_inserted=0 if merge else None, rows_updated=0 if merge else None,
            )
        _check_rows_in_scope(normalized, scope)
        if merge:
            result = store.merge(name, data_type, normalized, scope, key_columns)
        elif isinstance(store, DeltaFormat):
            result = store.write(name, data_type, normalized, scope, layout=layout)
        else:
            result = store.write(name, data_type, normalized, scope)
        with self._lock:
            self._stored_formats[name] = store.name
        return result

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
        start, end = _time_range(start_time, end_time)
        name = self.table_name(key.data_type, table)
        store = self._read_format(name, None)
        if store is None:
            return WriteResult(uri=self.backend.get_uri_for_identifier(name), format=self.default_format,
                               table=name, version=None, row_count=0)
        days = days_in_range(start, end)
        if isinstance(store, DeltaFormat):
            months = sorted({d.strftime("%Y-%m") for d in days})
            predicate = (
                f"exchange = {sql_literal(key.exchange)} AND coin = {sql_literal(key.coin)} AND "
                f"{MONTH_COLUMN} IN ({', '.join(sql_literal(m) for m in months)}) AND "
                f"timestamp >= {_ts_literal(start)} AND timestamp < {_ts_literal(end)}"
            )
            return store.delete(name, predicate)
        # Parquet/JSON: rewrite each touched day without the deleted rows.
        scope = WriteScope.of_slots([key.partition(d) for d in days])
        kept = store.read(name, ReadRequest(key.data_type, scope))
        mask = pc.or_(
            pc.less(kept.column("timestamp"), pa.scalar(start, pa.timestamp("us", tz="UTC"))),
            pc.greater_equal(kept.column("timestamp"), pa.scalar(end, pa.timestamp("us", tz="UTC"))),
        )
        return store.write(name, key.data_type, kept.filter(mask), scope)

    # -- reads -------------------------------------------------------------------------
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
        ``columns`` projects. Only the partitions of the range are read. An empty range, or
        no data at all, gives an empty frame with the canonical schema.
        """
        key = MarketDataKey.from_context(context)
        start, end = _time_range(start_time, end_time)
        scope = WriteScope.of_slots([key.partition(d) for d in days_in_range(start, end)])
        table_data = self.read_partitions(
            key.data_type, scope, filters=filters, columns=columns, format_hint=format_hint,
            table=table, time_range=(start, end),
            as_of_version=as_of_version, as_of_timestamp=as_of_timestamp,
        )
        return table_data.to_pandas()

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
        name = self.table_name(data_type, table)
        checked_filters = validate_filters(filters)
        wanted = [validate_column(c) for c in columns] if columns is not None else None
        if as_of_timestamp is not None:
            as_of_timestamp = utc_instant(as_of_timestamp, "as_of_timestamp")
        if scope is not None and scope.is_empty:
            return _project(canonical_schema(data_type).empty_table(), data_type, wanted)
        store = self._read_format(name, format_hint)
        if store is None:
            if as_of_version is not None or as_of_timestamp is not None:
                raise NotFoundError(f"Table {name!r} does not exist, so it has no past versions.")
            return _project(canonical_schema(data_type).empty_table(), data_type, wanted)
        sort_keys = _sort_keys(data_type)
        read_columns = None
        if wanted is not None:
            read_columns = list(dict.fromkeys(wanted + sort_keys))
        data = store.read(
            name,
            ReadRequest(
                data_type=data_type, scope=scope, filters=tuple(checked_filters),
                time_range=time_range, columns=read_columns,
                as_of_version=as_of_version, as_of_timestamp=as_of_timestamp,
            ),
        )
        # Direct Delta reads come out in (instrument, time) order already: check in one pass.
        data = sort_rows(data, sort_keys, single_instrument=_single_instrument(scope))
        return _project(data, data_type, wanted)

    # -- listing -----------------------------------------------------------------------
    def _instruments(self, data_type: DataType | str, table: str | None) -> list[tuple[str, str]]:
        name = self.table_name(data_type, table)
        store = self._read_format(name, None)
        return [] if store is None else store.instruments(name)

    def list_exchanges(self, data_type: DataType | str, *, table: str | None = None) -> list[str]:
        """Exchanges with data, from the Delta log's partition values (or the Hive paths)."""
        return sorted({e for e, _ in self._instruments(data_type, table)})

    def list_coins(
        self, exchange_name: str, data_type: DataType | str, *, table: str | None = None
    ) -> list[str]:
        """Coins of an exchange with data, from partition values (no data scan)."""
        validate_name(exchange_name, "exchange")
        return sorted({c for e, c in self._instruments(data_type, table) if e == exchange_name})

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
        name = self.table_name(data_type, table)
        store = self._read_format(name, None)
        return [] if store is None else store.list_dates(name, exchange_name, coin)


def _time_range(start_time: Any, end_time: Any) -> tuple[dt.datetime, dt.datetime]:
    start = utc_instant(start_time, "start_time")
    end = utc_instant(end_time, "end_time")
    if end < start:
        raise TimeRangeError(f"end_time {end.isoformat()} is before start_time {start.isoformat()}.")
    return start, end


def _ts_literal(value: dt.datetime) -> str:
    return f"'{value.astimezone(dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}'"


def _sort_keys(data_type: DataType) -> list[str]:
    keys = ["exchange", "coin", "timestamp"]
    if data_type is DataType.ORDER_BOOK:
        keys += ["side", "level"]
    elif data_type is DataType.TRADES:
        keys += ["trade_id"]
    return keys


def _single_instrument(scope: WriteScope | None) -> bool:
    """Whether every row of a read of ``scope`` belongs to one exchange/coin."""
    if scope is None or scope.whole_table or scope.days:
        return False
    return len({(s.exchange, s.coin) for s in scope.slots} | set(scope.instruments)) == 1


def _check_rows_in_scope(data: pa.Table, scope: WriteScope) -> None:
    if data.num_rows == 0 or scope.whole_table:
        return
    inside = scope.row_mask(data)
    if pc.all(inside, skip_nulls=False).as_py():
        return  # the usual case: no rows to find and describe
    outside = data.filter(pc.invert(inside))
    if outside.num_rows:
        sample = outside.select(["exchange", "coin", DATE_COLUMN]).group_by(
            ["exchange", "coin", DATE_COLUMN]).aggregate([]).slice(0, 5).to_pylist()
        shown = ", ".join(f"{r['exchange']}/{r['coin']}/{r[DATE_COLUMN]}" for r in sample)
        allowed = ", ".join(scope.describe()[:5]) + (" ..." if len(scope.describe()) > 5 else "")
        raise PartitionMismatchError(
            f"{outside.num_rows} rows do not belong to the partitions being written "
            f"(found {shown}; writing {allowed}). Nothing was written. Filter the data to the "
            "run's partitions, or run the partitions the data covers."
        )


def _project(data: pa.Table, data_type: DataType, columns: list[str] | None) -> pa.Table:
    """Drop the layout column; canonical columns first (or exactly ``columns``)."""
    if MONTH_COLUMN in data.column_names and (columns is None or MONTH_COLUMN not in columns):
        data = data.drop_columns([MONTH_COLUMN])
    if columns is not None:
        missing = [c for c in columns if c not in data.column_names]
        if missing:
            from cb_storage_dagster.domain.errors import SchemaMismatchError

            raise SchemaMismatchError(f"Unknown columns {missing}; available: {data.column_names}.")
        return data.select(columns)
    canonical = [n for n in canonical_schema(data_type).names if n in data.column_names]
    extras = [n for n in data.column_names if n not in canonical]
    data = data.select(canonical + extras)
    # Delta returns partition columns as they are stored; give back canonical types.
    schema = CANONICAL_SCHEMAS[data_type]
    for name in ("exchange", "coin"):
        if name in data.column_names and data.schema.field(name).type != schema.field(name).type:
            i = data.column_names.index(name)
            data = data.set_column(i, name, pc.cast(data.column(name), pa.string()))
    return data


__all__ = ["WRITE_MODES", "StorageManagerImpl", "WriteMode", "parse_format", "parse_write_mode"]
