"""Delta writes: replace a scope, merge (upsert) into it, delete by predicate; one commit each
(a replace streamed chunk by chunk is :mod:`.stream_write`).

Every write holds the table's write lock, starts from the writer's own table at the latest
version, and commits under the conflict-retry policy (:meth:`.tables.DeltaTables.commit`),
so threads of one process commit one after another and a lost conflict is redone from a
fresh snapshot. Each commit records the scope it wrote in its commit metadata.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from cb_storage_dagster.domain.keys import DataType
from cb_storage_dagster.domain.results import WriteResult
from cb_storage_dagster.domain.schemas import DATE_COLUMN, MONTH_COLUMN
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.retry import Attempt
from cb_storage_dagster.storage.delta.coin_registry import instrument_days
from cb_storage_dagster.storage.delta.listing_upkeep import keep_listings_current
from cb_storage_dagster.storage.delta.sorting import sort_rows
from cb_storage_dagster.storage.delta.tables import DeltaTables
from cb_storage_dagster.storage.delta.writer_settings import writer_properties
from cb_storage_dagster.storage.format import rows_per_partition
from cb_storage_dagster.storage.layout import EXCHANGE_LAYOUT_ROW_GROUP_ROWS, Layout, layout_of, parse_layout
from cb_storage_dagster.storage.sql import MERGE_SOURCE, MERGE_TARGET, delta_predicate, merge_predicates

if TYPE_CHECKING:
    from deltalake import DeltaTable

FORMAT = "delta"
"""The format name results carry."""
SORT_KEYS = ["exchange", "coin", "timestamp"]
_SCOPE_METADATA_CHARS = 4000
"""The scope recorded in commit metadata is cut to this length (a log entry, not a list)."""


def write(
    tables: DeltaTables, table: str, data_type: DataType, data: pa.Table, scope: WriteScope, layout: Layout | None
) -> WriteResult:
    """Replace exactly ``scope`` with ``data`` in one commit; a new table is created in
    ``layout`` (``None``: the tables' default layout)."""

    # Sources usually deliver rows in this order already: sort_rows checks first, which is
    # far cheaper than a three-key sort of an exchange-day (2.9 M rows at 2,000 instruments).
    data = in_one_chunk(sort_rows(data, SORT_KEYS, single_instrument=False))
    predicate = delta_predicate(scope)
    scope_text = describe_scope(scope)

    def commit_write(attempt: Attempt) -> int | None:
        delta_table = tables.open_for_write(table)
        attempt.started_from(delta_table.version())
        # Small row groups in the exchange layout: their coin statistics let a one-instrument
        # read skip the rest.
        small_groups = layout_of(delta_table.metadata().partition_columns) == "exchange"
        replace_rows(delta_table, data, predicate, attempt, scope_text, small_row_groups=small_groups)
        return delta_table.version()

    with tables.write_lock(table):
        tables.ensure_table(table, data_type, data.schema, parse_layout(layout))
        days = instrument_days(data)
        report = tables.commit(commit_write, table, "write", instrument_days=lambda: days.num_rows)
        if report.version is not None:
            keep_listings_current(tables, table, report.version, days)
    return WriteResult.of_batch(data, uri=tables.uri(table), format=FORMAT, table=table, version=report.version,
                                rows_per_partition=rows_per_partition(data, scope))


def merge(
    tables: DeltaTables, table: str, data_type: DataType, data: pa.Table, scope: WriteScope, key_columns: tuple[str, ...]
) -> WriteResult:
    """Upsert ``data`` (normalized, in ``scope``, unique on ``key_columns``) in one commit.

    Rows whose key is stored are updated when a value differs; new keys are inserted;
    nothing is deleted. The target side is restricted to ``scope`` so delta-rs prunes to
    its files. A merge that changes no row commits nothing (the version stays). Lost
    conflicts are redone from a fresh snapshot like every other write.
    """
    from deltalake import CommitProperties

    data = sort_rows(data, SORT_KEYS, single_instrument=False)
    values = [c for c in data.column_names if c not in key_columns and c not in (DATE_COLUMN, MONTH_COLUMN)]
    match, changed = merge_predicates(key_columns, values, scope)
    scope_text = describe_scope(scope)
    metrics: dict[str, int] = {}

    def commit_merge(attempt: Attempt) -> int | None:
        delta_table = tables.open_for_write(table)
        attempt.started_from(delta_table.version())
        merger = delta_table.merge(
            data,
            match,
            source_alias=MERGE_SOURCE,
            target_alias=MERGE_TARGET,
            merge_schema=True,
            writer_properties=writer_properties(data.schema),
            commit_properties=CommitProperties(
                max_commit_retries=attempt.rebase_retries,
                custom_metadata={"cb_storage.scope": scope_text, "cb_storage.mode": "merge"},
            ),
        )
        outcome = merger.when_matched_update_all(predicate=changed).when_not_matched_insert_all().execute()
        metrics.update(outcome)
        return delta_table.version()

    with tables.write_lock(table):
        tables.ensure_table(table, data_type, data.schema)
        report = tables.commit(commit_merge, table, "merge")
    return WriteResult.of_batch(
        data, uri=tables.uri(table), format=FORMAT, table=table, version=report.version,
        rows_per_partition=rows_per_partition(data, scope), mode="merge",
        rows_inserted=int(metrics.get("num_target_rows_inserted", 0)),
        rows_updated=int(metrics.get("num_target_rows_updated", 0)),
    )


def delete(tables: DeltaTables, table: str, predicate: str) -> WriteResult:
    """Delete the rows matching ``predicate`` (built by :mod:`~cb_storage_dagster.storage.sql`)."""
    from deltalake import CommitProperties

    def commit_delete(attempt: Attempt) -> int | None:
        delta_table = tables.open_for_write(table)
        attempt.started_from(delta_table.version())
        delta_table.delete(predicate, commit_properties=CommitProperties(max_commit_retries=attempt.rebase_retries))
        return delta_table.version()

    with tables.write_lock(table):
        report = tables.commit(commit_delete, table, "delete")
    return WriteResult(uri=tables.uri(table), format=FORMAT, table=table, version=report.version, row_count=0)


def replace_rows(
    delta_table: DeltaTable, data: object, predicate: str | None, attempt: Attempt, scope_text: str,
    *, small_row_groups: bool,
) -> None:
    """One delta-rs overwrite of the rows ``predicate`` selects with ``data`` (a table or a
    ``RecordBatchReader``), partitioned as the table is, its scope in the commit metadata."""
    from deltalake import CommitProperties, write_deltalake

    if small_row_groups:  # exchange-day files and streamed runs: decoded for every read of one instrument
        properties = writer_properties(data.schema,  # type: ignore[attr-defined]
                                       max_row_group_size=EXCHANGE_LAYOUT_ROW_GROUP_ROWS)
    else:
        properties = writer_properties(data.schema)  # type: ignore[attr-defined]
    write_deltalake(
        delta_table,
        data,
        mode="overwrite",
        predicate=predicate,
        schema_mode="merge",
        partition_by=list(delta_table.metadata().partition_columns),
        commit_properties=CommitProperties(
            max_commit_retries=attempt.rebase_retries, custom_metadata={"cb_storage.scope": scope_text}
        ),
        writer_properties=properties,
    )


def in_one_chunk(data: pa.Table) -> pa.Table:
    """``data`` as one chunk per column. delta-rs writes the batches of a table in parallel,
    so a table of several chunks (one per instrument, as sources deliver them) would be
    stored in another order than sorted: exchange-day files with coins out of order, whose
    row groups a read of one instrument could no longer find by bisection."""
    return data if data.num_columns == 0 or data.column(0).num_chunks <= 1 else data.combine_chunks()


def describe_scope(scope: WriteScope) -> str:
    return ",".join(scope.describe())[:_SCOPE_METADATA_CHARS]


__all__ = ["FORMAT", "SORT_KEYS", "delete", "describe_scope", "in_one_chunk", "merge", "replace_rows", "write"]
