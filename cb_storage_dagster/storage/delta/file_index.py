"""The active files of a Delta table, stamped and kept beside the log, so that a new process
reads the table without opening it through delta-rs.

Opening a table through delta-rs replays its log: ``_last_checkpoint``, a listing, the
checkpoint Parquet (ranged reads one after another) and the JSON commits since, then every
add action is loaded (319 ms at 60,000 files locally; ~16 round trips, ~370 ms behind a
20 ms round trip). A read of one instrument needs only the few columns the scan planner
prunes with (:mod:`.pruning`). Those are kept in ``<table>/_cb_registry/files.parquet``,
stamped with the version they describe, the SHA-256 of that version's commit file, the
table id, its Arrow schema and partition columns:

* **Written** with the checkpoints: by the writers after a commit whose version is a
  multiple of the checkpoint interval (version 0 included, so every table the product
  creates has one), and by the maintenance checkpoint. Only for a table version the fast
  path reads (:func:`.fast_path.fast_path_refusal`), best effort (a failure only means the
  next new process opens the table through delta-rs).
* **Read** by :meth:`FileIndexes.current`: one listing of ``_delta_log`` (the latest
  version) and the index, fetched together; then the stamped commit's fingerprint (it must
  match, :mod:`.commit_stamp`: a table deleted and re-created up to the same version has
  other commit bytes) and every commit after it, fetched concurrently, replayed on top: ``add`` and ``remove`` actions,
  whoever wrote them. A commit with anything else that changes how files are read (a
  ``metaData`` or ``protocol`` action, a deletion vector, an action this module does not
  know) or a commit missing from the log (cleaned up) means: no answer, the caller opens the
  table through delta-rs. The answer is never for a version other than the latest listed.
* **Shared with the catalog**: a read's first look at a table (is it Delta?) goes through
  :meth:`FileIndexes.current`, and the read uses that listing without probing again
  (``listed_since``): a new process's read costs one round trip fewer.
* **Kept warm** per process: once replayed, the next read checks only for the next commit
  file (:class:`.locations.CommitProbe`: one ``stat`` or ``HEAD``) and replays what came.

>>> import tempfile
>>> from cb_storage_dagster import LocalFileBackend
>>> FileIndexes(LocalFileBackend(tempfile.mkdtemp())).current("ohlcv") is None
True
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from cb_storage_dagster.domain.errors import (
    AuthenticationError,
    BackendUnavailableError,
    NotFoundError,
    StorageError,
)
from cb_storage_dagster.domain.schemas import DATE_COLUMN
from cb_storage_dagster.storage.delta.commit_stamp import commit_stamp, matches
from cb_storage_dagster.storage.delta.fast_path import fast_path_refusal
from cb_storage_dagster.storage.delta.fetch_pool import map_concurrently
from cb_storage_dagster.storage.delta.locations import READER_FULL_REFRESH_SECONDS, CommitProbe, commit_file
from cb_storage_dagster.storage.delta.log_replay import Unreplayable, replay
from cb_storage_dagster.storage.delta.scan import Snapshot

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from cb_storage_dagster.storage.interfaces import IStorageBackend

logger = logging.getLogger(__name__)

__all__ = ["FILE_INDEX_OBJECT", "FileIndexes", "IndexedTable", "log_versions"]

FILE_INDEX_OBJECT = "_cb_registry/files.parquet"
"""Where a table's stamped file index lives, relative to the table's folder."""
STATISTICS_COLUMNS = ("timestamp", DATE_COLUMN, "coin")
"""The data columns whose per-file min/max the planner prunes with (:mod:`.pruning`)."""
_COMMIT = re.compile(r"(?:^|/)(\d{20})\.json$")


def log_versions(backend: IStorageBackend, table: str) -> set[int]:
    """The versions that have a commit file in ``table``'s log (one listing)."""
    return {int(m.group(1)) for item in backend.list_items(f"{table}/_delta_log") if (m := _COMMIT.search(item))}


@dataclass(frozen=True)
class IndexedTable:
    """One table version as the index describes it: what the scan planner needs."""

    version: int
    table_id: str
    snapshot: Snapshot


class FileIndexes:
    """Stamped file indexes of the Delta tables under one backend (see the module docstring).

    Args:
        backend: where the tables live.
    """

    def __init__(self, backend: IStorageBackend) -> None:
        self.backend = backend
        self._warm: dict[str, tuple[IndexedTable, float]] = {}
        self._log_listed: dict[str, tuple[bool, float]] = {}
        self._lock = threading.Lock()
        self._probe = CommitProbe()

    # -- reading --------------------------------------------------------------------------
    def current(self, table: str, *, listed_since: float | None = None) -> IndexedTable | None:
        """The latest version of ``table`` from its index and the commits after it, or
        ``None`` (no table, no usable index, or a commit the replay does not implement: open
        the table through delta-rs).

        ``listed_since``: when the caller's read began (``time.monotonic()``); an answer from
        a listing of the log made since then is as fresh as a probe and is given without one
        (the catalog's first look at a table and the read that follows share one listing)."""
        with self._lock:
            warm = self._warm.get(table)
        if warm is not None and ((listed_since is not None and warm[1] >= listed_since)
                                 or not self._moved_on(table, *warm)):
            return warm[0]
        listed_at = time.monotonic()
        try:
            indexed = self._replayed(table, warm[0] if warm is not None else None, listed_at)
        except (BackendUnavailableError, AuthenticationError):
            raise  # the store cannot be read at all: delta-rs would fail the same way, later
        except (StorageError, Unreplayable, ValueError, KeyError, TypeError, pa.ArrowException) as error:
            logger.debug("No file index for %r (%s: %s); opening it through delta-rs.", table,
                         type(error).__name__, error)
            indexed = None
        with self._lock:
            if indexed is None:
                self._warm.pop(table, None)
            else:
                self._warm[table] = (indexed, listed_at)
        return indexed

    def log_listed(self, table: str, *, since: float) -> bool | None:
        """Whether ``table``'s log had commits when :meth:`current` last listed it, if that
        listing was made since ``since`` (``None``: no such listing)."""
        with self._lock:
            found = self._log_listed.get(table)
        return found[0] if found is not None and found[1] >= since else None

    def forget(self, table: str) -> None:
        """Drop the process's warm index of ``table`` (the next read lists the log)."""
        with self._lock:
            self._warm.pop(table, None)

    def _moved_on(self, table: str, indexed: IndexedTable, listed_at: float) -> bool:
        if time.monotonic() - listed_at > READER_FULL_REFRESH_SECONDS:
            return True
        try:
            return self._probe.exists(self.backend.get_uri_for_identifier(table), indexed.version + 1,
                                      self.backend.get_storage_options())
        except Exception:  # noqa: BLE001 - the listing that follows reports a real failure
            return True

    def _replayed(self, table: str, warm: IndexedTable | None, listed_at: float) -> IndexedTable | None:
        if warm is None:  # a new process: the listing and the index are fetched together
            versions, stored = map_concurrently(
                lambda job: job(), [lambda: log_versions(self.backend, table), lambda: self._load(table)])
        else:
            versions, stored = log_versions(self.backend, table), None
        with self._lock:
            self._log_listed[table] = (bool(versions), listed_at)
        if not versions:
            return None
        latest = max(versions)
        if warm is not None and warm.version <= latest:
            base, stamp = warm, None
        elif stored is not None:
            base, stamp = stored[0], stored[1]
            if base.version > latest:
                return None  # the table was re-created with a shorter log
        else:
            return None
        needed = list(range(base.version + 1, latest + 1))
        if any(v not in versions for v in needed + ([base.version] if stamp is not None else [])):
            return None  # cleaned up past the stamp: only a checkpoint can tell
        jobs = [lambda v=v: self.backend.load_bytes(f"{table}/{commit_file(v)}") for v in needed]
        if stamp is not None:  # the stamp is checked while the later commits load
            jobs.append(lambda: matches(self.backend, table, base.version, stamp))
        loaded = map_concurrently(lambda job: job(), jobs)
        if stamp is not None and not loaded.pop():
            return None  # another table's log under the same name
        commits = dict(zip(needed, loaded))
        if not commits:
            return base
        actions = replay(base.snapshot.actions, [commits[v] for v in sorted(commits)])
        snapshot = Snapshot(actions, base.snapshot.schema, base.snapshot.partition_columns,
                            (base.snapshot.key[0], base.table_id, latest))
        return IndexedTable(latest, base.table_id, snapshot)

    def _load(self, table: str) -> tuple[IndexedTable, dict[bytes, bytes]] | None:
        try:
            raw = self.backend.load_bytes(f"{table}/{FILE_INDEX_OBJECT}")
        except NotFoundError:
            return None
        try:
            data = pq.read_table(io.BytesIO(raw))
            meta = data.schema.metadata or {}
            version = int(meta[b"cb.version"])
            table_id = meta[b"cb.table_id"].decode()
            partition_columns = tuple(json.loads(meta[b"cb.partition_columns"]))
            schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(meta[b"cb.schema"])))
        except (pa.ArrowException, KeyError, ValueError):
            return None  # unreadable: the next stored index replaces it
        actions = data.replace_schema_metadata(None)
        uri = self.backend.get_uri_for_identifier(table)
        return IndexedTable(version, table_id, Snapshot(actions, schema, partition_columns, (uri, table_id, version))), meta

    # -- writing --------------------------------------------------------------------------
    def store(self, table: str, delta_table: DeltaTable) -> bool:
        """Store the index of ``delta_table``'s loaded version (best effort: returns whether
        it did). Tables the fast path does not read get none."""
        version = delta_table.version()
        try:
            if fast_path_refusal(delta_table) is not None:
                return False
            stamp = commit_stamp(self.backend, table, version)
            if stamp is None:
                return False  # the commit was cleaned up meanwhile: a later index covers it
            actions = index_columns(pa.table(delta_table.get_add_actions(flatten=True)))
            schema = pa.schema(delta_table.schema().to_arrow())
            metadata = delta_table.metadata()
            stamp |= {
                "cb.version": str(version),
                "cb.table_id": metadata.id,
                "cb.partition_columns": json.dumps(list(metadata.partition_columns)),
                "cb.schema": base64.b64encode(schema.serialize().to_pybytes()).decode(),
            }
            sink = io.BytesIO()
            pq.write_table(actions.replace_schema_metadata(stamp), sink, compression="zstd")
            self.backend.save_bytes(f"{table}/{FILE_INDEX_OBJECT}", sink.getvalue())
            return True
        except NotFoundError:
            return False  # the commit was cleaned up meanwhile: a later index covers it
        except StorageError as error:
            logger.warning("File index of %r not stored for version %d (%s).", table, version,
                           type(error).__name__)
            return False


def index_columns(actions: pa.Table) -> pa.Table:
    """The columns of delta-rs' flattened add actions that the index keeps: path, size,
    record count, partition values and the min/max of :data:`STATISTICS_COLUMNS`."""
    keep = ["path", "size_bytes", "num_records"]
    keep += [name for name in actions.column_names if name.startswith("partition.")]
    keep += [f"{bound}.{c}" for c in STATISTICS_COLUMNS for bound in ("min", "max")
             if f"{bound}.{c}" in actions.column_names]
    selected = actions.select([name for name in keep if name in actions.column_names])
    nullable = pa.schema([field.with_nullable(True) for field in selected.schema])  # replayed rows may lack a value
    return selected.cast(nullable)
