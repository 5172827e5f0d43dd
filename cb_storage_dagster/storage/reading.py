"""What a read gives back: rows in (exchange, coin, time) order, canonical columns first,
the layout-only ``month`` column dropped, partition columns in their canonical types."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from cb_storage_dagster.domain.errors import SchemaMismatchError
from cb_storage_dagster.domain.keys import DataType
from cb_storage_dagster.domain.schemas import CANONICAL_SCHEMAS, MONTH_COLUMN, canonical_schema


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
    if MONTH_COLUMN in data.column_names and (columns is None or MONTH_COLUMN not in columns):
        data = data.drop_columns([MONTH_COLUMN])
    if columns is not None:
        missing = [c for c in columns if c not in data.column_names]
        if missing:
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
