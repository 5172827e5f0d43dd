"""What maintenance works on: the Delta tables under a storage root, and the partitions
written since the last maintenance (found from the log and our commits' metadata)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow.compute as pc

from cb_storage_dagster.storage.maintenance.actions import add_actions, partitions_of
from cb_storage_dagster.storage.maintenance.results import Partition

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from cb_storage_dagster.storage.interfaces import IStorageBackend

MAINTENANCE_MARKER = "cb_storage.maintenance"
"""Commit metadata key of our maintenance commits (value: the operation)."""
MAINTENANCE_STARTED = "cb_storage.maintenance_started_ms"
"""Commit metadata key: when the compaction that made the commit started (ms since the epoch)."""
_LOOKBACK_SLACK_MS = 3_600_000
"""Files written up to an hour before the last maintenance started are looked at again:
a writer may create its file before and commit it after that maintenance's snapshot."""
_HISTORY_LIMIT = 2_000


def find_delta_tables(backend: IStorageBackend, prefix: str = "") -> list[str]:
    """Names of the Delta tables under ``prefix`` (folders holding a ``_delta_log``)."""
    tables: set[str] = set()
    for item in backend.list_items(prefix):
        head, sep, _ = item.partition("/_delta_log/")
        if sep and "/_delta_log/" not in head and not any(
            part.startswith(("_", ".")) or "=" in part for part in head.split("/")
        ):
            tables.add(head)
    return sorted(tables)


def last_maintenance_started(delta_table: DeltaTable) -> int | None:
    """Start time (ms since the epoch) of the newest compaction by this package, if any."""
    for commit in delta_table.history(limit=_HISTORY_LIMIT):
        marker = commit.get(MAINTENANCE_MARKER)
        if marker == "compaction":
            started = commit.get(MAINTENANCE_STARTED)
            try:
                return int(started) if started is not None else int(commit["timestamp"])
            except (TypeError, ValueError):
                return int(commit.get("timestamp", 0))
    return None


def partitions_written_since_last_maintenance(delta_table: DeltaTable) -> list[Partition]:
    """Partitions with a data file added since the last compaction by this package started
    (all partitions if it never ran), from the log's add actions."""
    columns = list(delta_table.metadata().partition_columns)
    actions = add_actions(delta_table)
    since = last_maintenance_started(delta_table)
    if since is not None and actions.num_rows:
        actions = actions.filter(pc.greater_equal(actions.column("modification_time"), since - _LOOKBACK_SLACK_MS))
    return partitions_of(actions, columns)
