"""Reading and listing any Delta table through delta-rs' DataFusion engine.

The reader for every table the fast path refuses (see
:func:`~cb_storage_dagster.storage.delta.fast_path.fast_path_refusal`): deletion
vectors, column mapping, another partitioning (e.g. ``exchange / date`` with no coin
partition), a reader feature the fast path does not implement. DataFusion applies the
deletion vectors, maps column names and prunes partitions and files itself; this module
only says what to read. Every SQL text comes from
:mod:`~cb_storage_dagster.storage.sql` (quoted identifiers, escaped literals).

The table needs ``exchange``, ``coin`` and ``timestamp`` columns (partitioned or not);
anything else missing is a :class:`SchemaMismatchError` naming the column.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pyarrow as pa

from cb_storage_dagster.domain.errors import SchemaMismatchError
from cb_storage_dagster.domain.schemas import DATE_COLUMN
from cb_storage_dagster.storage.format import ReadRequest
from cb_storage_dagster.storage.sql import (
    filters_sql,
    quote_identifier,
    scope_read_sql,
    sql_literal,
    time_range_sql,
)

if TYPE_CHECKING:
    from deltalake import DeltaTable

LISTING_COLUMNS = ("exchange", "coin", "timestamp")
"""Columns any Delta table must have to be read or listed as market data."""


def table_schema(delta_table: DeltaTable) -> pa.Schema:
    """The Arrow schema of the loaded version (logical column names)."""
    return pa.schema(delta_table.schema().to_arrow())


def require_columns(schema: pa.Schema, columns: list[str] | tuple[str, ...], table: str) -> None:
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise SchemaMismatchError(
            f"Delta table {table!r} has no column(s) {missing} (it has {schema.names}); market-data "
            "reads need exchange, coin and timestamp columns. Point the read at a market-data table."
        )


def read_request_predicate(request: ReadRequest, schema: pa.Schema) -> str | None:
    """The request's scope, time range and filters as one SQL predicate (``None``: all rows)."""
    terms = []
    # ``date`` prunes only if it holds UTC days as the product defines them (date32).
    usable = [n for n in schema.names if n != DATE_COLUMN or schema.field(n).type == pa.date32()]
    scope = scope_read_sql(request.scope, usable)
    if scope is not None:
        terms.append(f"({scope})")
    if request.time_range is not None:
        terms.append(time_range_sql(*request.time_range))
    terms.extend(f"({term})" for term in filters_sql(request.filters))
    return " AND ".join(terms) or None


def read(delta_table: DeltaTable, request: ReadRequest, table: str) -> pa.Table:
    """Rows of ``request`` from the loaded version of ``delta_table`` (any protocol delta-rs
    reads), with the table's own column types; row order is not guaranteed."""
    schema = table_schema(delta_table)
    needed = list(LISTING_COLUMNS) if request.scope is not None and not request.scope.whole_table else []
    require_columns(schema, needed + [c for c, _, _ in request.filters], table)
    if request.columns is not None:
        require_columns(schema, request.columns, table)
    # The filters mean what they mean on the fast path: check them against the column types
    # with pyarrow first, so a bad filter is the caller's SchemaMismatchError, not an engine error.
    row_filter = request.row_filter
    if row_filter is not None:
        try:
            schema.empty_table().filter(row_filter)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise SchemaMismatchError(f"Cannot apply the filters to table {table!r}: {exc}") from None
    predicate = read_request_predicate(request, schema)
    result = pa.table(delta_table.scan(columns=request.columns, predicate=predicate).read_all())
    return _as_table_types(result, schema)


def _as_table_types(result: pa.Table, schema: pa.Schema) -> pa.Table:
    """DataFusion returns strings as ``string_view``; give back the table's declared types."""
    target = pa.schema([schema.field(name) if name in schema.names else result.schema.field(name)
                        for name in result.column_names])
    if result.schema.equals(target, check_metadata=False):
        return result
    columns = [col.cast(field.type) for col, field in zip(result.columns, target)]
    return pa.Table.from_arrays(columns, schema=target.remove_metadata())


def _query(delta_table: DeltaTable, sql: str) -> pa.Table:
    from deltalake import QueryBuilder

    return pa.table(QueryBuilder().register("market_data", delta_table).execute(sql).read_all())


def instruments(delta_table: DeltaTable, table: str) -> list[tuple[str, str]]:
    """Distinct ``(exchange, coin)`` pairs with rows (deleted rows do not count)."""
    require_columns(table_schema(delta_table), LISTING_COLUMNS, table)
    exchange, coin = quote_identifier("exchange"), quote_identifier("coin")
    rows = _query(delta_table, f"SELECT DISTINCT {exchange}, {coin} FROM market_data")
    pairs = zip(rows.column(0).to_pylist(), rows.column(1).to_pylist())
    return sorted((str(e), str(c)) for e, c in pairs if e is not None and c is not None)


def list_dates(delta_table: DeltaTable, table: str, exchange: str, coin: str) -> list[dt.date]:
    """UTC days with rows of one instrument: the ``date`` column if the table has one, else
    the day of ``timestamp``."""
    schema = table_schema(delta_table)
    require_columns(schema, LISTING_COLUMNS, table)
    if DATE_COLUMN in schema.names and schema.field(DATE_COLUMN).type == pa.date32():
        day = quote_identifier(DATE_COLUMN)
    else:
        day = f"CAST({quote_identifier('timestamp')} AS DATE)"
    rows = _query(
        delta_table,
        f"SELECT DISTINCT {day} AS day FROM market_data WHERE "
        f"{quote_identifier('exchange')} = {sql_literal(exchange)} AND "
        f"{quote_identifier('coin')} = {sql_literal(coin)}",
    )
    return sorted(d for d in rows.column(0).to_pylist() if d is not None)


__all__ = ["LISTING_COLUMNS", "instruments", "list_dates", "read", "read_request_predicate"]
