"""Sorted compaction of the exchange layout: each exchange-month whose files overlap in coin
range rewritten by one overwrite, streamed to the writer in groups of coins (about
:data:`GROUP_ROWS` rows held at once) **sorted by coin, timestamp**, so every file holds a
tight coin range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from cb_storage_dagster.storage.layout import sort_columns
from cb_storage_dagster.storage.maintenance.actions import (
    PartitionKey,
    add_actions,
    multi_file_partitions,
    partition_key,
    partitions_of,
)
from cb_storage_dagster.storage.maintenance.discovery import last_maintenance_started
from cb_storage_dagster.storage.maintenance.guards import with_conflict_retries
from cb_storage_dagster.storage.maintenance.results import Partition
from cb_storage_dagster.storage.sql import coins_expression, partition_filters, partition_predicate

if TYPE_CHECKING:
    from deltalake import DeltaTable, WriterProperties

    from cb_storage_dagster.storage.interfaces import IStorageBackend

GROUP_ROWS = 2_000_000
"""Rows held in memory at once while rewriting an exchange-month sorted by coin (~150 MB of
candles): the month is streamed to the writer in groups of coins of about this many rows."""


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
    per_group = max(1, int(len(coins) * GROUP_ROWS / max(rows, 1)))
    schema = dataset.schema
    order = [(c, "ascending") for c in sort_columns("exchange") if c in schema.names]

    def batches():
        for i in range(0, len(coins), per_group):
            part = dataset.to_table(filter=coins_expression(coins[i:i + per_group])).sort_by(order)
            yield from part.select(schema.names).to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())


def compact_exchange_months(
    backend: IStorageBackend, table: str, delta_table: DeltaTable, wanted: list[Partition], *,
    target_size: int, writer: WriterProperties, metadata: dict[str, str], attempts: int, backoff_seconds: float,
) -> tuple[list[Partition], int, int, int]:
    """Rewrite each wanted exchange-month whose files overlap in coin range, sorted by
    ``coin, timestamp``, in one commit per partition (an overwrite of exactly that partition;
    a concurrent write to it makes the commit fail and the attempt start again from a fresh
    snapshot, so no write is lost). Returns (the partitions rewritten, files added, files
    removed, most attempts a partition took)."""
    from deltalake import CommitProperties, write_deltalake

    columns = list(delta_table.metadata().partition_columns)
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
    return todo, added, removed, attempts_used


__all__ = ["GROUP_ROWS", "compact_exchange_months", "unsorted_coin_partitions"]
