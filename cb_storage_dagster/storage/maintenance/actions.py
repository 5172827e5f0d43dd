"""A Delta table's state as maintenance reads it: the open table, its add actions, file
counts and sizes (from the log, or by listing the storage), and its partitions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from cb_storage_dagster.domain.errors import NotFoundError
from cb_storage_dagster.domain.identifiers import normalize_identifier
from cb_storage_dagster.storage.maintenance.results import FileStats, Partition

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from cb_storage_dagster.storage.interfaces import IStorageBackend

PartitionKey = tuple[tuple[str, str], ...]
"""A partition as a hashable, sorted tuple of ``(column, value)`` pairs."""


def open_table(backend: IStorageBackend, table: str) -> DeltaTable:
    """The Delta table ``table`` of ``backend``; :class:`NotFoundError` if it has no log."""
    from deltalake import DeltaTable

    table = normalize_identifier(table)
    if not backend.exists(f"{table}/_delta_log"):
        raise NotFoundError(f"No Delta table {table!r} in {backend.describe()}.")
    return DeltaTable(backend.get_uri_for_identifier(table), storage_options=backend.get_storage_options())


def add_actions(delta_table: DeltaTable) -> pa.Table:
    """The active data files of the loaded version, one row each (flattened partition
    values and statistics)."""
    return pa.table(delta_table.get_add_actions(flatten=True))


def table_file_stats(delta_table: DeltaTable) -> FileStats:
    """Active data files of the loaded version (from the log, no listing)."""
    actions = add_actions(delta_table)
    size = pc.sum(actions.column("size_bytes")).as_py() if actions.num_rows else 0
    return FileStats(actions.num_rows, int(size or 0))


def storage_files(delta_table: DeltaTable, storage_options: Mapping[str, str]) -> dict[str, int]:
    """Every data file under the table root, referenced or not, with its size (lists the
    storage: fine for weekly maintenance, never done on a read path). Folders starting with
    ``_`` or ``.`` (``_delta_log``, the coin registry) hold no data files, as for vacuum."""
    import pyarrow.fs as pa_fs
    from deltalake.fs import DeltaStorageHandler

    filesystem = pa_fs.PyFileSystem(DeltaStorageHandler(delta_table.table_uri, dict(storage_options) or None))
    infos = filesystem.get_file_info(pa_fs.FileSelector("", recursive=True, allow_not_found=True))
    return {
        i.path.lstrip("/"): int(i.size or 0)
        for i in infos
        if i.type == pa_fs.FileType.File and i.path.endswith(".parquet")
        and not any(folder.startswith(("_", ".")) for folder in i.path.lstrip("/").split("/")[:-1])
    }


def file_stats(files: Mapping[str, int]) -> FileStats:
    """Count and total size of ``{path: size}``.

    >>> file_stats({"a.parquet": 10, "b.parquet": 5})
    FileStats(files=2, bytes=15)
    """
    return FileStats(len(files), sum(files.values()))


def log_files(delta_table: DeltaTable, storage_options: Mapping[str, str]) -> FileStats:
    """The files of the table's ``_delta_log`` (commits, checkpoints), by listing the storage."""
    import pyarrow.fs as pa_fs
    from deltalake.fs import DeltaStorageHandler

    filesystem = pa_fs.PyFileSystem(DeltaStorageHandler(delta_table.table_uri, dict(storage_options) or None))
    infos = filesystem.get_file_info(pa_fs.FileSelector("_delta_log", recursive=True, allow_not_found=True))
    files = [i for i in infos if i.type == pa_fs.FileType.File]
    return FileStats(len(files), sum(i.size or 0 for i in files))


def partition_key(partition: Mapping[str, str]) -> PartitionKey:
    """``partition`` as a hashable key.

    >>> partition_key({"month": "2024-01", "exchange": "binance"})
    (('exchange', 'binance'), ('month', '2024-01'))
    """
    return tuple(sorted((str(k), str(v)) for k, v in partition.items()))


def partitions_of(actions: pa.Table, columns: Sequence[str]) -> list[Partition]:
    """The distinct partitions of the files in ``actions``, sorted."""
    if actions.num_rows == 0:
        return []
    names = [f"partition.{c}" for c in columns]
    unique = actions.select(names).group_by(names).aggregate([])
    rows = zip(*(unique.column(n).to_pylist() for n in names))
    return sorted(({c: v for c, v in zip(columns, row)} for row in rows), key=partition_key)


def multi_file_partitions(actions: pa.Table, columns: Sequence[str]) -> set[PartitionKey]:
    """The partitions holding more than one of the files in ``actions``."""
    if actions.num_rows == 0:
        return set()
    names = [f"partition.{c}" for c in columns]
    counts = actions.select(names).group_by(names).aggregate([([], "count_all")])
    many = counts.filter(pc.greater(counts.column("count_all"), 1))
    rows = zip(*(many.column(n).to_pylist() for n in names))
    return {partition_key(dict(zip(columns, row))) for row in rows}
