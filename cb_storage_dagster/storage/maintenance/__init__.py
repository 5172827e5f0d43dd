"""Delta table maintenance: compaction, checkpoints and vacuum. No Dagster here.

A year of daily writes leaves one small file per instrument-day (~60-80 KB of 1-minute
candles). The layout (``exchange / coin / month`` partitions, ``date`` a data column, see
``docs/LAYOUT.md``) lets compaction merge a month of days into one file, which is what
keeps reads fast. Three operations, each returning a dataclass with file counts and bytes
before and after (:mod:`.results`):

* :func:`compact_table` (:mod:`.compact`) rewrites the partitions written since the last
  maintenance (:mod:`.discovery`: files added after the last maintenance commit) or the
  partitions given, into files of about ``target_size`` bytes, sorted by timestamp (or by
  coin, timestamp in the ``exchange`` layout). It is retried with backoff when it
  conflicts with a concurrent writer (:mod:`.guards`), so no write is lost or resurrected.
* :func:`checkpoint_table` (:mod:`.checkpoint`) writes a checkpoint and removes log files
  past ``delta.logRetentionDuration``.
* :func:`vacuum_table` (:mod:`.vacuum`) deletes data files no longer referenced by any
  version inside the retention window (default 7 days; a shorter one must be allowed
  explicitly with ``min_retention_hours``).

:func:`maintain_table` (:mod:`.maintain`) runs all three; :func:`find_delta_tables` lists
the tables under a storage root.
"""

from cb_storage_dagster.storage.maintenance.actions import table_file_stats
from cb_storage_dagster.storage.maintenance.checkpoint import checkpoint_table
from cb_storage_dagster.storage.maintenance.compact import DEFAULT_TARGET_FILE_SIZE, compact_table
from cb_storage_dagster.storage.maintenance.discovery import (
    find_delta_tables,
    partitions_written_since_last_maintenance,
)
from cb_storage_dagster.storage.maintenance.maintain import maintain_table
from cb_storage_dagster.storage.maintenance.results import (
    CheckpointResult,
    CompactionResult,
    FileStats,
    MaintenanceResult,
    VacuumResult,
)
from cb_storage_dagster.storage.maintenance.vacuum import (
    DEFAULT_MIN_RETENTION_HOURS,
    DEFAULT_RETENTION_HOURS,
    vacuum_table,
)

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
