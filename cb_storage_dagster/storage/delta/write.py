"""Delta writes: replace a scope, merge (upsert) into it, delete by predicate; one commit each.

Every write holds the table's write lock, starts from the writer's own table at the latest
version, and commits under the conflict-retry policy (:meth:`.tables.DeltaTables.commit`),
so threads of one process commit one after another and a lost conflict is redone from a
fresh snapshot. Each commit records the scope it wrote in its commit metadata.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Generator, Iterator

import pyarrow as pa

from cb_storage_dagster.domain.keys import DataType
from cb_storage_dagster.domain.results import WriteResult
from cb_storage_dagster.domain.schemas import DATE_COLUMN, MONTH_COLUMN, storage_schema
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.retry import Attempt
from cb_storage_dagster.storage.delta.sorting import sort_rows
from cb_storage_dagster.storage.delta.tables import DeltaTables
from cb_storage_dagster.storage.format import rows_per_partition
from cb_storage_dagster.storage.layout import EXCHANGE_LAYOUT_ROW_GROUP_ROWS, Layout, layout_of, parse_layout
from cb_storage_dagster.storage.sql import MERGE_SOURCE, MERGE_TARGET, delta_predicate, merge_predicates

FORMAT = "delta"
"""The format name results carry."""
_SORT_KEYS = ["exchange", "coin", "timestamp"]
_SCOPE_METADATA_CHARS = 4000
"""The scope recorded in commit metadata is cut to this length (a log entry, not a list)."""


def write(
    tables: DeltaTables, table: str, data_type: DataType, data: pa.Table, scope: WriteScope, layout: Layout | None
) -> WriteResult:
    """Replace exactly ``scope`` with ``data`` in one commit; a new table is created in
    ``layout`` (``None``: the tables' default layout)."""
    from deltalake import CommitProperties, WriterProperties, write_deltalake

    # Sources usually deliver rows in this order already: sort_rows checks first, which is
    # far cheaper than a three-key sort of an exchange-day (2.9 M rows at 2,000 instruments).
    data = sort_rows(data, _SORT_KEYS, single_instrument=False)
    predicate = delta_predicate(scope)
    scope_text = _scope_text(scope)

    def commit_write(attempt: Attempt) -> int | None:
        delta_table = tables.open_for_write(table)
        attempt.started_from(delta_table.version())
        columns = list(delta_table.metadata().partition_columns)
        extra: dict[str, object] = {}
        if layout_of(columns) == "exchange":
            # Small row groups: their coin statistics let a one-instrument read skip the rest.
            extra["writer_properties"] = WriterProperties(max_row_group_size=EXCHANGE_LAYOUT_ROW_GROUP_ROWS)
        write_deltalake(
            delta_table,
            data,
            mode="overwrite",
            predicate=predicate,
            schema_mode="merge",
            partition_by=columns,
            commit_properties=CommitProperties(
                max_commit_retries=attempt.rebase_retries, custom_metadata={"cb_storage.scope": scope_text}
            ),
            **extra,
        )
        return delta_table.version()

    with tables.write_lock(table):
        tables.ensure_table(table, data_type, data.schema, parse_layout(layout))
        report = tables.commit(commit_write, table, "write")
    return WriteResult.of_batch(data, uri=tables.uri(table), format=FORMAT, table=table, version=report.version,
                                rows_per_partition=rows_per_partition(data, scope))


def write_stream(
    tables: DeltaTables,
    table: str,
    data_type: DataType,
    chunks: Callable[[], Iterator[pa.Table]],
    scope: WriteScope,
    layout: Layout | None,
) -> WriteResult:
    """Replace exactly ``scope`` with the rows of ``chunks`` in ONE commit, streaming them.

    ``chunks`` returns a fresh iterator of normalized tables each time it is called (a lost
    conflict is redone from a fresh snapshot and reads them again); their checks run as they
    are read, so an error raised by a chunk in the middle aborts the write before the commit:
    the files delta-rs wrote until then are never part of a version (``vacuum`` removes
    them), and the error is raised as it was. Memory holds one chunk and delta-rs' write
    buffers, not the run.
    """
    from deltalake import CommitProperties, WriterProperties, write_deltalake

    first_pass = chunks()
    first = next(first_pass, None)
    schema = first.schema if first is not None else None
    pending: list[Iterator[pa.Table]] = [first_pass if first is None else itertools.chain([first], first_pass)]
    predicate = delta_predicate(scope)
    scope_text = _scope_text(scope)
    counts: dict[str, int] = {}
    raised: list[BaseException] = []

    def batches(source: Iterator[pa.Table], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        counts.clear()
        try:
            for chunk in source:
                chunk = sort_rows(chunk, _SORT_KEYS, single_instrument=False)
                if chunk.schema != schema:
                    chunk = chunk.select(schema.names).cast(schema)
                for key, rows in rows_per_partition(chunk, scope).items():
                    counts[key] = counts.get(key, 0) + rows
                yield from chunk.to_batches()
        except BaseException as exc:  # noqa: BLE001 - re-raised as it was after delta-rs gives up
            raised.append(exc)
            raise

    def commit_write(attempt: Attempt) -> int | None:
        delta_table = tables.open_for_write(table)
        attempt.started_from(delta_table.version())
        write_schema = schema if schema is not None else delta_table.schema().to_arrow()
        write_schema = pa.schema(write_schema)
        source = _produced_in_thread(pending.pop() if pending else chunks())
        columns = list(delta_table.metadata().partition_columns)
        # Small row groups in both layouts: a streamed run arrives day block by day block, so
        # each row group holds one day of a few coins (a later block read skips the others by
        # statistics), and delta-rs buffers a row group, not a whole partition's run, in memory.
        extra: dict[str, object] = {
            "writer_properties": WriterProperties(max_row_group_size=EXCHANGE_LAYOUT_ROW_GROUP_ROWS)}
        raised.clear()
        try:
            write_deltalake(
                delta_table,
                pa.RecordBatchReader.from_batches(write_schema, batches(source, write_schema)),
                mode="overwrite",
                predicate=predicate,
                schema_mode="merge",
                partition_by=columns,
                commit_properties=CommitProperties(
                    max_commit_retries=attempt.rebase_retries, custom_metadata={"cb_storage.scope": scope_text}
                ),
                **extra,
            )
        except Exception:
            if raised:  # a chunk's own error (bad rows): nothing was committed
                raise raised[0] from None
            raise
        finally:
            source.close()
        return delta_table.version()

    with tables.write_lock(table):
        tables.ensure_table(table, data_type, schema if schema is not None else storage_schema(data_type),
                            parse_layout(layout))
        report = tables.commit(commit_write, table, "write")
    for slot in scope.slots:
        counts.setdefault(str(slot), 0)
    return WriteResult(
        uri=tables.uri(table), format=FORMAT, table=table, version=report.version,
        row_count=sum(counts.values()), rows_per_partition=dict(sorted(counts.items())),
        schema=schema if schema is not None else storage_schema(data_type),
    )


_QUEUE_DONE = object()


def _produced_in_thread(source: Iterator[pa.Table], depth: int = 1) -> Generator[pa.Table, None, None]:
    """``source``'s items, produced by a thread of their own, at most ``depth`` ahead.

    delta-rs pulls the batches of a streamed write on its own runtime's threads, where a
    chunk that reads a Delta table (a downstream asset transforming its input while it is
    written) would start a second runtime and panic ("Cannot start a runtime from within a
    runtime"). In a plain thread it does not; the bounded queue keeps memory at a few chunks,
    and the producer also normalizes the next chunk while delta-rs encodes this one.
    """
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in source:
                if not put(chunk):
                    return
            put(_QUEUE_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=produce, name="cb-storage-chunks", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _QUEUE_DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


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

    data = sort_rows(data, _SORT_KEYS, single_instrument=False)
    values = [c for c in data.column_names if c not in key_columns and c not in (DATE_COLUMN, MONTH_COLUMN)]
    match, changed = merge_predicates(key_columns, values, scope)
    scope_text = _scope_text(scope)
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


def _scope_text(scope: WriteScope) -> str:
    return ",".join(scope.describe())[:_SCOPE_METADATA_CHARS]


__all__ = ["FORMAT", "delete", "merge", "write", "write_stream"]
