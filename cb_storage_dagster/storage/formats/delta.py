"""Delta Lake format: one table per data type, predicate overwrites, pruned scans.

Layout: partition columns ``exchange / coin / month`` with ``date`` a data column, so a
year of daily writes is 12 partitions per instrument (compactable into a few files) while
one day is still replaced exactly with ``... AND month = '2024-01' AND date IN ('2024-01-02')``.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ..errors import (
    CorruptTableError,
    NotFoundError,
    SchemaMismatchError,
    StorageError,
    WriteConflictError,
)
from ..keys import DataType
from ..predicates import WriteScope
from ..results import WriteResult
from ..schemas import DATE_COLUMN, MONTH_COLUMN, PARTITION_COLUMNS, storage_schema
from .base import FormatStore, ReadRequest, rows_per_partition
from .delta_scan import DeltaScanPlanner, direct_read_supported, scope_range_expression, sort_rows

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from ..interfaces import IStorageBackend

T = TypeVar("T")

logger = logging.getLogger(__name__)

WRITER_REOPEN_COMMITS = 100
"""Re-open the cached writer table after this many versions (measured: a table object that
keeps committing went from 36 to 100 ms per commit over 250 commits)."""
TABLE_CONFIGURATION = {"delta.checkpointInterval": "20"}
"""Checkpoint every 20 commits instead of 100: a new process opening a table of daily writes
replays at most 20 JSON commits (the first listing went from ~50 to ~21 ms after 120 daily
commits), for a checkpoint write every 20 commits."""

DEFAULT_COMMIT_RETRIES = 25
"""delta-rs' own rebase retries per attempt. Rebasing onto a concurrent commit to other
partitions is cheap; 8 processes committing at once needed up to 14 (STACK-NOTES)."""
COMMIT_RETRIES_GROWTH_LIMIT = 8
"""When an attempt runs out of rebase retries (more concurrent writers than the budget
covers), the next attempt gets twice as many, up to this multiple of the configured budget."""
DEFAULT_CONFLICT_ATTEMPTS = 8
"""Our own attempts when no other writer is seen: a lost conflict is redone from a fresh
snapshot. Each commit of another writer seen between our attempts adds one attempt, up to
``DEFAULT_MAX_CONFLICT_ATTEMPTS``, so the budget follows the number of competing writers."""
DEFAULT_MAX_CONFLICT_ATTEMPTS = 32
DEFAULT_CONFLICT_BACKOFF_SECONDS = 0.05
DEFAULT_MAX_BACKOFF_SECONDS = 2.0

_RETRIES_EXHAUSTED = re.compile(r"Failed to commit transaction: \d+\s*$")


@dataclass(frozen=True)
class CommitReport:
    """How one commit went. Logged by this module's logger (DEBUG, or INFO after a lost
    conflict) with ``extra={"cb_commit": report}``.

    Attributes:
        table: the table name.
        operation: ``create``, ``write`` or ``delete``.
        version: the version the commit created (``None`` for a create that found the table).
        attempts: our attempts; 1 means no conflict had to be redone.
        conflicts: why each lost attempt lost (classified, never raw error text).
        concurrent_commits: commits of other writers that landed between the snapshot the
            successful attempt read and its own commit (delta-rs rebased over them).
        max_commit_retries: delta-rs' rebase budget of the successful attempt.
        seconds: wall time including backoff.
    """

    table: str
    operation: str
    version: int | None
    attempts: int
    conflicts: tuple[str, ...]
    concurrent_commits: int
    max_commit_retries: int
    seconds: float


class DeltaFormat(FormatStore):
    """Reads and writes Delta tables through a backend's URI and storage options.

    Open tables are cached per URI and brought up to date before each use, which saves the
    ~13 ms table open on every call. Writes use their own cached table per URI and hold a
    per-table lock, so threads of one process commit one after another and never share a
    table object with a reader.

    Concurrent writers (other threads, processes or machines) are safe:

    * The table is created with ``DeltaTable.create(mode="ignore")`` before the first write,
      so first writers racing to create it all succeed.
    * A commit that finds a newer version rebases onto it inside delta-rs when the
      concurrent commits touched other partitions (``max_commit_retries`` times per attempt;
      the budget doubles, up to ``COMMIT_RETRIES_GROWTH_LIMIT`` x, when an attempt runs out,
      so it follows the number of writers actually seen).
    * A commit that lost against a writer of the same partitions (or a metadata change) is
      redone from a fresh snapshot after a backoff with full jitter (uniform in
      ``[0, min(max_backoff, backoff * 2**n)]``). The attempt budget starts at
      ``conflict_attempts`` and grows by one per commit of another writer seen meanwhile, up
      to ``max_conflict_attempts``; then :class:`WriteConflictError`. A lost attempt changes nothing visible (its data files
      are never referenced by the log), so the table always holds exactly one writer's rows
      for a partition.

    Args:
        backend: where the tables live.
        max_commit_retries: delta-rs' rebase retries per attempt (``None``: the default).
        conflict_attempts: our attempts per commit when no competing writer is seen.
        max_conflict_attempts: hard limit of attempts, however many writers compete.
        conflict_backoff_seconds: backoff window of the first retry (doubles per retry).
        max_backoff_seconds: largest backoff window.
    """

    name = "delta"

    def __init__(
        self,
        backend: IStorageBackend,
        *,
        max_commit_retries: int | None = DEFAULT_COMMIT_RETRIES,
        conflict_attempts: int = DEFAULT_CONFLICT_ATTEMPTS,
        max_conflict_attempts: int = DEFAULT_MAX_CONFLICT_ATTEMPTS,
        conflict_backoff_seconds: float = DEFAULT_CONFLICT_BACKOFF_SECONDS,
        max_backoff_seconds: float = DEFAULT_MAX_BACKOFF_SECONDS,
    ) -> None:
        super().__init__(backend)
        if max_commit_retries is None:
            max_commit_retries = DEFAULT_COMMIT_RETRIES
        if max_commit_retries < 0 or conflict_attempts < 1 or conflict_backoff_seconds < 0:
            raise ValueError(
                "max_commit_retries must be >= 0, conflict_attempts >= 1 and "
                "conflict_backoff_seconds >= 0."
            )
        self.max_commit_retries = int(max_commit_retries)
        self.conflict_attempts = int(conflict_attempts)
        self.max_conflict_attempts = max(int(max_conflict_attempts), self.conflict_attempts)
        self.conflict_backoff_seconds = float(conflict_backoff_seconds)
        self.max_backoff_seconds = float(max_backoff_seconds)
        self._tables: dict[str, DeltaTable] = {}
        self._lock = threading.RLock()
        self._writers: dict[str, DeltaTable] = {}
        self._writer_opened_at: dict[str, int] = {}
        self._write_locks: dict[str, threading.Lock] = {}
        self._scans = DeltaScanPlanner()

    # -- paths and errors -------------------------------------------------------------
    def uri(self, table: str) -> str:
        return self.backend.get_uri_for_identifier(table)

    def exists(self, table: str) -> bool:
        return self.backend.exists(f"{table}/_delta_log")

    def _translate(self, error: BaseException, table: str, action: str) -> StorageError:
        if isinstance(error, StorageError):
            return error
        mapped = self.backend.translate_error(error)
        if mapped is not None:
            return mapped
        from deltalake.exceptions import (
            CommitFailedError,
            DeltaProtocolError,
            TableNotFoundError,
        )
        from deltalake.exceptions import SchemaMismatchError as DeltaSchemaMismatch

        if isinstance(error, TableNotFoundError):
            return NotFoundError(f"No Delta table {table!r} in {self.backend.describe()}.")
        if isinstance(error, CommitFailedError):
            return WriteConflictError(
                f"Could not commit to Delta table {table!r}: concurrent writers kept "
                "conflicting. Retry the write; if this persists, lower the number of "
                "parallel writers to the same partitions."
            )
        if isinstance(error, DeltaSchemaMismatch):
            return SchemaMismatchError(
                f"The data does not match the schema of Delta table {table!r}: {error}"
            )
        if isinstance(error, DeltaProtocolError):
            return CorruptTableError(
                f"Delta table {table!r} uses a protocol this reader does not support: {error}"
            )
        return StorageError(f"Delta {action} of table {table!r} failed: {type(error).__name__}.")

    def _open_error(self, error: BaseException, table: str) -> StorageError:
        """A failed open: the backend's error if it has one, else the table is unreadable."""
        translated = self._translate(error, table, "open")
        if type(translated) is StorageError:
            return CorruptTableError(
                f"{table!r} in {self.backend.describe()} is not a readable Delta table "
                f"({type(error).__name__}). Restore it from a backup or move it aside."
            )
        return translated

    # -- tables -------------------------------------------------------------------------
    def open(self, table: str, *, refresh: bool = True) -> DeltaTable:
        """The cached DeltaTable for ``table``, updated to the latest version."""
        from deltalake import DeltaTable

        uri = self.uri(table)
        with self._lock:
            cached = self._tables.get(uri)
            try:
                if cached is None:
                    if not self.exists(table):
                        raise NotFoundError(
                            f"No Delta table {table!r} in {self.backend.describe()}."
                        )
                    cached = DeltaTable(uri, storage_options=self.backend.get_storage_options())
                    self._tables[uri] = cached
                elif refresh:
                    cached.update_incremental()
            except StorageError:
                raise
            except Exception as exc:  # delta-rs raises plain exceptions for corrupt logs
                self._tables.pop(uri, None)
                raise self._open_error(exc, table) from None
            return cached

    def open_version(
        self, table: str, version: int | None, timestamp: dt.datetime | None
    ) -> DeltaTable:
        from deltalake import DeltaTable

        if version is None and timestamp is None:
            return self.open(table)
        if not self.exists(table):
            raise NotFoundError(f"No Delta table {table!r} in {self.backend.describe()}.")
        try:
            snapshot = DeltaTable(
                self.uri(table),
                version=version,
                storage_options=self.backend.get_storage_options(),
            )
            if timestamp is not None:
                snapshot.load_as_version(timestamp)
            return snapshot
        except Exception as exc:
            raise NotFoundError(
                f"Delta table {table!r} has no version "
                f"{version if version is not None else timestamp.isoformat()}: "  # type: ignore[union-attr]
                f"{type(exc).__name__}."
            ) from None

    # -- writes ---------------------------------------------------------------------------
    def _write_lock(self, table: str) -> threading.Lock:
        with self._lock:
            return self._write_locks.setdefault(self.uri(table), threading.Lock())

    def _open_for_write(self, table: str, *, fresh: bool = False) -> DeltaTable:
        """The writer's own table object, at the latest version (call with the write lock)."""
        from deltalake import DeltaTable

        uri = self.uri(table)
        cached = None if fresh else self._writers.get(uri)
        try:
            if cached is not None:
                cached.update_incremental()
                # A table object that keeps committing gets slower (its in-memory log state
                # grows); a fresh open starts from the latest checkpoint instead.
                if cached.version() - self._writer_opened_at.get(uri, 0) >= WRITER_REOPEN_COMMITS:
                    cached = None
            if cached is None:
                cached = DeltaTable(uri, storage_options=self.backend.get_storage_options())
                self._writers[uri] = cached
                self._writer_opened_at[uri] = cached.version()
        except Exception as exc:
            self._writers.pop(uri, None)
            raise self._open_error(exc, table) from None
        return cached

    def _ensure_table(self, table: str, data_type: DataType, schema: pa.Schema) -> None:
        """Create the table before the first write, so concurrent first writers race safely:
        ``mode="ignore"`` makes every creator but the first a no-op, and a creator that loses
        the race for version 0 retries and then finds the table."""
        from deltalake import CommitProperties, DeltaTable

        if self.uri(table) in self._writers:
            return
        try:
            self._open_for_write(table)
            return
        except NotFoundError:
            pass  # no table yet, or a creation that was interrupted before version 0
        create_schema = storage_schema(data_type)
        for fld in schema:
            if fld.name not in create_schema.names:
                create_schema = create_schema.append(fld)

        def create(budget: int, read_versions: list[int]) -> int | None:
            self.backend.prepare_for_writes()
            # No rebase: a creator that loses the race for version 0 must not commit its
            # CREATE as version 1 (a second table id); it fails, retries and finds the table.
            DeltaTable.create(
                self.uri(table),
                create_schema,
                mode="ignore",
                partition_by=list(PARTITION_COLUMNS),
                name=table,
                description=f"cb-storage-dagster {data_type.value} market data",
                storage_options=self.backend.get_storage_options(),
                configuration=TABLE_CONFIGURATION,
                commit_properties=CommitProperties(max_commit_retries=0),
            )
            return None

        self._with_conflict_retries(create, table, "create")

    def _with_conflict_retries(
        self, attempt: Callable[[int, list[int]], int | None], table: str, what: str
    ) -> CommitReport:
        """Run ``attempt(max_commit_retries, read_versions) -> committed version`` until it
        commits, redoing lost conflicts after an exponential backoff with full jitter.

        ``attempt`` appends the version of the snapshot it starts from to ``read_versions``;
        the versions other writers committed between our attempts measure the concurrency,
        and each one adds an attempt to the budget (``conflict_attempts`` up to
        ``max_conflict_attempts``). Backend failures (unreachable, authentication) are not
        conflicts: they are raised at once, translated, since the backend client already
        retried them.
        """
        started = time.monotonic()
        budget = self.max_commit_retries
        conflicts: list[str] = []
        read_versions: list[int] = []
        allowed = self.conflict_attempts
        number = 0
        while True:
            number += 1
            try:
                version = attempt(budget, read_versions)
            except Exception as exc:
                # An unreachable backend can surface inside a CommitFailedError: not a conflict.
                backend_error = None if isinstance(exc, StorageError) else self.backend.translate_error(exc)
                reason = None if backend_error is not None else _conflict_reason(exc)
                if reason is None:
                    raise (backend_error or self._translate(exc, table, what)) from None
                conflicts.append(reason)
                with self._lock:  # the next attempt starts from a fresh snapshot
                    self._writers.pop(self.uri(table), None)
                    self._tables.pop(self.uri(table), None)
                if len(read_versions) >= 2:
                    rivals = read_versions[-1] - read_versions[0]
                    allowed = max(allowed, min(self.max_conflict_attempts, self.conflict_attempts + rivals))
                if number >= allowed:
                    break
                if reason == _EXHAUSTED:
                    budget = min(budget * 2 or 1, self.max_commit_retries * COMMIT_RETRIES_GROWTH_LIMIT or 1)
                window = min(self.max_backoff_seconds, self.conflict_backoff_seconds * 2 ** (number - 1))
                time.sleep(random.uniform(0, window))
                continue
            concurrent = 0
            if read_versions and version is not None:
                concurrent = max(version - read_versions[-1] - 1, 0)
            report = CommitReport(
                table=table, operation=what, version=version, attempts=number,
                conflicts=tuple(conflicts), concurrent_commits=concurrent,
                max_commit_retries=budget, seconds=round(time.monotonic() - started, 4),
            )
            logger.log(
                logging.INFO if conflicts else logging.DEBUG,
                "Delta %s of %r committed version %s after %d attempt(s) (%d concurrent commits rebased over)",
                what, table, version, number, concurrent, extra={"cb_commit": report},
            )
            return report
        logger.warning(
            "Delta %s of %r gave up after %d attempts: %s", what, table, len(conflicts), "; ".join(conflicts)
        )
        raise WriteConflictError(
            f"Could not commit the {what} of Delta table {table!r}: it lost against concurrent "
            f"writers {len(conflicts)} times in {time.monotonic() - started:.1f} s (last: "
            f"{conflicts[-1]}). Nothing was changed by this {what}; run it again. If this keeps "
            "happening, fewer parallel runs should write the same partitions at once (or raise "
            "max_conflict_attempts / max_commit_retries)."
        ) from None

    def write(self, table: str, data_type: DataType, data: pa.Table, scope: WriteScope) -> WriteResult:
        from deltalake import CommitProperties, write_deltalake

        data = sort_rows(data, ["exchange", "coin", "timestamp"], single_instrument=False)  # checks first
        predicate = scope.delta_predicate()
        scope_text = ",".join(scope.describe())[:4000]

        def commit_write(budget: int, read_versions: list[int]) -> int | None:
            delta_table = self._open_for_write(table)
            read_versions.append(delta_table.version())
            write_deltalake(
                delta_table,
                data,
                mode="overwrite",
                predicate=predicate,
                schema_mode="merge",
                partition_by=list(PARTITION_COLUMNS),
                commit_properties=CommitProperties(
                    max_commit_retries=budget, custom_metadata={"cb_storage.scope": scope_text}
                ),
            )
            return delta_table.version()

        with self._write_lock(table):
            self._ensure_table(table, data_type, data.schema)
            report = self._with_conflict_retries(commit_write, table, "write")
        return WriteResult(
            uri=self.uri(table),
            format=self.name,
            table=table,
            version=report.version,
            row_count=data.num_rows,
            rows_per_partition=rows_per_partition(data, scope),
            schema=data.schema,
        )

    def delete(self, table: str, predicate: str) -> WriteResult:
        from deltalake import CommitProperties

        def commit_delete(budget: int, read_versions: list[int]) -> int | None:
            delta_table = self._open_for_write(table)
            read_versions.append(delta_table.version())
            delta_table.delete(predicate, commit_properties=CommitProperties(max_commit_retries=budget))
            return delta_table.version()

        with self._write_lock(table):
            report = self._with_conflict_retries(commit_delete, table, "delete")
        return WriteResult(uri=self.uri(table), format=self.name, table=table, version=report.version, row_count=0)

    # -- reads ----------------------------------------------------------------------------
    def read(self, table: str, request: ReadRequest) -> pa.Table:
        """Rows of ``request``: files pruned from the log (partition values, ``date`` stats),
        read directly as Parquet; tables with deletion vectors or column mapping go
        through delta-rs' dataset instead."""
        try:
            delta_table = self.open_version(table, request.as_of_version, request.as_of_timestamp)
        except NotFoundError:
            if request.as_of_version is not None or request.as_of_timestamp is not None:
                raise
            return storage_schema(request.data_type).empty_table()
        try:
            if direct_read_supported(delta_table):
                return self._read_direct(table, delta_table, request)
            dataset = delta_table.to_pyarrow_dataset(partitions=_partition_filters(request.scope))
            row_filter = _combine(_scope_expression(request.scope), request.row_filter)
            _check_columns(request.columns, dataset.schema.names, table)
            return dataset.to_table(filter=row_filter, columns=request.columns)
        except StorageError:
            raise
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise SchemaMismatchError(f"Cannot apply the filters to table {table!r}: {exc}") from None
        except Exception as exc:
            raise self._translate(exc, table, "read") from None

    def _read_direct(self, table: str, delta_table: DeltaTable, request: ReadRequest) -> pa.Table:
        snapshot = self._scans.snapshot(delta_table)
        _check_columns(request.columns, snapshot.schema.names, table)
        plan = self._scans.plan(snapshot, request.scope)
        row_filter = _combine(scope_range_expression(request.scope), request.row_filter)
        return self._scans.read(
            delta_table, snapshot, plan, row_filter=row_filter, columns=request.columns,
            storage_options=self.backend.get_storage_options(),
        )

    def instruments(self, table: str) -> list[tuple[str, str]]:
        """``(exchange, coin)`` pairs from the log's partition values (cached per version)."""
        try:
            delta_table = self.open(table)
        except NotFoundError:
            return []
        if not direct_read_supported(delta_table):
            return sorted({(p["exchange"], p["coin"]) for p in delta_table.partitions()})
        actions = self._scans.snapshot(delta_table).actions
        pairs = actions.select(["partition.exchange", "partition.coin"])
        unique = pairs.group_by(pairs.column_names).aggregate([])
        return sorted(zip(unique.column(0).to_pylist(), unique.column(1).to_pylist()))

    def list_dates(self, table: str, exchange: str, coin: str) -> list[dt.date]:
        """Days from the log's per-file ``date`` statistics; files that span several days
        (after compaction) are resolved by reading only their ``date`` column (once per
        file: data files never change)."""
        try:
            delta_table = self.open(table)
        except NotFoundError:
            return []
        if direct_read_supported(delta_table):
            snapshot = self._scans.snapshot(delta_table)
            actions = snapshot.actions
        else:
            snapshot, actions = None, pa.table(delta_table.get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return []
        mask = pc.and_(
            pc.equal(actions.column("partition.exchange"), exchange),
            pc.equal(actions.column("partition.coin"), coin),
        )
        mine = actions.filter(mask)
        if mine.num_rows == 0:
            return []
        lo, hi = mine.column(f"min.{DATE_COLUMN}"), mine.column(f"max.{DATE_COLUMN}")
        one_day = pc.fill_null(pc.equal(lo, hi), False)
        days = set(lo.filter(one_day).to_pylist())
        spanning = mine.filter(pc.invert(one_day))
        if spanning.num_rows == 0:
            return sorted(days)
        if snapshot is not None:
            days |= self._scans.dates_of_files(
                delta_table, snapshot, spanning, self.backend.get_storage_options()
            )
            return sorted(days)
        dataset = delta_table.to_pyarrow_dataset(
            partitions=[("exchange", "=", exchange), ("coin", "=", coin)]
        )
        dates = dataset.to_table(columns=[DATE_COLUMN]).column(DATE_COLUMN)
        return sorted(pc.unique(dates).to_pylist())


def _check_columns(columns: list[str] | None, available: list[str], table: str) -> None:
    if columns is not None:
        missing = [c for c in columns if c not in available]
        if missing:
            raise SchemaMismatchError(f"Unknown columns {missing}; table {table!r} has {available}.")


def _partition_filters(scope: WriteScope | None) -> list[list[tuple[str, str, object]]] | None:
    """DNF partition filters (exchange, coin, month) that prune files before any read."""
    if scope is None or scope.whole_table:
        return None
    groups: dict[tuple[str, str], set[str]] = {}
    for slot in scope.slots:
        groups.setdefault((slot.exchange, slot.coin), set()).add(slot.month)
    dnf: list[list[tuple[str, str, object]]] = [
        [("exchange", "=", e), ("coin", "=", c), (MONTH_COLUMN, "in", sorted(months))]
        for (e, c), months in sorted(groups.items())
    ]
    if scope.days:
        dnf.append([(MONTH_COLUMN, "in", sorted({d.month for d in scope.days}))])
    for exchange, coin in sorted(scope.instruments):
        dnf.append([("exchange", "=", exchange), ("coin", "=", coin)])
    return dnf or None


def _scope_expression(scope: WriteScope | None) -> ds.Expression | None:
    if scope is None or scope.whole_table:
        return None
    by_instrument: dict[tuple[str, str], list[dt.date]] = {}
    for slot in scope.slots:
        by_instrument.setdefault((slot.exchange, slot.coin), []).append(slot.date)
    terms = [
        (ds.field("exchange") == e) & (ds.field("coin") == c)
        & ds.field(DATE_COLUMN).isin(pa.array(sorted(days), pa.date32()))
        for (e, c), days in sorted(by_instrument.items())
    ]
    if scope.days:
        terms.append(ds.field(DATE_COLUMN).isin(pa.array(sorted(d.date for d in scope.days), pa.date32())))
    for exchange, coin in sorted(scope.instruments):
        terms.append((ds.field("exchange") == exchange) & (ds.field("coin") == coin))
    expr = terms[0]
    for term in terms[1:]:
        expr = expr | term
    return expr


def _combine(a: ds.Expression | None, b: ds.Expression | None) -> ds.Expression | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


_EXHAUSTED = "more concurrent commits than the rebase budget covered"


def _conflict_reason(error: BaseException) -> str | None:
    """Why a commit lost against a concurrent writer (a fixed phrase, never the raw error
    text), or ``None`` if ``error`` is not a commit conflict."""
    from deltalake.exceptions import CommitFailedError

    text = str(error)
    if isinstance(error, CommitFailedError) and _RETRIES_EXHAUSTED.search(text):
        return _EXHAUSTED
    lowered = text.lower()
    if "concurrent" in lowered and ("delete" in lowered or "remove" in lowered):
        return "a concurrent writer removed files this commit replaces"
    if "concurrent" in lowered:
        return "a concurrent writer added data to the same partitions"
    if "metadata changed" in lowered:
        return "the table's metadata changed concurrently"
    if "protocol changed" in lowered:
        return "the table's protocol changed concurrently"
    if "already exists" in lowered and "version" in lowered:
        return "a concurrent writer took the same version"
    if isinstance(error, CommitFailedError):
        return "the commit conflicted with a concurrent writer"
    return None
