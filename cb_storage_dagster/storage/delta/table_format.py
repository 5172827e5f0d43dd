"""Delta Lake format: one table per data type, predicate overwrites, pruned scans.

Layout: partition columns ``exchange / coin / month`` with ``date`` a data column, so a
year of daily writes is 12 partitions per instrument (compactable into a few files) while
one day is still replaced exactly with ``... AND month = '2024-01' AND date IN ('2024-01-02')``.
Large universes use the ``exchange`` layout (``exchange / month``, coin a sorted data column;
see :mod:`..layout`), chosen when a table is created and kept for its life.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from cb_storage_dagster.domain.keys import DataType
from cb_storage_dagster.domain.results import WriteResult
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.retry import RetryPolicy
from cb_storage_dagster.settings import DEFAULT_CHECKPOINT_INTERVAL
from cb_storage_dagster.storage.delta import listing
from cb_storage_dagster.storage.delta import read as delta_read
from cb_storage_dagster.storage.delta import write as delta_write
from cb_storage_dagster.storage.delta.commits import (
    COMMIT_RETRIES_GROWTH_LIMIT,
    DEFAULT_COMMIT_RETRIES,
    DEFAULT_CONFLICT_ATTEMPTS,
    DEFAULT_CONFLICT_BACKOFF_SECONDS,
    DEFAULT_MAX_BACKOFF_SECONDS,
    DEFAULT_MAX_CONFLICT_ATTEMPTS,
)
from cb_storage_dagster.storage.delta.scan import DeltaScanPlanner
from cb_storage_dagster.storage.delta.stream_write import write_stream
from cb_storage_dagster.storage.delta.tables import DeltaTables
from cb_storage_dagster.storage.format import FormatStore, ReadRequest
from cb_storage_dagster.storage.layout import DEFAULT_LAYOUT, Layout, parse_layout

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from cb_storage_dagster.storage.interfaces import IStorageBackend


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

    The parts: :mod:`.tables` (caches, opening, creation, layout), :mod:`.commits` (the
    retry loop's report), :mod:`.write`, :mod:`.read` (fast path or DataFusion) and
    :mod:`.listing`.

    Args:
        backend: where the tables live.
        max_commit_retries: delta-rs' rebase retries per attempt (``None``: the default).
        conflict_attempts: our attempts per commit when no competing writer is seen.
        max_conflict_attempts: hard limit of attempts, however many writers compete.
        conflict_backoff_seconds: backoff window of the first retry (doubles per retry).
        max_backoff_seconds: largest backoff window.
        default_layout: the layout of tables this format creates (``"instrument"`` or
            ``"exchange"``); an existing table keeps its own.
        checkpoint_interval: a checkpoint at least every this many commits (see
            :class:`.tables.DeltaTables`).

    >>> import tempfile
    >>> from cb_storage_dagster import LocalFileBackend
    >>> delta = DeltaFormat(LocalFileBackend(tempfile.mkdtemp()), default_layout="exchange")
    >>> delta.exists("ohlcv"), delta.layout("ohlcv"), delta.default_layout
    (False, None, 'exchange')
    """

    name = delta_write.FORMAT

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
        checkpoint_interval: int = DEFAULT_CHECKPOINT_INTERVAL,
    ) -> None:
        super().__init__(backend)
        policy = RetryPolicy(
            attempts=int(conflict_attempts),
            max_attempts=int(max_conflict_attempts),
            rebase_retries=int(DEFAULT_COMMIT_RETRIES if max_commit_retries is None else max_commit_retries),
            rebase_growth_limit=COMMIT_RETRIES_GROWTH_LIMIT,
            backoff_seconds=float(conflict_backoff_seconds),
            max_backoff_seconds=float(max_backoff_seconds),
        )
        self.tables = DeltaTables(
            backend, retry_policy=policy, default_layout=parse_layout(default_layout) or DEFAULT_LAYOUT,
            checkpoint_interval=checkpoint_interval,
        )
        self._scans = DeltaScanPlanner()

    @property
    def retry_policy(self) -> RetryPolicy:
        """How hard each commit tries (built from the constructor's arguments)."""
        return self.tables.retry_policy

    @property
    def default_layout(self) -> Layout:
        """The layout of the tables this format creates."""
        return self.tables.default_layout

    @property
    def _writers(self) -> dict[str, DeltaTable]:
        """The writers' cached tables per URI (tests watch when one is reopened)."""
        return self.tables.writers

    # -- tables -------------------------------------------------------------------------
    def uri(self, table: str) -> str:
        return self.tables.uri(table)

    def exists(self, table: str, *, reading_since: float | None = None) -> bool:
        """Whether ``table`` has a Delta log (``reading_since``: see :meth:`.tables.DeltaTables.exists`)."""
        return self.tables.exists(table, reading_since=reading_since)

    def open(self, table: str, *, refresh: bool = True) -> DeltaTable:
        """The cached DeltaTable for ``table``, updated to the latest version (``refresh``)."""
        return self.tables.open(table, refresh=refresh)

    def open_version(self, table: str, version: int | None, timestamp: dt.datetime | None) -> DeltaTable:
        """``table`` at ``version`` or as of ``timestamp`` (the latest if neither)."""
        return self.tables.open_version(table, version, timestamp)

    def layout(self, table: str) -> Layout | None:
        """The layout ``table`` was created with (``None``: no table, or partition columns
        of neither layout)."""
        return self.tables.layout(table)

    # -- writes ---------------------------------------------------------------------------
    def write(
        self, table: str, data_type: DataType, data: pa.Table, scope: WriteScope, *, layout: Layout | None = None
    ) -> WriteResult:
        """Replace exactly ``scope`` with ``data`` in one commit; a new table is created in
        ``layout`` (default: ``default_layout``)."""
        return delta_write.write(self.tables, table, data_type, data, scope, layout)

    def write_stream(
        self, table: str, data_type: DataType, chunks: Callable[[], Iterator[pa.Table]], scope: WriteScope,
        *, layout: Layout | None = None,
    ) -> WriteResult:
        """Replace exactly ``scope`` with streamed chunks in one commit (see :func:`.stream_write.write_stream`)."""
        return write_stream(self.tables, table, data_type, chunks, scope, layout)

    def merge(
        self, table: str, data_type: DataType, data: pa.Table, scope: WriteScope, key_columns: tuple[str, ...]
    ) -> WriteResult:
        """Upsert in one commit (see :func:`.write.merge`)."""
        return delta_write.merge(self.tables, table, data_type, data, scope, key_columns)

    def delete(self, table: str, predicate: str) -> WriteResult:
        """Delete the rows matching ``predicate`` in one commit."""
        return delta_write.delete(self.tables, table, predicate)

    # -- reads ----------------------------------------------------------------------------
    def read(self, table: str, request: ReadRequest) -> pa.Table:
        """Rows of ``request``. Tables the fast path implements
        (:func:`~.fast_path.fast_path_refusal`) are pruned from the log and read directly as
        Parquet; every other table is read by delta-rs' DataFusion engine with the same
        scope, filters, projection and version."""
        return delta_read.read(self.tables, self._scans, table, request)

    def instruments(self, table: str) -> list[tuple[str, str]]:
        """``(exchange, coin)`` pairs with data (see :func:`.listing.instruments`)."""
        return listing.instruments(self.tables, self._scans, table)

    def list_dates(self, table: str, exchange: str, coin: str) -> list[dt.date]:
        """UTC days with data for one instrument (see :func:`.listing.list_dates`)."""
        return listing.list_dates(self.tables, self._scans, table, exchange, coin)


__all__ = ["DeltaFormat"]
