"""What a maintenance operation reports: file counts and bytes before and after."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Partition = dict[str, str]
"""One table partition as ``{partition column: value}``."""


@dataclass(frozen=True)
class FileStats:
    """Data files and their total size.

    >>> FileStats(files=3, bytes=1024)
    FileStats(files=3, bytes=1024)
    """

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
    """The three results of :func:`~cb_storage_dagster.storage.maintenance.maintain_table`
    and a flat ``summary`` of their counts (what the Dagster job publishes)."""

    table: str
    compaction: CompactionResult
    checkpoint: CheckpointResult
    vacuum: VacuumResult
    summary: dict[str, Any] = field(default_factory=dict)
