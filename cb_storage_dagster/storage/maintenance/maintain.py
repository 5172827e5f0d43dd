"""The weekly sequence over one table: compaction, checkpoint, vacuum, and a flat summary."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Unpack

from cb_storage_dagster.storage.maintenance.checkpoint import checkpoint_table
from cb_storage_dagster.storage.maintenance.compact import DEFAULT_TARGET_FILE_SIZE, compact_table
from cb_storage_dagster.storage.maintenance.results import MaintenanceResult
from cb_storage_dagster.storage.maintenance.vacuum import Retention, vacuum_table

if TYPE_CHECKING:
    from cb_storage_dagster.storage.interfaces import IStorageBackend


def maintain_table(
    backend: IStorageBackend,
    table: str,
    *,
    target_size: int = DEFAULT_TARGET_FILE_SIZE,
    sort_by_time: bool = True,
    vacuum_dry_run: bool = False,
    on_step: Callable[[str], None] | None = None,
    **retention: Unpack[Retention],
) -> MaintenanceResult:
    """Compaction, then a checkpoint (so the next opens start from the compacted state),
    then vacuum.

    ``retention_hours`` and ``min_retention_hours`` go to :func:`vacuum_table` (7 days
    each unless given). ``on_step`` is called with ``"compact"``, ``"checkpoint"`` and
    ``"vacuum"`` as each step starts (a progress display).
    """
    step = on_step or (lambda _name: None)
    step("compact")
    compaction = compact_table(backend, table, target_size=target_size, sort_by_time=sort_by_time)
    step("checkpoint")
    checkpoint = checkpoint_table(backend, table)
    step("vacuum")
    vacuum = vacuum_table(backend, table, dry_run=vacuum_dry_run, **retention)
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
