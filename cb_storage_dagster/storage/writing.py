"""The write path: one commit of normalized rows into exactly a scope (:func:`write_table`),
and of :class:`~cb_storage_dagster.domain.chunks.MarketDataChunks` streamed chunk by chunk
(:func:`write_chunked`). The manager (:class:`~cb_storage_dagster.storage.manager.StorageManagerImpl`)
normalizes and calls these."""

from __future__ import annotations

import pyarrow as pa

from cb_storage_dagster.domain.chunks import MarketDataChunks
from cb_storage_dagster.domain.keys import DataType
from cb_storage_dagster.domain.results import WriteResult
from cb_storage_dagster.domain.schemas import check_natural_keys, normalize
from cb_storage_dagster.domain.scope import WriteScope, check_rows_in_scope
from cb_storage_dagster.storage.arguments import WriteMode, parse_write_mode
from cb_storage_dagster.storage.catalog import TableFormats
from cb_storage_dagster.storage.chunked import checked_chunks
from cb_storage_dagster.storage.delta.table_format import DeltaFormat
from cb_storage_dagster.storage.layout import Layout, parse_layout
from cb_storage_dagster.storage.reading import empty_result

__all__ = ["write_chunked", "write_table"]


def write_table(
    tables: TableFormats,
    name: str,
    data_type: DataType,
    normalized: pa.Table,
    scope: WriteScope,
    format_hint: str | None,
    mode: WriteMode | None = "replace",
    layout: Layout | None = None,
) -> WriteResult:
    """Replace (or with ``mode="merge"`` upsert) exactly ``scope`` of table ``name`` with
    ``normalized`` rows, in one commit; rows outside ``scope`` are refused before it."""
    write_mode = parse_write_mode(mode)
    layout = parse_layout(layout)
    store = tables.for_write(name, format_hint)
    merge = write_mode == "merge"
    key_columns = check_natural_keys(normalized, data_type) if merge else ()
    if scope.is_empty or (merge and normalized.num_rows == 0):
        if merge and not isinstance(store, DeltaFormat):
            store.merge(name, data_type, normalized, scope, key_columns)  # refuses
        # Nothing to replace, or nothing to upsert: no commit.
        version = tables.delta.open(name).version() if merge and tables.stored_format(name) == "delta" else None
        return WriteResult(
            uri=tables.backend.get_uri_for_identifier(name), format=store.name, table=name,
            version=version, row_count=0, schema=normalized.schema, mode=write_mode,
            rows_inserted=0 if merge else None, rows_updated=0 if merge else None,
        )
    check_rows_in_scope(normalized, scope)
    if merge:
        result = store.merge(name, data_type, normalized, scope, key_columns)
    elif isinstance(store, DeltaFormat):
        result = store.write(name, data_type, normalized, scope, layout=layout)
    else:
        result = store.write(name, data_type, normalized, scope)
    tables.remember(name, store.name)
    return result


def write_chunked(
    tables: TableFormats,
    name: str,
    data_type: DataType,
    chunks: MarketDataChunks,
    scope: WriteScope,
    format_hint: str | None,
    mode: WriteMode | None = "replace",
    layout: Layout | None = None,
) -> WriteResult:
    """Write ``chunks`` into ``scope`` minus their failed instrument-days (whose stored rows
    stay). A Delta replace streams the chunks, each checked, into one commit (memory holds one
    chunk); a merge, or a Parquet/JSON table, gathers them into one table first."""
    scope = scope.excluding(chunks.excluded)
    stream = checked_chunks(chunks, data_type, scope)
    store = tables.for_write(name, format_hint)
    if parse_write_mode(mode) == "replace" and isinstance(store, DeltaFormat) and not scope.is_empty:
        result = store.write_stream(name, data_type, stream, scope, layout=parse_layout(layout))
        tables.remember(name, store.name)
        return result
    gathered = MarketDataChunks(stream).to_table()
    if gathered.num_columns == 0:
        gathered = empty_result(data_type, None)
    exchange, coin = scope.sole_instrument or (None, None)
    normalized = normalize(gathered, data_type, exchange=exchange, coin=coin)
    return write_table(tables, name, data_type, normalized, scope, format_hint, mode, layout)
