"""Delta reads: the fast path for tables it implements, DataFusion for every other table.

:func:`read` opens the requested version and asks the allow-list
(:func:`.fast_path.fast_path_refusal`). Tables it accepts are pruned from the log and read
directly as Parquet (:class:`.scan.DeltaScanPlanner`); every other table is read by delta-rs'
DataFusion engine (:mod:`.read_sql`) with the same scope, filters, projection and version.
Errors leave as the project's own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.dataset as ds

from cb_storage_dagster.domain.errors import NotFoundError, SchemaMismatchError, StorageError
from cb_storage_dagster.domain.schemas import storage_schema
from cb_storage_dagster.storage.delta import read_sql
from cb_storage_dagster.storage.delta.fast_path import fast_path_refusal
from cb_storage_dagster.storage.delta.pruning import scope_range_expression, wholly_selected
from cb_storage_dagster.storage.delta.row_window import RowWindow
from cb_storage_dagster.storage.delta.scan import DeltaScanPlanner, Snapshot
from cb_storage_dagster.storage.delta.tables import DeltaTables
from cb_storage_dagster.storage.format import ReadRequest

if TYPE_CHECKING:
    from deltalake import DeltaTable

logger = logging.getLogger(__name__)


def read(tables: DeltaTables, scans: DeltaScanPlanner, table: str, request: ReadRequest) -> pa.Table:
    """Rows of ``request`` from ``table``; an absent table reads as no rows (unless a version
    was asked for, which is then :class:`NotFoundError`).

    The latest version is read from the table's file index (:mod:`.file_index`) when the
    process has not opened the table through delta-rs already and the index answers."""
    latest = request.as_of_version is None and request.as_of_timestamp is None
    if latest and tables.uri(table) not in tables.readers:
        indexed = tables.file_indexes.current(table, listed_since=request.started_at)
        if indexed is not None:
            return _translated(tables, table, lambda: _read_snapshot(tables, scans, table, indexed.snapshot, request))
    try:
        delta_table = tables.open_version(table, request.as_of_version, request.as_of_timestamp)
    except NotFoundError:
        if request.as_of_version is not None or request.as_of_timestamp is not None:
            raise
        return storage_schema(request.data_type).empty_table()

    def read_opened() -> pa.Table:
        refusal = fast_path_refusal(delta_table)
        if refusal is None:
            return _read_direct(tables, scans, table, delta_table, request)
        logger.debug("Reading Delta table %r with DataFusion: %s", table, refusal)
        return read_sql.read(delta_table, request, table)

    return _translated(tables, table, read_opened)


def _translated(tables: DeltaTables, table: str, read_rows: Callable[[], pa.Table]) -> pa.Table:
    """``read_rows()`` with its errors as the project's: filters pyarrow cannot apply are a
    :class:`SchemaMismatchError`, delta-rs and store errors go through ``tables.translate``."""
    try:
        return read_rows()
    except StorageError:
        raise
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise SchemaMismatchError(f"Cannot apply the filters to table {table!r}: {exc}") from None
    except Exception as exc:
        raise tables.translate(exc, table, "read") from None


def _read_direct(
    tables: DeltaTables, scans: DeltaScanPlanner, table: str, delta_table: DeltaTable, request: ReadRequest
) -> pa.Table:
    return _read_snapshot(tables, scans, table, scans.snapshot(delta_table), request)


def _read_snapshot(
    tables: DeltaTables, scans: DeltaScanPlanner, table: str, snapshot: Snapshot, request: ReadRequest
) -> pa.Table:
    _check_columns(request.columns, snapshot.schema.names, table)
    plan = scans.plan(snapshot, request.scope)
    def row_filter_of_request() -> ds.Expression | None:
        return _combine(plan.derived("scope filter", lambda: scope_range_expression(request.scope)),
                        request.row_filter)

    # Without filters the row filter is the scope's and the time range's: kept with the plan.
    row_filter = row_filter_of_request() if request.filters else plan.derived(
        ("row filter", request.time_range), row_filter_of_request)
    # Files every row of which the request selects are read without evaluating the row filter.
    whole = None if request.filters else plan.derived(
        ("whole", request.time_range), lambda: wholly_selected(plan.actions, request.scope, request.time_range))
    return scans.read(
        snapshot, plan, whole=whole, latest=request.as_of_version is None and request.as_of_timestamp is None,
        row_filter=row_filter, columns=request.columns, window=RowWindow.of(request.scope, request.time_range).within_filters(request.filters),
        own_filter=request.filters_expression,
        storage_options=tables.backend.get_storage_options(),
    )


def _check_columns(columns: list[str] | None, available: list[str], table: str) -> None:
    if columns is not None:
        missing = [c for c in columns if c not in available]
        if missing:
            raise SchemaMismatchError(f"Unknown columns {missing}; table {table!r} has {available}.")


def _combine(a: ds.Expression | None, b: ds.Expression | None) -> ds.Expression | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


__all__ = ["read"]
