"""A Delta replace streamed chunk by chunk into ONE commit (:func:`write_stream`): memory holds
a few chunks and delta-rs' write buffers, not the run (the producer waits for delta-rs'
encoder, :mod:`.backpressure`); a chunk that fails its checks aborts the write before the
commit."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Generator, Iterator

import pyarrow as pa

from cb_storage_dagster.domain.keys import DataType
from cb_storage_dagster.domain.results import WriteResult
from cb_storage_dagster.domain.schemas import storage_schema
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.retry import Attempt
from cb_storage_dagster.storage.delta.backpressure import WriterBackpressure
from cb_storage_dagster.storage.delta.coin_registry import instrument_days
from cb_storage_dagster.storage.delta.listing_upkeep import keep_listings_current
from cb_storage_dagster.storage.delta.sorting import sort_rows
from cb_storage_dagster.storage.delta.tables import DeltaTables
from cb_storage_dagster.storage.delta.write import (
    FORMAT,
    SORT_KEYS,
    describe_scope,
    in_one_chunk,
    replace_rows,
)
from cb_storage_dagster.storage.format import rows_per_partition
from cb_storage_dagster.storage.layout import Layout, parse_layout
from cb_storage_dagster.storage.sql import delta_predicate

__all__ = ["write_stream"]


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

    first_pass = chunks()
    first = next(first_pass, None)
    schema = first.schema if first is not None else None
    pending: list[Iterator[pa.Table]] = [first_pass if first is None else itertools.chain([first], first_pass)]
    predicate = delta_predicate(scope)
    scope_text = describe_scope(scope)
    counts: dict[str, int] = {}
    days: list[pa.Table] = []
    raised: list[BaseException] = []

    def batches(source: Iterator[pa.Table], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        counts.clear()
        days.clear()
        pacer = WriterBackpressure()  # delta-rs queues what it pulls: wait for its encoder
        try:
            for chunk in source:
                pacer.before_chunk()
                chunk = sort_rows(chunk, SORT_KEYS, single_instrument=False)
                if chunk.schema != schema:
                    chunk = chunk.select(schema.names).cast(schema)
                days.append(instrument_days(chunk))
                for key, rows in rows_per_partition(chunk, scope).items():
                    counts[key] = counts.get(key, 0) + rows
                yield from in_one_chunk(chunk).to_batches()  # one batch: delta-rs keeps a batch's order
        except BaseException as exc:  # noqa: BLE001 - re-raised as it was after delta-rs gives up
            raised.append(exc)
            raise

    def commit_write(attempt: Attempt) -> int | None:
        delta_table = tables.open_for_write(table)
        attempt.started_from(delta_table.version())
        write_schema = schema if schema is not None else delta_table.schema().to_arrow()
        write_schema = pa.schema(write_schema)
        source = _produced_in_thread(pending.pop() if pending else chunks())
        # Small row groups in both layouts: a streamed run arrives day block by day block, so
        # each row group holds one day of a few coins (a later block read skips the others by
        # statistics), and delta-rs buffers a row group, not a whole partition's run, in memory.
        raised.clear()
        try:
            reader = pa.RecordBatchReader.from_batches(write_schema, batches(source, write_schema))
            replace_rows(delta_table, reader, predicate, attempt, scope_text, small_row_groups=True)
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
        report = tables.commit(commit_write, table, "write", instrument_days=lambda: sum(d.num_rows for d in days))
        if report.version is not None and days:
            keep_listings_current(tables, table, report.version, pa.concat_tables(days))
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
