"""Vacuum: delete data files no version inside the retention window references.

A retention below ``min_retention_hours`` (default 7 days, like the retention itself) is
refused: readers running or reproducing a past version need those files.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TypedDict

from cb_storage_dagster.domain.errors import ConfigurationError
from cb_storage_dagster.storage.maintenance.actions import file_stats, open_table, storage_files
from cb_storage_dagster.storage.maintenance.guards import (
    DEFAULT_ATTEMPTS,
    DEFAULT_BACKOFF_SECONDS,
    storage_errors,
    with_conflict_retries,
)
from cb_storage_dagster.storage.maintenance.results import VacuumResult

if TYPE_CHECKING:
    from cb_storage_dagster.storage.interfaces import IStorageBackend

DEFAULT_RETENTION_HOURS = 168
"""Vacuum keeps files removed in the last 7 days (Delta's own default)."""
DEFAULT_MIN_RETENTION_HOURS = 168
"""Vacuum refuses a shorter retention unless the caller lowers this minimum explicitly."""


class Retention(TypedDict, total=False):
    """The retention arguments of :func:`vacuum_table`, for callers that pass them on."""

    retention_hours: int
    min_retention_hours: int


@storage_errors("vacuum")
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
    delta_table = open_table(backend, table)
    options = backend.get_storage_options()
    before = storage_files(delta_table, options)

    def attempt(n: int) -> list[str]:
        if n > 1:
            delta_table.update_incremental()
        # Our minimum replaces delta-rs' check against the table's configured retention.
        return delta_table.vacuum(
            retention_hours=retention_hours, dry_run=dry_run, enforce_retention_duration=False, full=True,
        )

    listed, _ = with_conflict_retries(
        backend, table, attempt, "vacuum", attempts=attempts, backoff_seconds=backoff_seconds
    )
    # delta-rs also lists tombstones whose files are already gone: report what was stored.
    root = delta_table.table_uri.rstrip("/") + "/"
    candidates = {p[len(root):] if p.startswith(root) else p.lstrip("/") for p in listed}
    after = before if dry_run else storage_files(delta_table, options)
    deleted = sorted(p for p in before if p in candidates and (dry_run or p not in after))
    return VacuumResult(
        table=table, retention_hours=retention_hours, dry_run=dry_run, files_deleted=deleted,
        before=file_stats(before), after=file_stats(after), seconds=time.perf_counter() - started,
    )
