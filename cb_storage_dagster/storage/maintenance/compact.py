"""Compaction: merge the small files of the partitions written since the last maintenance.

Two algorithms, chosen by the table's layout (``storage/layout.py``):

* ``instrument`` layout (``exchange / coin / month``): delta-rs' optimize as a z-order on
  ``timestamp``, so a rewritten month comes out **sorted by time** (plain ``compact`` keeps log
  order: a sort on every read), one commit per month when all its partitions are rewritten.
* ``exchange`` layout (``exchange / month``, coin a data column): each exchange-month whose
  files' coin ranges overlap is rewritten in one overwrite commit, streamed in groups of coins
  **sorted by coin, timestamp**, so every file holds a tight coin range.

Both commit as maintenance (no data change) and are retried on a fresh snapshot when a
concurrent writer conflicts: delta-rs refuses the commit when a writer removed a file the
compaction read, so no write is ever lost or resurrected.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from cb_storage_dagster.domain.errors import ConfigurationError
from cb_storage_dagster.storage.delta.writer_settings import writer_properties
from cb_storage_dagster.storage.layout import layout_of, sort_columns
from cb_storage_dagster.storage.maintenance.actions import (
    PartitionKey,
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
    last_maintenance_started,
    partitions_written_since_last_maintenance,
)
from cb_storage_dagster.storage.maintenance.guards import (
    DEFAULT_ATTEMPTS,
    DEFAULT_BACKOFF_SECONDS,
    storage_errors,
    with_conflict_retries,
)
from cb_storage_dagster.storage.maintenance.results import CompactionResult, FileStats, Partition
from cb_storage_dagster.storage.sql import coins_expression, partition_filters, partition_predicate

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from cb_storage_dagster.storage.interfaces import IStorageBackend

DEFAULT_TARGET_FILE_SIZE = 128 * 1024 * 1024
"""Bytes per compacted file: a month of 1-minute candles (~2.5 MB) is one file."""
COMPACTED_ROW_GROUP_ROWS = 4 * 1024
"""Rows per row group of a rewritten month, both layouts (~3 days of one coin's candles, not a
month or 16 Ki rows). Measured 500 x 20, exchange layout, 16 Ki -> 4 Ki: one instrument x 1
day 5.0 -> 3.6 ms, every instrument x 1 day 448 -> 377 ms; new process 21 -> 27 ms (footer 4x)."""
_COMPACTION_GROUP_ROWS = 2_000_000
"""Rows held in memory at once while rewriting an exchange-month sorted by coin (~150 MB of
candles): the month is streamed to the writer in groups of coins of about this many rows."""


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
    of each rewritten partition come out sorted by ``timestamp`` (a z-order on that single
    column), so reads need no sort and row-group statistics prune; without it delta-rs'
    bin-packing ``compact`` is used (faster, but a month's days end up in log order).
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
        return _compact_exchange_layout(
            backend, table, delta_table, wanted, before, version_before, started, started_ms,
            target_size=target_size, attempts=attempts, backoff_seconds=backoff_seconds,
        )
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


def unsorted_coin_partitions(
    actions: pa.Table, columns: Sequence[str], compacted_since_ms: int | None
) -> set[PartitionKey]:
    """Exchange-layout partitions a sorted compaction should rewrite: several files of which
    one predates the last compaction (``compacted_since_ms``; ``None``: never compacted), or
    files whose coin ranges overlap (day files added since). A partition the last compaction
    wrote (disjoint coin ranges; a coin may straddle two neighbouring files) is left alone,
    so a weekly run does not rewrite finished months. (Byte sizes cannot decide it: delta-rs'
    target file size counts uncompressed bytes, so compacted files are smaller than it.)"""
    out: set[PartitionKey] = set()
    if actions.num_rows == 0:
        return out
    names = [f"partition.{c}" for c in columns]
    older = actions
    if compacted_since_ms is not None:
        older = actions.filter(pc.less(actions.column("modification_time"), compacted_since_ms))
    with_older_files = {partition_key(p) for p in partitions_of(older, columns)}
    out |= multi_file_partitions(actions, columns) & with_older_files
    keyed = actions.select([*names, "min.coin", "max.coin"]).sort_by(
        [(n, "ascending") for n in names] + [("min.coin", "ascending")]
    )
    keys = list(zip(*(keyed.column(n).to_pylist() for n in names)))
    lows, highs = keyed.column("min.coin").to_pylist(), keyed.column("max.coin").to_pylist()
    for i in range(1, len(keys)):
        if keys[i] != keys[i - 1]:
            continue
        # Equal bounds are fine: one coin may be split across two neighbouring files.
        if lows[i] is None or highs[i - 1] is None or lows[i] < highs[i - 1]:
            out.add(partition_key(dict(zip(columns, keys[i]))))
    return out


def _files_in(actions: pa.Table, partition: Mapping[str, str]) -> int:
    mask = None
    for k, v in partition.items():
        term = pc.equal(actions.column(f"partition.{k}"), v)
        mask = term if mask is None else pc.and_(mask, term)
    return actions.num_rows if mask is None else actions.filter(mask).num_rows


def _sorted_groups(delta_table: DeltaTable, partition: Mapping[str, str], columns: Sequence[str]) -> pa.RecordBatchReader:
    """The rows of ``partition`` (at ``delta_table``'s loaded version) as a stream sorted by
    coin and timestamp, read one group of coins at a time (row-group statistics prune each
    group's read)."""
    dataset = delta_table.to_pyarrow_dataset(file_pruning_predicate=partition_filters(partition))
    coins = sorted(
        pc.unique(dataset.to_table(columns=["coin"]).column("coin")).to_pylist(),
        key=lambda c: (c is None, c),
    )
    rows = dataset.count_rows()
    per_group = max(1, int(len(coins) * _COMPACTION_GROUP_ROWS / max(rows, 1)))
    schema = dataset.schema
    order = [(c, "ascending") for c in sort_columns("exchange") if c in schema.names]

    def batches():
        for i in range(0, len(coins), per_group):
            part = dataset.to_table(filter=coins_expression(coins[i:i + per_group])).sort_by(order)
            yield from part.select(schema.names).to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())


def _compact_exchange_layout(
    backend: IStorageBackend,
    table: str,
    delta_table: DeltaTable,
    wanted: list[Partition],
    before: FileStats,
    version_before: int,
    started: float,
    started_ms: int,
    *,
    target_size: int,
    attempts: int,
    backoff_seconds: float,
) -> CompactionResult:
    """Rewrite each wanted exchange-month whose files overlap in coin range, sorted by
    ``coin, timestamp``, in one commit per partition (an overwrite of exactly that partition;
    a concurrent write to it makes the commit fail and the attempt start again from a fresh
    snapshot, so no write is lost)."""
    from deltalake import CommitProperties, write_deltalake

    columns = list(delta_table.metadata().partition_columns)
    metadata = {MAINTENANCE_MARKER: "compaction", MAINTENANCE_STARTED: str(started_ms)}
    writer = writer_properties(pa.schema(delta_table.schema().to_arrow()), max_row_group_size=COMPACTED_ROW_GROUP_ROWS)
    overlapping = unsorted_coin_partitions(add_actions(delta_table), columns, last_maintenance_started(delta_table))
    todo = [p for p in wanted if partition_key(p) in overlapping]
    added = removed = attempts_used = 0
    for partition in todo:
        predicate = partition_predicate(partition)

        def attempt(n: int, partition: Mapping[str, str] = partition, predicate: str = predicate) -> tuple[int, int]:
            if n > 1:
                delta_table.update_incremental()
            removing = _files_in(add_actions(delta_table), partition)
            write_deltalake(
                delta_table, _sorted_groups(delta_table, partition, columns), mode="overwrite",
                predicate=predicate, partition_by=columns, target_file_size=target_size,
                writer_properties=writer,
                commit_properties=CommitProperties(custom_metadata=metadata),
            )
            return _files_in(add_actions(delta_table), partition), removing

        (new_files, old_files), used = with_conflict_retries(
            backend, table, attempt, "sorted compaction", attempts=attempts, backoff_seconds=backoff_seconds,
        )
        added += new_files
        removed += old_files
        attempts_used = max(attempts_used, used)
    return _result(
        table, delta_table, todo, before, version_before, started, (added, removed), attempts_used,
        sort_columns("exchange"),
    )
