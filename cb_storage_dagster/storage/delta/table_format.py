"""Delta Lake format: one table per data type, predicate overwrites, pruned scans.

Layout: partition columns ``exchange / coin / month`` with ``date`` a data column, so a
year of daily writes is 12 partitions per instrument (compactable into a few files) while
one day is still replaced exactly with ``... AND month = '2024-01' AND date IN ('2024-01-02')``.
Large universes use the ``exchange`` layout (``exchange / month``, coin a sorted data column;
see :mod:`..layout`), chosen when a table is created and kept for its life.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from cb_storage_dagster.domain.errors import (
    CorruptTableError,
    LayoutMismatchError,
    NotFoundError,
    SchemaMismatchError,
    StorageError,
)
from cb_storage_dagster.domain.keys import DataType
from cb_storage_dagster.domain.results import WriteResult
from cb_storage_dagster.domain.schemas import DATE_COLUMN, MONTH_COLUMN, storage_schema
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.retry import Attempt, RetryPolicy, run_with_conflict_retries
from cb_storage_dagster.storage.delta import read_sql as delta_sql
from cb_storage_dagster.storage.delta.errors import translate_delta_error
from cb_storage_dagster.storage.delta.scan import (
    DeltaScanPlanner,
    coin_mask,
    fast_path_refusal,
    scope_range_expression,
    sort_rows,
)
from cb_storage_dagster.storage.format import FormatStore, ReadRequest, rows_per_partition
from cb_storage_dagster.storage.layout import (
    DEFAULT_LAYOUT,
    EXCHANGE_LAYOUT_ROW_GROUP_ROWS,
    Layout,
    layout_of,
    parse_layout,
    partition_columns,
)
from cb_storage_dagster.storage.sql import MERGE_SOURCE, MERGE_TARGET, delta_predicate, merge_predicates

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from cb_storage_dagster.storage.interfaces import IStorageBackend

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


@dataclass(frozen=True)
class CommitReport:
    """How one commit went. Logged by this module's logger (DEBUG, or INFO after a lost
    conflict) with ``extra={"cb_commit": report}``.

    Attributes:
        table: the table name.
        operation: ``create``, ``write``, ``merge`` or ``delete``.
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
      to ``max_conflict_attempts``; then :class:`WriteConflictError`. A lost attempt changes
      nothing visible (its data files are never referenced by the log), so the table always
      holds exactly one writer's rows for a partition. The loop and the decision of what is a
      conflict live in :mod:`cb_storage_dagster.retry` (shared with maintenance).

    Args:
        backend: where the tables live.
        max_commit_retries: delta-rs' rebase retries per attempt (``None``: the default).
        conflict_attempts: our attempts per commit when no competing writer is seen.
        max_conflict_attempts: hard limit of attempts, however many writers compete.
        conflict_backoff_seconds: backoff window of the first retry (doubles per retry).
        max_backoff_seconds: largest backoff window.
        default_layout: the layout of tables this format creates (``"instrument"`` or
            ``"exchange"``); an existing table keeps its own.
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
        default_layout: Layout = DEFAULT_LAYOUT,
    ) -> None:
        super().__init__(backend)
        self.default_layout: Layout = parse_layout(default_layout) or DEFAULT_LAYOUT
        if max_commit_retries is None:
            max_commit_retries = DEFAULT_COMMIT_RETRIES
        self.retry_policy = RetryPolicy(
            attempts=int(conflict_attempts),
            max_attempts=int(max_conflict_attempts),
            rebase_retries=int(max_commit_retries),
            rebase_growth_limit=COMMIT_RETRIES_GROWTH_LIMIT,
            backoff_seconds=float(conflict_backoff_seconds),
            max_backoff_seconds=float(max_backoff_seconds),
        )
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
        return translate_delta_error(error, table=table, action=action, backend=self.backend)

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
            error = self._translate(exc, table, "open")
        if type(error) is not StorageError:
            raise error  # an outage, refused credentials, an unsupported feature: not "no version"
        # delta-rs names a missing version only in its message; the latest version tells.
        latest = self.open(table).version()
        wanted = version if version is not None else timestamp.isoformat()  # type: ignore[union-attr]
        raise NotFoundError(
            f"Delta table {table!r} has no version {wanted} (its latest version is {latest}, and "
            "versions older than the log retention are cleaned up). Ask for an existing version."
        )

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

    def layout(self, table: str) -> Layout | None:
        """The layout ``table`` was created with (``None``: no table, or partition columns
        of neither layout)."""
        try:
            return layout_of(self.open(table).metadata().partition_columns)
        except NotFoundError:
            return None

    def _check_layout(self, table: str, delta_table: DeltaTable, requested: Layout | None) -> None:
        """An explicitly requested layout must be the table's own: a table never changes layout."""
        if requested is None:
            return
        columns = list(delta_table.metadata().partition_columns)
        if layout_of(columns) != requested:
            raise LayoutMismatchError(
                f"Delta table {table!r} is partitioned by {columns} "
                f"({layout_of(columns) or 'a layout of its own'}), not in the {requested!r} layout, "
                "and a table keeps the layout it was created with. Nothing was written. Drop the "
                "layout argument to write in the table's layout, or write to another table name."
            )

    def _ensure_table(
        self, table: str, data_type: DataType, schema: pa.Schema, layout: Layout | None = None
    ) -> None:
        """Create the table before the first write, so concurrent first writers race safely:
        ``mode="ignore"`` makes every creator but the first a no-op, and a creator that loses
        the race for version 0 retries and then finds the table.

        ``layout`` (default: ``default_layout``) decides the partition columns of a new
        table only; an explicit ``layout`` that differs from an existing table's raises
        :class:`LayoutMismatchError`."""
        from deltalake import CommitProperties, DeltaTable

        cached = self._writers.get(self.uri(table))
        if cached is not None:
            self._check_layout(table, cached, layout)
            return
        try:
            self._check_layout(table, self._open_for_write(table), layout)
            return
        except NotFoundError:
            pass  # no table yet, or a creation that was interrupted before version 0
        new_layout = layout or self.default_layout
        create_schema = storage_schema(data_type)
        for fld in schema:
            if fld.name not in create_schema.names:
                create_schema = create_schema.append(fld)

        def create(attempt: Attempt) -> int | None:
            self.backend.prepare_for_writes()
            # No rebase: a creator that loses the race for version 0 must not commit its
            # CREATE as version 1 (a second table id); it fails, retries and finds the table.
            DeltaTable.create(
                self.uri(table),
                create_schema,
                mode="ignore",
                partition_by=list(partition_columns(new_layout)),
                name=table,
                description=f"cb-storage-dagster {data_type.value} market data",
                storage_options=self.backend.get_storage_options(),
                configuration=TABLE_CONFIGURATION,
                commit_properties=CommitProperties(max_commit_retries=0),
            )
            return None

        self._with_conflict_retries(create, table, "create")
        # A concurrent creator may have won with another layout: an explicit request is checked.
        self._check_layout(table, self._open_for_write(table), layout)

    def _with_conflict_retries(
        self, attempt: Callable[[Attempt], int | None], table: str, what: str
    ) -> CommitReport:
        """Run ``attempt`` under the retry policy (:func:`~cb_storage_dagster.retry.run_with_conflict_retries`):
        a lost conflict is redone from a fresh snapshot; anything else is raised, translated."""

        def forget_snapshots() -> None:  # the next attempt starts from a fresh snapshot
            with self._lock:
                self._writers.pop(self.uri(table), None)
                self._tables.pop(self.uri(table), None)

        outcome = run_with_conflict_retries(
            attempt,
            policy=self.retry_policy,
            translate=lambda exc: self._translate(exc, table, what),
            what=what,
            subject=f"Delta table {table!r}",
            on_conflict=forget_snapshots,
        )
        version = outcome.value
        concurrent = 0
        if outcome.read_version is not None and version is not None:
            concurrent = max(version - outcome.read_version - 1, 0)
        report = CommitReport(
            table=table, operation=what, version=version, attempts=outcome.attempts,
            conflicts=outcome.conflicts, concurrent_commits=concurrent,
            max_commit_retries=outcome.rebase_retries, seconds=outcome.seconds,
        )
        logger.log(
            logging.INFO if outcome.conflicts else logging.DEBUG,
            "Delta %s of %r committed version %s after %d attempt(s) (%d concurrent commits rebased over)",
            what, table, version, outcome.attempts, concurrent, extra={"cb_commit": report},
        )
        return report

    def write(
        self,
        table: str,
        data_type: DataType,
        data: pa.Table,
        scope: WriteScope,
        *,
        layout: Layout | None = None,
    ) -> WriteResult:
        """Replace exactly ``scope`` with ``data`` in one commit; a new table is created in
        ``layout`` (default: ``default_layout``)."""
        from deltalake import CommitProperties, WriterProperties, write_deltalake

        # Sources usually deliver rows in this order already: sort_rows checks first, which is
        # far cheaper than a three-key sort of an exchange-day (2.9 M rows at 2,000 instruments).
        data = sort_rows(data, ["exchange", "coin", "timestamp"], single_instrument=False)
        predicate = delta_predicate(scope)
        scope_text = ",".join(scope.describe())[:4000]

        def commit_write(attempt: Attempt) -> int | None:
            delta_table = self._open_for_write(table)
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

        with self._write_lock(table):
            self._ensure_table(table, data_type, data.schema, parse_layout(layout))
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

    def merge(
        self,
        table: str,
        data_type: DataType,
        data: pa.Table,
        scope: WriteScope,
        key_columns: tuple[str, ...],
    ) -> WriteResult:
        """Upsert ``data`` (normalized, in ``scope``, unique on ``key_columns``) in one commit.

        Rows whose key is stored are updated when a value differs; new keys are inserted;
        nothing is deleted. The target side is restricted to ``scope`` so delta-rs prunes to
        its files. A merge that changes no row commits nothing (the version stays). Lost
        conflicts are redone from a fresh snapshot like every other write.
        """
        from deltalake import CommitProperties

        data = data.sort_by([("exchange", "ascending"), ("coin", "ascending"), ("timestamp", "ascending")])
        values = [c for c in data.column_names if c not in key_columns and c not in (DATE_COLUMN, MONTH_COLUMN)]
        match, changed = merge_predicates(key_columns, values, scope)
        scope_text = ",".join(scope.describe())[:4000]
        metrics: dict[str, int] = {}

        def commit_merge(attempt: Attempt) -> int | None:
            delta_table = self._open_for_write(table)
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

        with self._write_lock(table):
            self._ensure_table(table, data_type, data.schema)
            report = self._with_conflict_retries(commit_merge, table, "merge")
        return WriteResult(
            uri=self.uri(table),
            format=self.name,
            table=table,
            version=report.version,
            row_count=data.num_rows,
            rows_per_partition=rows_per_partition(data, scope),
            schema=data.schema,
            mode="merge",
            rows_inserted=int(metrics.get("num_target_rows_inserted", 0)),
            rows_updated=int(metrics.get("num_target_rows_updated", 0)),
        )

    def delete(self, table: str, predicate: str) -> WriteResult:
        from deltalake import CommitProperties

        def commit_delete(attempt: Attempt) -> int | None:
            delta_table = self._open_for_write(table)
            attempt.started_from(delta_table.version())
            delta_table.delete(predicate, commit_properties=CommitProperties(max_commit_retries=attempt.rebase_retries))
            return delta_table.version()

        with self._write_lock(table):
            report = self._with_conflict_retries(commit_delete, table, "delete")
        return WriteResult(uri=self.uri(table), format=self.name, table=table, version=report.version, row_count=0)

    # -- reads ----------------------------------------------------------------------------
    def read(self, table: str, request: ReadRequest) -> pa.Table:
        """Rows of ``request``. Tables the fast path implements (:func:`fast_path_refusal`)
        are pruned from the log and read directly as Parquet; every other table is read by
        delta-rs' DataFusion engine with the same scope, filters, projection and version."""
        try:
            delta_table = self.open_version(table, request.as_of_version, request.as_of_timestamp)
        except NotFoundError:
            if request.as_of_version is not None or request.as_of_timestamp is not None:
                raise
            return storage_schema(request.data_type).empty_table()
        try:
            refusal = fast_path_refusal(delta_table)
            if refusal is None:
                return self._read_direct(table, delta_table, request)
            logger.debug("Reading Delta table %r with DataFusion: %s", table, refusal)
            return delta_sql.read(delta_table, request, table)
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

    def _listing(self, table: str, action: Callable[[DeltaTable], T]) -> T | None:
        """``action`` on the latest version (``None`` if there is no table), errors translated."""
        try:
            delta_table = self.open(table)
        except NotFoundError:
            return None
        try:
            return action(delta_table)
        except StorageError:
            raise
        except Exception as exc:
            raise self._translate(exc, table, "listing") from None

    def instruments(self, table: str) -> list[tuple[str, str]]:
        """``(exchange, coin)`` pairs: from the log's partition values (cached per version)
        on the fast path, else a ``SELECT DISTINCT`` through DataFusion."""

        def pairs_of(delta_table: DeltaTable) -> list[tuple[str, str]]:
            if fast_path_refusal(delta_table) is not None:
                return delta_sql.instruments(delta_table, table)
            if layout_of(delta_table.metadata().partition_columns) == "exchange":
                return self._exchange_layout_instruments(delta_table)
            actions = self._scans.snapshot(delta_table).actions
            if actions.num_rows == 0:
                return []
            pairs = actions.select(["partition.exchange", "partition.coin"])
            unique = pairs.group_by(pairs.column_names).aggregate([])
            return sorted(zip(unique.column(0).to_pylist(), unique.column(1).to_pylist()))

        return self._listing(table, pairs_of) or []

    def _exchange_layout_instruments(self, delta_table: DeltaTable) -> list[tuple[str, str]]:
        """Exchange layout: coins are data, so each file's distinct coins are read once (the
        ``coin`` column only, as a dictionary) and cached per file. Fast-path tables only."""
        actions = self._scans.snapshot(delta_table).actions
        out: set[tuple[str, str]] = set()
        for exchange in pc.unique(actions.column("partition.exchange")).to_pylist():
            mine = actions.filter(pc.equal(actions.column("partition.exchange"), exchange))
            pairs = self._scans.coin_days_of_files(delta_table, mine, self.backend.get_storage_options())
            out.update((exchange, c) for c in pc.unique(pairs.column("coin")).to_pylist())
        return sorted(out)

    def _exchange_layout_dates(self, delta_table: DeltaTable, exchange: str, coin: str) -> list[dt.date]:
        """Exchange layout: the files whose coin statistics admit ``coin``, resolved to the
        days they hold for it (a file's coin range may skip coins: never inferred). Fast-path
        tables only."""
        actions = self._scans.snapshot(delta_table).actions
        if actions.num_rows == 0:
            return []
        mine = actions.filter(pc.and_(pc.equal(actions.column("partition.exchange"), exchange),
                                      coin_mask(actions, coin)))
        pairs = self._scans.coin_days_of_files(delta_table, mine, self.backend.get_storage_options())
        days = pairs.filter(pc.equal(pairs.column("coin"), coin)).column(DATE_COLUMN)
        return sorted(pc.unique(days).to_pylist())

    def list_dates(self, table: str, exchange: str, coin: str) -> list[dt.date]:
        """Days from the log's per-file ``date`` statistics on the fast path; files that span
        several days (after compaction) are resolved by reading only their ``date`` column
        (once per file: data files never change). Other tables: DataFusion."""

        def dates_of(delta_table: DeltaTable) -> list[dt.date]:
            if fast_path_refusal(delta_table) is not None:
                return delta_sql.list_dates(delta_table, table, exchange, coin)
            if layout_of(delta_table.metadata().partition_columns) == "exchange":
                return self._exchange_layout_dates(delta_table, exchange, coin)
            snapshot = self._scans.snapshot(delta_table)
            actions = snapshot.actions
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
            if spanning.num_rows:
                days |= self._scans.dates_of_files(
                    delta_table, snapshot, spanning, self.backend.get_storage_options()
                )
            return sorted(days)

        return self._listing(table, dates_of) or []


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
