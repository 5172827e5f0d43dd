"""Weekly Delta table maintenance as a Dagster job: compaction, checkpoint and vacuum of
every Delta table under the storage root.

Why an op job and not assets: maintenance produces no data of its own. It rewrites the
files of tables that assets already own, without changing their rows, so modelling it as
assets would add nodes to the lineage graph that nobody consumes, and materializing them
would look like new data to sensors and freshness checks. A job of ops reports what it did
as output metadata (file counts and bytes before and after) on each table's step, runs on a
schedule, and can be launched by hand from the launchpad with other settings.

The core logic lives in :mod:`cb_storage_dagster.storage.maintenance` (no Dagster there);
these ops only read the configuration, fan out over the tables and publish metadata.
"""

from typing import Any

import dagster as dg

from cb_storage_dagster.orchestration.resources import StorageBackendResource
from cb_storage_dagster.storage import maintenance

__all__ = [
    "MAINTENANCE_JOBS",
    "MAINTENANCE_SCHEDULES",
    "WEEKLY_MAINTENANCE_CRON",
    "DeltaMaintenanceConfig",
    "delta_maintenance_job",
    "weekly_delta_maintenance",
]

WEEKLY_MAINTENANCE_CRON = "0 3 * * 0"
"""Sundays 03:00 UTC: after the daily runs (00:30 UTC) have long finished."""


class DeltaMaintenanceConfig(dg.Config):
    """Settings of one maintenance run (every field has a safe default)."""

    tables: list[str] = []
    """Tables to maintain; empty: every Delta table under the storage root."""
    target_file_size_mb: int = maintenance.DEFAULT_TARGET_FILE_SIZE // (1024 * 1024)
    sort_by_time: bool = True
    """Compacted files sorted by timestamp (faster reads; a little slower compaction)."""
    retention_hours: int = maintenance.DEFAULT_RETENTION_HOURS
    min_retention_hours: int = maintenance.DEFAULT_MIN_RETENTION_HOURS
    vacuum_dry_run: bool = False


@dg.op(
    out=dg.DynamicOut(str),
    description="Finds the Delta tables under the storage root (or the configured ones).",
)
def find_delta_tables(context: dg.OpExecutionContext, config: DeltaMaintenanceConfig, storage: StorageBackendResource):
    backend = storage.get_backend()
    tables = list(config.tables) or maintenance.find_delta_tables(backend)
    context.log.info(f"Maintaining {len(tables)} Delta table(s): {', '.join(tables) or '-'}")
    used: set[str] = set()
    for table in tables:
        key = _mapping_key(table)
        while key in used:  # "a/b" and "a_b" must not collide
            key += "_"
        used.add(key)
        yield dg.DynamicOutput(table, mapping_key=key)


@dg.op(description="Compacts the partitions written since the last run, checkpoints, vacuums.")
def maintain_delta_table(
    context: dg.OpExecutionContext,
    config: DeltaMaintenanceConfig,
    storage: StorageBackendResource,
    table: str,
) -> dict[str, Any]:
    result = maintenance.maintain_table(
        storage.get_backend(),
        table,
        target_size=config.target_file_size_mb * 1024 * 1024,
        sort_by_time=config.sort_by_time,
        retention_hours=config.retention_hours,
        min_retention_hours=config.min_retention_hours,
        vacuum_dry_run=config.vacuum_dry_run,
    )
    summary = dict(result.summary)
    summary["compaction_seconds"] = round(result.compaction.seconds, 3)
    summary["vacuum_seconds"] = round(result.vacuum.seconds, 3)
    context.add_output_metadata({
        **{k: v for k, v in summary.items() if k != "table"},
        "table": table,
        "partitions": dg.MetadataValue.json(result.compaction.partitions[:200]),
        "files_vacuumed_sample": dg.MetadataValue.json(result.vacuum.files_deleted[:20]),
    })
    return summary


@dg.op(description="Totals over all maintained tables.")
def summarize_delta_maintenance(context: dg.OpExecutionContext, results: list[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "partitions_compacted", "active_files_before", "active_files_after", "active_bytes_before",
        "active_bytes_after", "stored_files_before", "stored_files_after", "stored_bytes_before",
        "stored_bytes_after", "files_vacuumed",
    )
    totals: dict[str, Any] = {k: sum(int(r.get(k, 0)) for r in results) for k in keys}
    totals["tables"] = len(results)
    context.add_output_metadata(totals)
    return totals


@dg.job(
    description=(
        "Delta table maintenance: compaction (sorted by time) of the partitions written since "
        "the last run, a checkpoint, and a vacuum with a 7-day retention, for every Delta "
        "table under the storage root. Safe while writers run."
    ),
    tags={"kind": "maintenance"},
)
def delta_maintenance_job() -> None:
    summarize_delta_maintenance(find_delta_tables().map(maintain_delta_table).collect())


weekly_delta_maintenance = dg.ScheduleDefinition(
    name="weekly_delta_maintenance",
    job=delta_maintenance_job,
    cron_schedule=WEEKLY_MAINTENANCE_CRON,
    execution_timezone="UTC",
    description="Weekly compaction, checkpoint and vacuum of every Delta table.",
)


def _mapping_key(table: str) -> str:
    """Dagster mapping keys allow letters, digits and underscores only."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in table) or "table"


MAINTENANCE_JOBS = [delta_maintenance_job]
MAINTENANCE_SCHEDULES = [weekly_delta_maintenance]
