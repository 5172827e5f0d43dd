"""What a storage root holds: each table with its format, version, files, bytes and last
maintenance (what ``cb-storage tables`` prints). No Dagster here.

Delta tables are read from their logs (active files and sizes of the current version, the
newest maintenance commit); Parquet/JSON tables by listing their objects (their sizes are
not known without reading them, so ``bytes`` is ``None``).

Example:
    >>> import tempfile
    >>> from cb_storage_dagster.storage.backends.local import LocalFileBackend
    >>> list_tables(LocalFileBackend(tempfile.mkdtemp()))
    []
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cb_storage_dagster.domain.errors import NotFoundError
from cb_storage_dagster.domain.identifiers import normalize_identifier
from cb_storage_dagster.storage.files import FORMAT_MARKER
from cb_storage_dagster.storage.maintenance.actions import open_table, table_file_stats
from cb_storage_dagster.storage.maintenance.discovery import MAINTENANCE_MARKER, find_delta_tables

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from cb_storage_dagster.storage.interfaces import IStorageBackend

__all__ = ["TableSummary", "describe_table", "last_maintenance", "list_tables"]

_MAINTENANCE_OPERATIONS = ("OPTIMIZE", "VACUUM END")
_HISTORY_LIMIT = 2_000


@dataclass(frozen=True)
class TableSummary:
    """One table of a storage root.

    >>> TableSummary("ohlcv_1m", "delta", 3, 12, 4096, None).describe_maintenance()
    'never'
    """

    name: str
    format: str
    version: int | None
    files: int
    bytes: int | None
    last_maintenance: dt.datetime | None

    def describe_maintenance(self) -> str:
        if self.format != "delta":
            return "-"
        return "never" if self.last_maintenance is None else self.last_maintenance.strftime("%Y-%m-%d %H:%M UTC")


def list_tables(backend: IStorageBackend) -> list[str]:
    """The tables under the root: Delta tables and Parquet/JSON tables (with a format marker)."""
    names = set(find_delta_tables(backend))
    for item in backend.list_items(""):
        head, sep, tail = item.rpartition(f"/{FORMAT_MARKER}")
        if sep and not tail and head not in names:
            names.add(head)
    return sorted(names)


def describe_table(backend: IStorageBackend, table: str) -> TableSummary:
    """The :class:`TableSummary` of ``table``; :class:`NotFoundError` naming the tables that
    exist when it is not one of them."""
    table = normalize_identifier(table)
    if backend.exists(f"{table}/_delta_log"):
        delta_table = open_table(backend, table)
        stats = table_file_stats(delta_table)
        return TableSummary(table, "delta", delta_table.version(), stats.files, stats.bytes, last_maintenance(delta_table))
    try:
        marker = backend.load_bytes(f"{table}/{FORMAT_MARKER}").decode().strip()
    except NotFoundError:
        known = list_tables(backend)
        raise NotFoundError(
            f"No table {table!r} in {backend.describe()}; its tables are: {', '.join(known) or 'none'}."
        ) from None
    files = [i for i in backend.list_items(table) if not i.endswith(FORMAT_MARKER)]
    return TableSummary(table, marker, None, len(files), None, None)


def last_maintenance(delta_table: DeltaTable) -> dt.datetime | None:
    """When the newest compaction (``OPTIMIZE``, ours or another engine's) or vacuum committed."""
    for commit in delta_table.history(limit=_HISTORY_LIMIT):
        if commit.get(MAINTENANCE_MARKER) or commit.get("operation") in _MAINTENANCE_OPERATIONS:
            return dt.datetime.fromtimestamp(int(commit["timestamp"]) / 1000, tz=dt.timezone.utc)
    return None
