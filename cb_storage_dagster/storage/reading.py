"""The read path: one pruned scan of a table (:func:`read_table`) and what it gives back: rows
in (exchange, coin, time) order, canonical columns first, the layout-only ``month`` column
dropped, partition columns in their canonical types."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from cb_storage_dagster.domain.errors import NotFoundError, SchemaMismatchError
from cb_storage_dagster.domain.keys import DataType
from cb_storage_dagster.domain.schemas import CANONICAL_SCHEMAS, MONTH_COLUMN, canonical_schema
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.storage.catalog import TableFormats
from cb_storage_dagster.storage.delta.sorting import sort_rows
from cb_storage_dagster.storage.format import ReadRequest
from cb_storage_dagster.storage.interfaces import Filter
from cb_storage_dagster.storage.sql import validate_column, validate_filters
from cb_storage_dagster.storage.times import utc_instant


def sort_keys(data_type: DataType) -> list[str]:
    """The columns a read of ``data_type`` is sorted by (its natural key).

    >>> sort_keys(DataType.TRADES)
    ['exchange', 'coin', 'timestamp', 'trade_id']
    """
    keys = ["exchange", "coin", "timestamp"]
    if data_type is DataType.ORDER_BOOK:
        keys += ["side", "level"]
    elif data_type is DataType.TRADES:
        keys += ["trade_id"]
    return keys


def empty_result(data_type: DataType, columns: list[str] | None) -> pa.Table:
    """No rows, in the shape a read of ``data_type`` (projected to ``columns``) has."""
    return project(canonical_schema(data_type).empty_table(), data_type, columns)


def project(data: pa.Table, data_type: DataType, columns: list[str] | None) -> pa.Table:
    """Drop the layout column; canonical columns first (or exactly ``columns``)."""
    names = data.column_names
    if MONTH_COLUMN in names and (columns is None or MONTH_COLUMN not in columns):
        data = data.drop_columns([MONTH_COLUMN])
        names = data.column_names
    if columns is not None:
        missing = [c for c in columns if c not in names]
        if missing:
            raise SchemaMismatchError(f"Unknown columns {missing}; available: {names}.")
        return data.select(columns)
    present = set(names)
    canonical = [n for n in canonical_schema(data_type).names if n in present]
    chosen = set(canonical)
    ordered = canonical + [n for n in names if n not in chosen]
    if ordered != names:
        data = data.select(ordered)
    # Delta returns partition columns as they are stored; give back canonical types.
    schema = CANONICAL_SCHEMAS[data_type]
    for name in ("exchange", "coin"):
        if name in present and data.schema.field(name).type != schema.field(name).type:
            i = ordered.index(name)
            data = data.set_column(i, name, pc.cast(data.column(name), pa.string()))
    return data


def read_table(
    tables: TableFormats,
    data_type: DataType,
    name: str,
    scope: WriteScope | None,
    *,
    filters: Sequence[Filter] | None = None,
    columns: Sequence[str] | None = None,
    format_hint: str | None = None,
    time_range: tuple[dt.datetime, dt.datetime] | None = None,
    as_of_version: int | None = None,
    as_of_timestamp: dt.datetime | None = None,
) -> pa.Table:
    """Read ``scope`` of table ``name`` (``None``: everything) in one pruned scan, sorted and
    projected (what :meth:`StorageManagerImpl.read_partitions` returns)."""
    started = time.monotonic()
    checked_filters = validate_filters(filters)
    wanted = [validate_column(c) for c in columns] if columns is not None else None
    if as_of_timestamp is not None:
        as_of_timestamp = utc_instant(as_of_timestamp, "as_of_timestamp")
    if scope is not None and scope.is_empty:
        return empty_result(data_type, wanted)
    store = tables.for_read(name, format_hint, reading_since=started)
    if store is None:
        if as_of_version is not None or as_of_timestamp is not None:
            raise NotFoundError(f"Table {name!r} does not exist, so it has no past versions.")
        return empty_result(data_type, wanted)
    keys = sort_keys(data_type)
    read_columns = None
    if wanted is not None:
        read_columns = list(dict.fromkeys(wanted + keys))
    data = store.read(
        name,
        ReadRequest(
            data_type=data_type, scope=scope, filters=tuple(checked_filters),
            time_range=time_range, columns=read_columns,
            as_of_version=as_of_version, as_of_timestamp=as_of_timestamp, started_at=started,
        ),
    )
    # Direct Delta reads come out in (instrument, time) order already: check in one pass.
    data = sort_rows(data, keys, single_instrument=scope is not None and scope.sole_instrument is not None)
    return project(data, data_type, wanted)
