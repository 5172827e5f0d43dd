"""Checkpoints: table opens and commits stop replaying a growing JSON log."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from cb_storage_dagster.storage.delta.file_index import FileIndexes
from cb_storage_dagster.storage.maintenance.actions import log_files, open_table
from cb_storage_dagster.storage.maintenance.guards import storage_errors
from cb_storage_dagster.storage.maintenance.results import CheckpointResult

if TYPE_CHECKING:
    from cb_storage_dagster.storage.interfaces import IStorageBackend


@storage_errors("checkpoint")
def checkpoint_table(backend: IStorageBackend, table: str, *, cleanup_log: bool = True) -> CheckpointResult:
    """Write a checkpoint of the current version; remove log files past the table's
    ``delta.logRetentionDuration`` (30 days by default) when ``cleanup_log``."""
    started = time.perf_counter()
    delta_table = open_table(backend, table)
    options = backend.get_storage_options()
    log_before = log_files(delta_table, options)
    delta_table.create_checkpoint()
    FileIndexes(backend).store(table, delta_table)  # new processes start from it, like delta-rs from the checkpoint
    if cleanup_log:
        delta_table.cleanup_metadata()
    return CheckpointResult(
        table=table, version=delta_table.version(), log_before=log_before,
        log_after=log_files(delta_table, options), seconds=time.perf_counter() - started,
    )
