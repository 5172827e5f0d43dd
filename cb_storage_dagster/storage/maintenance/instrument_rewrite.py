"""Sorted compaction of the instrument layout: the day files of many instrument-months
rewritten by one overwrite per group of instruments of an exchange-month.

delta-rs' ``optimize.z_order(["timestamp"])`` sorts each instrument-month by time, but as one
DataFusion plan per partition: ~150 ms per instrument-month, ~300 s for the 2,000 instruments
x 30 days of the peer benchmark (60,000 day files), 20x ArcticDB's maintenance; 48 s this
way (session 13, idle, 33 groups; the process peaked at 1.5 GB resident). Here the
instrument-months of about :data:`GROUP_BYTES` of data files (~61 instrument-months of
1-minute candles, ~2.6 M rows) are read at once, sorted by coin and time, and written back by
one ``write_deltalake`` overwrite whose predicate names exactly those instrument-months
(``exchange``, ``month`` and the ``coin`` list): one file per instrument-month, as before, and
one commit per group. An instrument-month larger than that alone (a month of trades of a
liquid pair) keeps delta-rs' z-order, which does not hold it in memory at once.

A group is its own transaction: a concurrent write to one of its instrument-months conflicts
with that group's commit only, which is retried on a fresh snapshot (delta-rs refuses an
overwrite whose read files a concurrent commit removed, so no write is ever lost), and a
write to another instrument never conflicts.

>>> groups([("binance", "BTC", "2024-01", 30), ("binance", "ETH", "2024-01", 30),
...         ("binance", "BTC", "2024-02", 5)], max_bytes=50)
[('binance', '2024-01', ['BTC']), ('binance', '2024-01', ['ETH']), ('binance', '2024-02', ['BTC'])]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from cb_storage_dagster.storage.delta.fragment_read import has_view_types, read_fragment
from cb_storage_dagster.storage.delta.locations import filesystem_for
from cb_storage_dagster.storage.delta.pruning import file_guarantees
from cb_storage_dagster.storage.delta.sorting import sort_rows
from cb_storage_dagster.storage.maintenance.actions import add_actions
from cb_storage_dagster.storage.maintenance.guards import with_conflict_retries
from cb_storage_dagster.storage.sql.literals import sql_literal

if TYPE_CHECKING:
    from deltalake import DeltaTable, WriterProperties

    from cb_storage_dagster.storage.interfaces import IStorageBackend

GROUP_BYTES = 128 * 1024 * 1024
"""Bytes of data files of one rewrite, about (uncompressed files: ~2.6 M rows of candles, held
in memory as read and as one combined chunk while written)."""
_FORMAT = ds.ParquetFileFormat()


def groups(months: Sequence[tuple[str, str, str, int]], *, max_bytes: int | None = None,
           ) -> list[tuple[str, str, list[str]]]:
    """``(exchange, coin, month, bytes)`` instrument-months as ``(exchange, month, coins)``
    groups of at most ``max_bytes`` (default :data:`GROUP_BYTES`; an instrument-month larger
    than that alone)."""
    max_bytes = GROUP_BYTES if max_bytes is None else max_bytes
    out: list[tuple[str, str, list[str]]] = []
    current: tuple[str, str] | None = None
    coins: list[str] = []
    held = 0
    for exchange, coin, month, size in sorted(months, key=lambda m: (m[0], m[2], m[1])):
        if (exchange, month) != current or (coins and held + size > max_bytes):
            if coins and current is not None:
                out.append((current[0], current[1], coins))
            current, coins, held = (exchange, month), [], 0
        coins.append(coin)
        held += size
    if coins and current is not None:
        out.append((current[0], current[1], coins))
    return out


def months_to_rewrite(delta_table: DeltaTable, todo: Sequence[Mapping[str, str]]) -> list[tuple[str, str, str, int]]:
    """The partitions ``todo`` (``exchange``/``coin``/``month``) as ``(exchange, coin, month,
    bytes)``, the bytes of their data files from the log."""
    actions = add_actions(delta_table)
    sizes: dict[tuple[str, str, str], int] = {}
    if actions.num_rows:
        keys = zip(*(actions.column(f"partition.{c}").to_pylist() for c in ("exchange", "coin", "month")))
        for key, size in zip(keys, actions.column("size_bytes").to_pylist()):
            sizes[key] = sizes.get(key, 0) + int(size or 0)
    wanted = [(p["exchange"], p["coin"], p["month"]) for p in todo]
    return [(e, c, m, sizes.get((e, c, m), 0)) for e, c, m in wanted]


def predicate(exchange: str, month: str, coins: Sequence[str]) -> str:
    """The instrument-months of one group as a SQL predicate.

    >>> predicate("binance", "2024-01", ["BTC", "O'K"])
    "exchange = 'binance' AND month = '2024-01' AND coin IN ('BTC', 'O''K')"
    """
    listed = ", ".join(sql_literal(coin) for coin in coins)
    return f"exchange = {sql_literal(exchange)} AND month = {sql_literal(month)} AND coin IN ({listed})"


def rewrite_group(
    delta_table: DeltaTable, exchange: str, month: str, coins: Sequence[str], *,
    columns: Sequence[str], target_size: int, writer: WriterProperties, metadata: dict[str, str],
    storage_options: dict[str, str],
) -> tuple[int, int]:
    """Rewrite the instrument-months of ``coins`` in ``exchange``/``month``, each sorted by time,
    in one overwrite commit at ``delta_table``'s loaded version. Returns (files added, files
    removed)."""
    from deltalake import CommitProperties, write_deltalake

    files = _group_files(add_actions(delta_table), exchange, month, coins)
    schema = pa.schema(delta_table.schema().to_arrow())
    # One chunk: delta-rs writes the batches of its input in parallel, so rows of one
    # instrument-month given in several batches (one per day file) reach its file out of order.
    rows = _read_in_time_order(delta_table.table_uri, files, schema, storage_options).combine_chunks()
    write_deltalake(
        delta_table, rows, mode="overwrite", predicate=predicate(exchange, month, coins), partition_by=list(columns),
        target_file_size=target_size, writer_properties=writer, commit_properties=CommitProperties(custom_metadata=metadata),
    )
    return _group_files(add_actions(delta_table), exchange, month, coins).num_rows, files.num_rows


def _group_files(actions: pa.Table, exchange: str, month: str, coins: Sequence[str]) -> pa.Table:
    """The add actions of the group's instrument-months, by coin and first timestamp."""
    if not actions.num_rows:
        return actions
    mask = pc.and_(pc.and_(pc.equal(actions.column("partition.exchange"), exchange),
                           pc.equal(actions.column("partition.month"), month)),
                   pc.is_in(actions.column("partition.coin"), pa.array(list(coins), pa.string())))
    order = [("partition.coin", "ascending")]
    if "min.timestamp" in actions.column_names:
        order.append(("min.timestamp", "ascending"))
    return actions.filter(mask).sort_by(order)


def _read_in_time_order(table_uri: str, files: pa.Table, schema: pa.Schema, storage_options: dict[str, str]) -> pa.Table:
    """The rows of ``files`` (add actions) in (coin, timestamp) order. The files are read in
    the order of their coin and first timestamp (from the log's statistics), each with its
    partition values from the log, so the day files the product writes, each in time order,
    come out sorted and the check finds nothing to do (a sort of 2 M rows by coin and time
    costs ~1 s, the check ~20 ms); rows in any other order are sorted."""
    if not files.num_rows:
        return schema.empty_table()
    paths = [unquote(path) for path in files.column("path").to_pylist()]
    filesystem, located = filesystem_for(table_uri, paths, files.column("size_bytes").to_pylist(), storage_options)
    guarantees = file_guarantees(files, schema, ("exchange", "coin", "month"))  # the read path's, from the log
    fragments = [_FORMAT.make_fragment(path, filesystem=filesystem, partition_expression=guarantee)
                 for path, guarantee in zip(located, guarantees)]
    if any(has_view_types(fragment) for fragment in fragments):  # (a merge's files): read each, cast
        rows = pa.concat_tables([read_fragment(fragment, schema, None, None) for fragment in fragments])
    else:
        rows = ds.FileSystemDataset(fragments, schema, _FORMAT, filesystem).to_table(columns=schema.names)
    return sort_rows(rows, ["coin", "timestamp"], single_instrument=False)


def compact_instrument_months(
    backend: IStorageBackend, table: str, delta_table: DeltaTable, todo: Sequence[Mapping[str, str]], *,
    target_size: int, writer: WriterProperties, metadata: dict[str, str], attempts: int, backoff_seconds: float,
) -> tuple[int, int, int]:
    """Rewrite the instrument-months ``todo`` sorted by time, one commit per group (see the
    module), each retried on a fresh snapshot when a concurrent commit conflicts. Returns
    (files added, files removed, most attempts a group took)."""
    from deltalake import CommitProperties

    columns = list(delta_table.metadata().partition_columns)
    storage_options = backend.get_storage_options()
    months = months_to_rewrite(delta_table, todo)
    large = [(e, c, m) for e, c, m, size in months if size > GROUP_BYTES]
    added = removed = attempts_used = 0
    for exchange, month, coins in groups([month for month in months if month[3] <= GROUP_BYTES]):
        def attempt(n: int, exchange: str = exchange, month: str = month, coins: list[str] = coins) -> tuple[int, int]:
            if n > 1:
                delta_table.update_incremental()
            return rewrite_group(delta_table, exchange, month, coins, columns=columns, target_size=target_size,
                                 writer=writer, metadata=metadata, storage_options=storage_options)

        (new_files, old_files), used = with_conflict_retries(
            backend, table, attempt, "sorted compaction", attempts=attempts, backoff_seconds=backoff_seconds)
        added, removed, attempts_used = added + new_files, removed + old_files, max(attempts_used, used)
    for exchange, coin, month in large:
        def z_order(n: int, exchange: str = exchange, coin: str = coin, month: str = month) -> tuple[int, int]:
            if n > 1:
                delta_table.update_incremental()
            metrics = delta_table.optimize.z_order(
                ["timestamp"], partition_filters=[("coin", "=", coin), ("exchange", "=", exchange), ("month", "=", month)],
                target_size=target_size, writer_properties=writer, commit_properties=CommitProperties(custom_metadata=metadata))
            return int(metrics.get("numFilesAdded", 0)), int(metrics.get("numFilesRemoved", 0))

        (new_files, old_files), used = with_conflict_retries(
            backend, table, z_order, "compaction", attempts=attempts, backoff_seconds=backoff_seconds)
        added, removed, attempts_used = added + new_files, removed + old_files, max(attempts_used, used)
    return added, removed, attempts_used


__all__ = ["GROUP_BYTES", "compact_instrument_months", "groups", "months_to_rewrite", "predicate", "rewrite_group"]
