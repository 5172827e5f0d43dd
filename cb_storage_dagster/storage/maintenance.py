"""Delta table maintenance: compaction, checkpoints and vacuum. No Dagster here.

A year of daily writes leaves one small file per instrument-day (~60-80 KB of 1-minute
candles). The layout (``exchange / coin / month`` partitions, ``date`` a data column, see
``docs/LAYOUT.md``) lets compaction merge a month of days into one file, which is what
keeps reads fast. Three operations, each returning a dataclass with file counts and bytes
before and after:

* :func:`compact_table` rewrites the partitions written since the last maintenance (found
  from the log: files added after the last maintenance commit) or the partitions given,
  into files of about ``target_size`` bytes, **sorted by timestamp** by default (delta-rs'
  plain ``compact`` concatenates a month's day files in log order, which costs every later
  read a sort). It commits as an ``OPTIMIZE`` (no data change) and is retried with backoff
  when it conflicts with a concurrent writer: delta-rs refuses the commit when a writer
  removed a file the compaction read, so no write is ever lost or resurrected.
* :func:`checkpoint_table` writes a checkpoint (table opens and commits stop replaying a
  growing JSON log) and removes log files past ``delta.logRetentionDuration``.
* :func:`vacuum_table` deletes data files no longer referenced by any version inside the
  retention window (default 7 days). A retention below ``min_retention_hours`` (default
  also 7 days) is refused: readers running or reproducing a past version need those files.

Tables in the ``exchange`` layout (``exchange / month`` partitions, coin a data column; see
``storage/layout.py``) are compacted by :func:`_rewrite_sorted_by_coin` instead: each
exchange-month whose files' coin ranges overlap is rewritten in one commit, streamed in
groups of coins and **sorted by coin, timestamp**, so every file holds a tight coin range.

:func:`maintain_table` runs all three; :func:`find_delta_tables` lists the tables under a
storage root.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from cb_storage_dagster.domain.errors import (
    ConfigurationError,
    CorruptTableError,
    NotFoundError,
    StorageError,
)
from cb_storage_dagster.domain.identifiers import normalize_identifier
from cb_storage_dagster.retry import RetryPolicy, run_with_conflict_retries
from cb_storage_dagster.storage.delta.errors import translate_delta_error
from cb_storage_dagster.storage.layout import EXCHANGE_LAYOUT_ROW_GROUP_ROWS, layout_of, sort_columns

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from cb_storage_dagster.storage.interfaces import IStorageBackend

__all__ = [
    "DEFAULT_MIN_RETENTION_HOURS",
    "DEFAULT_RETENTION_HOURS",
    "DEFAULT_TARGET_FILE_SIZE",
    "CheckpointResult",
    "CompactionResult",
    "FileStats",
    "MaintenanceResult",
    "VacuumResult",
    "checkpoint_table",
    "compact_table",
    "find_delta_tables",
    "maintain_table",
    "partitions_written_since_last_maintenance",
    "table_file_stats",
    "vacuum_table",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")

DEFAULT_TARGET_FILE_SIZE = 128 * 1024 * 1024
"""Bytes per compacted file. A month of 1-minute candles (~2.5 MB) fits in one file; a month
of trades of a busy instrument is split into files of about this size."""
DEFAULT_RETENTION_HOURS = 168
"""Vacuum keeps files removed in the last 7 days (Delta's own default)."""
DEFAULT_MIN_RETENTION_HOURS = 168
"""Vacuum refuses a shorter retention unless the caller lowers this minimum explicitly."""
DEFAULT_ATTEMPTS = 6
DEFAULT_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 10.0
MAINTENANCE_MARKER = "cb_storage.maintenance"
"""Commit metadata key of our maintenance commits (value: the operation)."""
MAINTENANCE_STARTED = "cb_storage.maintenance_started_ms"
_LOOKBACK_SLACK_MS = 3_600_000
"""Files written up to an hour before the last maintenance started are looked at again:
a writer may create its file before and commit it after that maintenance's snapshot."""
_HISTORY_LIMIT = 2_000

Partition = dict[str, str]


@dataclass(frozen=True)
class FileStats:
    """Data files and their total size."""

    files: int
    bytes: int


@dataclass(frozen=True)
class CompactionResult:
    """What a compaction did to the table's active (referenced) data files."""

    table: str
    partitions: list[Partition]
    before: FileStats
    after: FileStats
    files_added: int
    files_removed: int
    version_before: int
    version_after: int
    attempts: int
    seconds: float
    sorted_by_time: bool
    sorted_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckpointResult:
    """A checkpoint at ``version`` and the log files before/after cleaning up expired ones."""

    table: str
    version: int
    log_before: FileStats
    log_after: FileStats
    seconds: float


@dataclass(frozen=True)
class VacuumResult:
    """Data files in storage (referenced or not) before and after the vacuum."""

    table: str
    retention_hours: int
    dry_run: bool
    files_deleted: list[str]
    before: FileStats
    after: FileStats
    seconds: float


@dataclass(frozen=True)
class MaintenanceResult:
    table: str
    compaction: CompactionResult
    checkpoint: CheckpointResult
    vacuum: VacuumResult
    summary: dict[str, Any] = field(default_factory=dict)


# -- helpers ------------------------------------------------------------------------------
def _open(backend: IStorageBackend, table: str) -> DeltaTable:
    from deltalake import DeltaTable

    table = normalize_identifier(table)
    if not backend.exists(f"{table}/_delta_log"):
        raise NotFoundError(f"No Delta table {table!r} in {backend.describe()}.")
    return DeltaTable(backend.get_uri_for_identifier(table), storage_options=backend.get_storage_options())


def _actions(delta_table: DeltaTable) -> pa.Table:
    return pa.table(delta_table.get_add_actions(flatten=True))


def table_file_stats(delta_table: DeltaTable) -> FileStats:
    """Active data files of the loaded version (from the log, no listing)."""
    actions = _actions(delta_table)
    size = pc.sum(actions.column("size_bytes")).as_py() if actions.num_rows else 0
    return FileStats(actions.num_rows, int(size or 0))


def _storage_files(delta_table: DeltaTable, storage_options: Mapping[str, str]) -> dict[str, int]:
    """Every data file under the table root, referenced or not, with its size (lists the
    storage: fine for weekly maintenance, never done on a read path)."""
    import pyarrow.fs as pa_fs
    from deltalake.fs import DeltaStorageHandler

    filesystem = pa_fs.PyFileSystem(DeltaStorageHandler(delta_table.table_uri, dict(storage_options) or None))
    infos = filesystem.get_file_info(pa_fs.FileSelector("", recursive=True, allow_not_found=True))
    return {
        i.path.lstrip("/"): int(i.size or 0)
        for i in infos
        if i.type == pa_fs.FileType.File and i.path.endswith(".parquet")
        and not i.path.lstrip("/").startswith("_delta_log")
    }


def _stats(files: Mapping[str, int]) -> FileStats:
    return FileStats(len(files), sum(files.values()))


def _log_files(delta_table: DeltaTable, storage_options: Mapping[str, str]) -> FileStats:
    import pyarrow.fs as pa_fs
    from deltalake.fs import DeltaStorageHandler

    filesystem = pa_fs.PyFileSystem(DeltaStorageHandler(delta_table.table_uri, dict(storage_options) or None))
    infos = filesystem.get_file_info(pa_fs.FileSelector("_delta_log", recursive=True, allow_not_found=True))
    files = [i for i in infos if i.type == pa_fs.FileType.File]
    return FileStats(len(files), sum(i.size or 0 for i in files))


def _with_retries(
    backend: IStorageBackend, table: str, action: Callable[[int], T], what: str, *, attempts: int,
    backoff_seconds: float,
) -> tuple[T, int]:
    """Run ``action(attempt_number)`` under the storage core's one retry policy: commit
    conflicts are redone after a full-jitter backoff, anything else is raised translated."""
    outcome = run_with_conflict_retries(
        lambda attempt: action(attempt.number),
        policy=RetryPolicy(
            attempts=attempts, max_attempts=attempts, backoff_seconds=backoff_seconds,
            max_backoff_seconds=MAX_BACKOFF_SECONDS,
        ),
        translate=lambda exc: translate_delta_error(exc, table=table, action=what, backend=backend),
        what=what,
        subject=f"Delta table {table!r}",
    )
    return outcome.value, outcome.attempts


def _storage_errors(what: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Every exception of a maintenance operation leaves as a StorageError with a scrubbed
    message (raw delta-rs text may quote request URLs); a table delta-rs cannot parse at
    all is a CorruptTableError."""

    def decorate(operation: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(operation)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return operation(*args, **kwargs)
            except StorageError:
                raise
            except Exception as exc:
                backend = kwargs.get("backend", args[0] if args else None)
                table = str(kwargs.get("table", args[1] if len(args) > 1 else "?"))
                error = translate_delta_error(exc, table=table, action=what, backend=backend)  # type: ignore[arg-type]
                if type(error) is StorageError:
                    error = CorruptTableError(
                        f"{what.capitalize()} of {table!r} failed: it is not a readable Delta table "
                        f"({type(exc).__name__}). Restore it from a backup or move it aside."
                    )
                raise error from None

        return wrapper

    return decorate


def _partition_key(partition: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in partition.items()))


def _partitions_of(actions: pa.Table, columns: Sequence[str]) -> list[Partition]:
    if actions.num_rows == 0:
        return []
    names = [f"partition.{c}" for c in columns]
    unique = actions.select(names).group_by(names).aggregate([])
    rows = zip(*(unique.column(n).to_pylist() for n in names))
    return sorted(({c: v for c, v in zip(columns, row)} for row in rows), key=_partition_key)


def _multi_file_partitions(actions: pa.Table, columns: Sequence[str]) -> set[tuple[tuple[str, str], ...]]:
    if actions.num_rows == 0:
        return set()
    names = [f"partition.{c}" for c in columns]
    counts = actions.select(names).group_by(names).aggregate([([], "count_all")])
    many = counts.filter(pc.greater(counts.column("count_all"), 1))
    rows = zip(*(many.column(n).to_pylist() for n in names))
    return {_partition_key(dict(zip(columns, row))) for row in rows}


def last_maintenance_started(delta_table: DeltaTable) -> int | None:
    """Start time (ms since the epoch) of the newest compaction by this module, if any."""
    for commit in delta_table.history(limit=_HISTORY_LIMIT):
        marker = commit.get(MAINTENANCE_MARKER)
        if marker == "compaction":
            started = commit.get(MAINTENANCE_STARTED)
            try:
                return int(started) if started is not None else int(commit["timestamp"])
            except (TypeError, ValueError):
                return int(commit.get("timestamp", 0))
    return None


def partitions_written_since_last_maintenance(delta_table: DeltaTable) -> list[Partition]:
    """Partitions with a data file added since the last compaction by this module started
    (all partitions if it never ran), from the log's add actions."""
    columns = list(delta_table.metadata().partition_columns)
    actions = _actions(delta_table)
    since = last_maintenance_started(delta_table)
    if since is not None and actions.num_rows:
        actions = actions.filter(pc.greater_equal(actions.column("modification_time"), since - _LOOKBACK_SLACK_MS))
    return _partitions_of(actions, columns)


def _filters(partition: Mapping[str, str]) -> list[tuple[str, str, str]]:
    return [(k, "=", v) for k, v in sorted(partition.items())]


def _batches(todo: list[Partition], existing: list[Partition]) -> list[Partition]:
    """Group the partitions to rewrite into as few optimize commits as possible: when every
    partition of a month is to be rewritten (the weekly case: all instruments wrote), one
    commit for the month; otherwise one per partition. Each entry is a filter mapping."""
    if not todo or any("month" not in p for p in todo):
        return todo
    wanted = {_partition_key(p) for p in todo}
    by_month: dict[str, list[Partition]] = {}
    for partition in existing:
        by_month.setdefault(partition["month"], []).append(partition)
    batches: list[Partition] = []
    for month in sorted({p["month"] for p in todo}):
        members = by_month.get(month, [])
        if len(members) > 1 and all(_partition_key(p) in wanted for p in members):
            batches.append({"month": month})
        else:
            batches.extend(p for p in todo if p["month"] == month)
    return batches


# -- operations ---------------------------------------------------------------------------
@_storage_errors("compaction")
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
    from deltalake import CommitProperties, WriterProperties

    if target_size <= 0:
        raise ConfigurationError("target_size must be a positive number of bytes.")
    started = time.perf_counter()
    started_ms = int(time.time() * 1000)
    delta_table = _open(backend, table)
    before = table_file_stats(delta_table)
    version_before = delta_table.version()
    columns = list(delta_table.metadata().partition_columns)
    if partitions is None:
        wanted = partitions_written_since_last_maintenance(delta_table)
    else:
        wanted = [dict(p) for p in partitions]
    multi = _multi_file_partitions(_actions(delta_table), columns)
    todo = [p for p in wanted if _partition_key(p) in multi or not columns]
    writer = WriterProperties(compression="SNAPPY")
    metadata = {MAINTENANCE_MARKER: "compaction", MAINTENANCE_STARTED: str(started_ms)}
    added = removed = 0
    attempts_used = 0

    def run(partition: Mapping[str, str] | None) -> dict[str, Any]:
        def attempt(n: int) -> dict[str, Any]:
            if n > 1:
                delta_table.update_incremental()
            commit = CommitProperties(custom_metadata=metadata)
            filters = _filters(partition) if partition else None
            if sort_by_time and "timestamp" in pa.schema(delta_table.schema().to_arrow()).names:
                return delta_table.optimize.z_order(
                    ["timestamp"], partition_filters=filters, target_size=target_size,
                    writer_properties=writer, commit_properties=commit,
                )
            return delta_table.optimize.compact(
                partition_filters=filters, target_size=target_size,
                writer_properties=writer, commit_properties=commit,
            )

        metrics, used = _with_retries(
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
    for filters in _batches(todo, _partitions_of(_actions(delta_table), columns)):
        metrics = run(filters or None)
        added += int(metrics.get("numFilesAdded", 0))
        removed += int(metrics.get("numFilesRemoved", 0))
    delta_table.update_incremental()
    return CompactionResult(
        table=table, partitions=todo, before=before, after=table_file_stats(delta_table),
        files_added=added, files_removed=removed, version_before=version_before,
        version_after=delta_table.version(), attempts=attempts_used,
        seconds=time.perf_counter() - started, sorted_by_time=sort_by_time,
        sorted_by=("timestamp",) if sort_by_time else (),
    )


_COMPACTION_GROUP_ROWS = 2_000_000
"""Rows held in memory at once while rewriting an exchange-month sorted by coin (~150 MB of
candles): the month is streamed to the writer in groups of coins of about this many rows."""


def unsorted_coin_partitions(
    actions: pa.Table, columns: Sequence[str], compacted_since_ms: int | None
) -> set[tuple[tuple[str, str], ...]]:
    """Exchange-layout partitions a sorted compaction should rewrite: several files of which
    one predates the last compaction (``compacted_since_ms``; ``None``: never compacted), or
    files whose coin ranges overlap (day files added since). A partition the last compaction
    wrote (disjoint coin ranges; a coin may straddle two neighbouring files) is left alone,
    so a weekly run does not rewrite finished months. (Byte sizes cannot decide it: delta-rs'
    target file size counts uncompressed bytes, so compacted files are smaller than it.)"""
    out: set[tuple[tuple[str, str], ...]] = set()
    if actions.num_rows == 0:
        return out
    names = [f"partition.{c}" for c in columns]
    older = actions
    if compacted_since_ms is not None:
        older = actions.filter(pc.less(actions.column("modification_time"), compacted_since_ms))
    with_older_files = {_partition_key(p) for p in _partitions_of(older, columns)}
    out |= _multi_file_partitions(actions, columns) & with_older_files
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
            out.add(_partition_key(dict(zip(columns, keys[i]))))
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
    import pyarrow.dataset as ds

    dataset = delta_table.to_pyarrow_dataset(file_pruning_predicate=_filters(partition))
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
            group = coins[i:i + per_group]
            wanted = [c for c in group if c is not None]
            expr = ds.field("coin").isin(wanted) if wanted else None
            if None in group:
                expr = ds.field("coin").is_null() if expr is None else expr | ds.field("coin").is_null()
            part = dataset.to_table(filter=expr).sort_by(order)
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
    from deltalake import CommitProperties, WriterProperties, write_deltalake

    from cb_storage_dagster.storage.sql import sql_literal

    columns = list(delta_table.metadata().partition_columns)
    metadata = {MAINTENANCE_MARKER: "compaction", MAINTENANCE_STARTED: str(started_ms)}
    writer = WriterProperties(compression="SNAPPY", max_row_group_size=EXCHANGE_LAYOUT_ROW_GROUP_ROWS)
    overlapping = unsorted_coin_partitions(_actions(delta_table), columns, last_maintenance_started(delta_table))
    todo = [p for p in wanted if _partition_key(p) in overlapping]
    added = removed = attempts_used = 0
    for partition in todo:
        predicate = " AND ".join(f"{k} = {sql_literal(v)}" for k, v in sorted(partition.items()))

        def attempt(n: int, partition: Mapping[str, str] = partition, predicate: str = predicate) -> tuple[int, int]:
            if n > 1:
                delta_table.update_incremental()
            removing = _files_in(_actions(delta_table), partition)
            write_deltalake(
                delta_table, _sorted_groups(delta_table, partition, columns), mode="overwrite",
                predicate=predicate, partition_by=columns, target_file_size=target_size,
                writer_properties=writer,
                commit_properties=CommitProperties(custom_metadata=metadata),
            )
            return _files_in(_actions(delta_table), partition), removing

        (new_files, old_files), used = _with_retries(
            backend, table, attempt, "sorted compaction", attempts=attempts, backoff_seconds=backoff_seconds,
        )
        added += new_files
        removed += old_files
        attempts_used = max(attempts_used, used)
    delta_table.update_incremental()
    return CompactionResult(
        table=table, partitions=todo, before=before, after=table_file_stats(delta_table),
        files_added=added, files_removed=removed, version_before=version_before,
        version_after=delta_table.version(), attempts=attempts_used,
        seconds=time.perf_counter() - started, sorted_by_time=True,
        sorted_by=tuple(sort_columns("exchange")),
    )


@_storage_errors("checkpoint")
def checkpoint_table(backend: IStorageBackend, table: str, *, cleanup_log: bool = True) -> CheckpointResult:
    """Write a checkpoint of the current version; remove log files past the table's
    ``delta.logRetentionDuration`` (30 days by default) when ``cleanup_log``."""
    started = time.perf_counter()
    delta_table = _open(backend, table)
    options = backend.get_storage_options()
    log_before = _log_files(delta_table, options)
    delta_table.create_checkpoint()
    if cleanup_log:
        delta_table.cleanup_metadata()
    return CheckpointResult(
        table=table, version=delta_table.version(), log_before=log_before,
        log_after=_log_files(delta_table, options), seconds=time.perf_counter() - started,
    )


@_storage_errors("vacuum")
def vacuum_table(
    backend: IStorageBackend,
    table: str,
    *,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    min_retention_hours: int = DEFAULT_MIN_RETENTION_HOURS,
    dry_run: bool = False,
    attempts: int = DEFAULT_ATTEMPTS,
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
) -> VacuumResult:
    """Delete data files that no version of the last ``retention_hours`` references.

    Raises:
        ConfigurationError: ``retention_hours`` is below ``min_retention_hours`` (a reader
            still running on, or reproducing, a version of that window would lose its files).
    """
    if min_retention_hours < 0:
        raise ConfigurationError("min_retention_hours must be >= 0.")
    if retention_hours < min_retention_hours:
        raise ConfigurationError(
            f"Vacuum retention of {retention_hours} h is below the minimum of {min_retention_hours} h: "
            "readers of recent versions (running jobs, time travel) would lose their files. Use a "
            "longer retention, or lower min_retention_hours deliberately."
        )
    started = time.perf_counter()
    delta_table = _open(backend, table)
    options = backend.get_storage_options()
    before = _storage_files(delta_table, options)

    def attempt(n: int) -> list[str]:
        if n > 1:
            delta_table.update_incremental()
        # Our minimum replaces delta-rs' check against the table's configured retention.
        return delta_table.vacuum(
            retention_hours=retention_hours, dry_run=dry_run, enforce_retention_duration=False, full=True,
        )

    listed, _ = _with_retries(backend, table, attempt, "vacuum", attempts=attempts, backoff_seconds=backoff_seconds)
    # delta-rs also lists tombstones whose files are already gone: report what was stored.
    root = delta_table.table_uri.rstrip("/") + "/"
    candidates = {p[len(root):] if p.startswith(root) else p.lstrip("/") for p in listed}
    after = before if dry_run else _storage_files(delta_table, options)
    deleted = sorted(p for p in before if p in candidates and (dry_run or p not in after))
    return VacuumResult(
        table=table, retention_hours=retention_hours, dry_run=dry_run, files_deleted=deleted,
        before=_stats(before), after=_stats(after), seconds=time.perf_counter() - started,
    )


def maintain_table(
    backend: IStorageBackend,
    table: str,
    *,
    target_size: int = DEFAULT_TARGET_FILE_SIZE,
    sort_by_time: bool = True,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    min_retention_hours: int = DEFAULT_MIN_RETENTION_HOURS,
    vacuum_dry_run: bool = False,
) -> MaintenanceResult:
    """Compaction, then a checkpoint (so the next opens start from the compacted state),
    then vacuum."""
    compaction = compact_table(backend, table, target_size=target_size, sort_by_time=sort_by_time)
    checkpoint = checkpoint_table(backend, table)
    vacuum = vacuum_table(
        backend, table, retention_hours=retention_hours, min_retention_hours=min_retention_hours,
        dry_run=vacuum_dry_run,
    )
    summary = {
        "table": table,
        "partitions_compacted": len(compaction.partitions),
        "active_files_before": compaction.before.files,
        "active_files_after": compaction.after.files,
        "active_bytes_before": compaction.before.bytes,
        "active_bytes_after": compaction.after.bytes,
        "stored_files_before": vacuum.before.files,
        "stored_files_after": vacuum.after.files,
        "stored_bytes_before": vacuum.before.bytes,
        "stored_bytes_after": vacuum.after.bytes,
        "files_vacuumed": len(vacuum.files_deleted),
        "log_files_before": checkpoint.log_before.files,
        "log_files_after": checkpoint.log_after.files,
        "version": checkpoint.version,
    }
    return MaintenanceResult(table, compaction, checkpoint, vacuum, summary)


def find_delta_tables(backend: IStorageBackend, prefix: str = "") -> list[str]:
    """Names of the Delta tables under ``prefix`` (folders holding a ``_delta_log``)."""
    tables: set[str] = set()
    for item in backend.list_items(prefix):
        head, sep, _ = item.partition("/_delta_log/")
        if sep and "/_delta_log/" not in head and not any(
            part.startswith(("_", ".")) or "=" in part for part in head.split("/")
        ):
            tables.add(head)
    return sorted(tables)


def describe(result: CompactionResult | CheckpointResult | VacuumResult | MaintenanceResult) -> str:
    """A one-line JSON summary for logs."""
    if isinstance(result, MaintenanceResult):
        return json.dumps(result.summary, sort_keys=True)
    return json.dumps({k: v for k, v in result.__dict__.items() if k != "files_deleted"}, default=str, sort_keys=True)
