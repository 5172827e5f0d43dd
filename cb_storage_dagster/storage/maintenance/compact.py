"""Compaction: merge the small files of the partitions written since the last maintenance.

Two algorithms of sorted rewrites, chosen by the table's layout (``storage/layout.py``):

* ``instrument`` layout (``exchange / coin / month``): the instrument-months are rewritten
  **sorted by time**, one overwrite commit per group of instruments of an exchange-month
  (:mod:`.instrument_rewrite`; delta-rs' z-order did the same sort 10x slower).
* ``exchange`` layout (``exchange / month``, coin a data column): each exchange-month whose
  files' coin ranges overlap is rewritten in one overwrite commit, streamed in groups of coins
  **sorted by coin, timestamp**, so every file holds a tight coin range (:mod:`.exchange_rewrite`).

A table of neither layout (another tool's partitioning) is compacted by delta-rs' optimize: a
z-order on ``timestamp``, or bin-packing without ``sort_by_time``, as is the instrument layout
without it or with a feature the product's reader does not implement (deletion vectors, column
mapping: :func:`.fast_path.fast_path_refusal`), whose files must not be read directly. Every commit is marked as maintenance and retried on a fresh snapshot when a
concurrent writer conflicts: delta-rs refuses the commit when a writer removed a file the
compaction read, so no write is ever lost or resurrected.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from cb_storage_dagster.domain.errors import ConfigurationError
from cb_storage_dagster.storage.delta.fast_path import fast_path_refusal
from cb_storage_dagster.storage.delta.writer_settings import writer_properties
from cb_storage_dagster.storage.layout import layout_of, sort_columns
from cb_storage_dagster.storage.maintenance.actions import (
    add_actions,
    multi_file_partitions,
    open_table,
    partition_key,
    partitions_of,
    table_file_stats,
)
from cb_storage_dagster.storage.maintenance.discovery import (
    MAINTENANCE_MARKER,
    MAINTENANCE_STARTED,
    partitions_written_since_last_maintenance,
)
from cb_storage_dagster.storage.maintenance.exchange_rewrite import compact_exchange_months
from cb_storage_dagster.storage.maintenance.guards import (
    DEFAULT_ATTEMPTS,
    DEFAULT_BACKOFF_SECONDS,
    storage_errors,
    with_conflict_retries,
)
from cb_storage_dagster.storage.maintenance.instrument_rewrite import compact_instrument_months
from cb_storage_dagster.storage.maintenance.results import CompactionResult, FileStats, Partition
from cb_storage_dagster.storage.sql import partition_filters

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from cb_storage_dagster.storage.interfaces import IStorageBackend

DEFAULT_TARGET_FILE_SIZE = 128 * 1024 * 1024
"""Bytes per compacted file: a month of 1-minute candles (~2.5 MB) is one file."""
COMPACTED_ROW_GROUP_ROWS = 4 * 1024
"""Rows per row group of a rewritten month, both layouts (~3 days of one coin's candles, not a
month or 16 Ki rows). Measured 500 x 20, exchange layout, 16 Ki -> 4 Ki: one instrument x 1
day 5.0 -> 3.6 ms, every instrument x 1 day 448 -> 377 ms; new process 21 -> 27 ms (footer 4x)."""


@storage_errors("compaction")
def compact_table(
    backend: IStorageBackend,
    table: str,
    *,
    partitions: Iterable[Mapping[str, str]] | None = None,
    target_size: int = DEFAULT_TARGET_FILE_SIZE,
    sort_by_time: bool = True,
    attempts: int = DEFAULT_ATTEMPTS,
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
) -> CompactionResult:
    """Merge the small files of ``partitions`` (default: those written since the last
    maintenance) into files of about ``target_size`` bytes.

    Only partitions with more than one file are rewritten. With ``sort_by_time`` the rows
    of each rewritten partition come out sorted by ``timestamp`` (see the module), so reads
    need no sort and row-group statistics prune; without it delta-rs' bin-packing ``compact``
    is used (a month's days end up in log order). The exchange layout is always sorted.
    Safe while writers run: a conflicting commit is retried on a fresh snapshot.
    """
    from deltalake import CommitProperties

    if target_size <= 0:
        raise ConfigurationError("target_size must be a positive number of bytes.")
    started = time.perf_counter()
    started_ms = int(time.time() * 1000)
    delta_table = open_table(backend, table)
    before = table_file_stats(delta_table)
    version_before = delta_table.version()
    columns = list(delta_table.metadata().partition_columns)
    if partitions is None:
        wanted = partitions_written_since_last_maintenance(delta_table)
    else:
        wanted = [dict(p) for p in partitions]
    multi = multi_file_partitions(add_actions(delta_table), columns)
    todo = [p for p in wanted if partition_key(p) in multi or not columns]
    writer = writer_properties(pa.schema(delta_table.schema().to_arrow()), max_row_group_size=COMPACTED_ROW_GROUP_ROWS)
    metadata = {MAINTENANCE_MARKER: "compaction", MAINTENANCE_STARTED: str(started_ms)}
    added = removed = attempts_used = 0

    def run(partition: Mapping[str, str] | None) -> dict[str, Any]:
        def attempt(n: int) -> dict[str, Any]:
            if n > 1:
                delta_table.update_incremental()
            commit = CommitProperties(custom_metadata=metadata)
            filters = partition_filters(partition) if partition else None
            if sort_by_time and "timestamp" in pa.schema(delta_table.schema().to_arrow()).names:
                return delta_table.optimize.z_order(
                    ["timestamp"], partition_filters=filters, target_size=target_size,
                    writer_properties=writer, commit_properties=commit,
                )
            return delta_table.optimize.compact(
                partition_filters=filters, target_size=target_size,
                writer_properties=writer, commit_properties=commit,
            )

        metrics, used = with_conflict_retries(
            backend, table, attempt, "compaction", attempts=attempts, backoff_seconds=backoff_seconds
        )
        nonlocal attempts_used
        attempts_used = max(attempts_used, used)
        return metrics

    if layout_of(columns) == "exchange":
        todo, added, removed, attempts_used = compact_exchange_months(
            backend, table, delta_table, wanted, target_size=target_size, writer=writer, metadata=metadata,
            attempts=attempts, backoff_seconds=backoff_seconds)
        return _result(table, delta_table, todo, before, version_before, started, (added, removed), attempts_used,
                       sort_columns("exchange"))
    if layout_of(columns) == "instrument" and sort_by_time and fast_path_refusal(delta_table) is None:
        added, removed, attempts_used = compact_instrument_months(
            backend, table, delta_table, todo, target_size=target_size, writer=writer, metadata=metadata,
            attempts=attempts, backoff_seconds=backoff_seconds)
        return _result(table, delta_table, todo, before, version_before, started, (added, removed), attempts_used,
                       ("timestamp",))
    if not columns:
        todo = [{}] if before.files > 1 else []
    for filters in _batches(todo, partitions_of(add_actions(delta_table), columns)):
        metrics = run(filters or None)
        added += int(metrics.get("numFilesAdded", 0))
        removed += int(metrics.get("numFilesRemoved", 0))
    return _result(
        table, delta_table, todo, before, version_before, started, (added, removed), attempts_used,
        ("timestamp",) if sort_by_time else (),
    )


def _result(
    table: str, delta_table: DeltaTable, todo: list[Partition], before: FileStats, version_before: int,
    started: float, added_removed: tuple[int, int], attempts: int, sorted_by: Sequence[str],
) -> CompactionResult:
    """The result of a compaction that has committed: the table's files now, against ``before``."""
    delta_table.update_incremental()
    return CompactionResult(
        table=table, partitions=todo, before=before, after=table_file_stats(delta_table),
        files_added=added_removed[0], files_removed=added_removed[1], version_before=version_before,
        version_after=delta_table.version(), attempts=attempts,
        seconds=time.perf_counter() - started, sorted_by_time=bool(sorted_by), sorted_by=tuple(sorted_by),
    )


def _batches(todo: list[Partition], existing: list[Partition]) -> list[Partition]:
    """Group the partitions to rewrite into as few optimize commits as possible: when every
    partition of a month is to be rewritten (the weekly case: all instruments wrote), one
    commit for the month; otherwise one per partition. Each entry is a filter mapping.

    >>> jan = [{"coin": c, "month": "2024-01"} for c in ("BTC", "ETH")]
    >>> _batches(jan, jan), _batches(jan[:1], jan)
    ([{'month': '2024-01'}], [{'coin': 'BTC', 'month': '2024-01'}])
    """
    if not todo or any("month" not in p for p in todo):
        return todo
    wanted = {partition_key(p) for p in todo}
    by_month: dict[str, list[Partition]] = {}
    for partition in existing:
        by_month.setdefault(partition["month"], []).append(partition)
    batches: list[Partition] = []
    for month in sorted({p["month"] for p in todo}):
        members = by_month.get(month, [])
        if len(members) > 1 and all(partition_key(p) in wanted for p in members):
            batches.append({"month": month})
        else:
            batches.extend(p for p in todo if p["month"] == month)
    return batches
