"""Reading Delta tables from their log: prune files, then read only those Parquet files.

delta-rs' generic readers either go through DataFusion (``QueryBuilder``) or build a
pyarrow dataset whose files are read through a Python filesystem callback and whose
fragments carry statistics for every column. For market data (few columns, one instrument,
a time range) most of that work is overhead. :class:`DeltaScanPlanner` does the minimum:

1. take the snapshot's add actions (path, size, partition values, min/max statistics) as
   one Arrow table, cached per table version;
2. keep the files of the requested instruments and months whose ``date`` statistics
   overlap the requested days (vectorized, no per-file Python work);
3. order them by instrument and first timestamp, so the result comes out sorted;
4. read them with pyarrow's native filesystem (local disk) or delta-rs' object-store
   handler (Azure), as fragments guaranteed to hold their partition values and their
   ``timestamp``/``date`` ranges: a filter that a whole file satisfies is then not evaluated
   row by row, and a file that cannot match is skipped. The fragments, with their parsed
   footers, are cached per file and object-store files are fetched concurrently
   (:mod:`.fragments`); plans are cached per table version and scope.

This path runs only for what it implements, named in one allow-list
(:func:`.fast_path.fast_path_refusal`): the product's layout and column types, reader protocol 1-3
without column mapping, and no reader feature outside :data:`.fast_path.FAST_PATH_READER_FEATURES`.
Every other table (deletion vectors, column mapping, another partitioning, a feature added
by a newer engine) is read by delta-rs' DataFusion reader instead (``delta_sql``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from cb_storage_dagster.domain.schemas import DATE_COLUMN
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.storage.delta.cache import BoundedCache
from cb_storage_dagster.storage.delta.fetch_pool import map_concurrently
from cb_storage_dagster.storage.delta.fragments import FragmentCache
from cb_storage_dagster.storage.delta.locations import filesystem_for, local_root
from cb_storage_dagster.storage.delta.pruning import file_guarantees, scope_mask
from cb_storage_dagster.storage.delta.row_window import RowWindow
from cb_storage_dagster.storage.delta.sorting import INSTRUMENT_COLUMNS

if TYPE_CHECKING:
    from deltalake import DeltaTable

T = TypeVar("T")

SNAPSHOT_CACHE_ENTRIES = 16
"""Table versions whose add actions are kept (a few tables, each at its latest versions)."""
FILE_CACHE_ENTRIES = 8192
"""Per-file facts kept (what ``date``, or which ``(coin, date)`` pairs, a data file holds)."""
PLAN_CACHE_ENTRIES = 256
"""Plans kept: (table version, scope) -> files to read (a warm repeated read plans nothing)."""
DERIVED_PER_PLAN = 8
"""Values a plan keeps of what reads derived from it (:meth:`ScanPlan.derived`)."""

@dataclass(frozen=True)
class Snapshot:
    """What a scan needs from one table version: the add actions and the Arrow schema."""

    actions: pa.Table
    schema: pa.Schema
    partition_columns: tuple[str, ...]
    key: tuple[str, str, int] = ("", "", -1)
    """(table URI, table id, version); version -1: not cached."""

    @property
    def table_uri(self) -> str:
        return self.key[0]


@dataclass(frozen=True)
class ScanPlan:
    """The files a read touches, in output order, with their add actions, and what reads of
    them have worked out from those alone (:meth:`derived`: a warm read re-plans nothing)."""

    paths: list[str]
    sizes: list[int]
    actions: pa.Table
    files_in_table: int
    _derived: dict[Hashable, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def file_count(self) -> int:
        return len(self.paths)

    def derived(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, kept under ``key`` for the next read of this plan (it must depend only
        on the plan and ``key``); at most :data:`DERIVED_PER_PLAN` values are kept."""
        try:
            return self._derived[key]  # type: ignore[no-any-return]
        except KeyError:
            value = compute()
            if len(self._derived) >= DERIVED_PER_PLAN:
                self._derived.clear()
            self._derived[key] = value
            return value


class DeltaScanPlanner:
    """Plans and runs pruned reads of Delta snapshots. Snapshot indexes are cached per table
    version and what a data file holds per file (data files never change), both bounded."""

    def __init__(self) -> None:
        self._snapshots: BoundedCache[tuple[str, str, int], Snapshot] = BoundedCache(
            max_entries=SNAPSHOT_CACHE_ENTRIES
        )
        self._file_facts: BoundedCache[tuple[str, str], Any] = BoundedCache(max_entries=FILE_CACHE_ENTRIES)
        self._plans: BoundedCache[tuple[Any, ...], ScanPlan] = BoundedCache(max_entries=PLAN_CACHE_ENTRIES)
        self._fragments = FragmentCache()

    # -- snapshot index -------------------------------------------------------------------
    def snapshot(self, delta_table: DeltaTable) -> Snapshot:
        """The add actions and schema of ``delta_table``'s loaded version (cached)."""
        key = (delta_table.table_uri, delta_table.metadata().id, delta_table.version())
        cached = self._snapshots.get(key)
        if cached is not None:
            return cached
        actions = pa.table(delta_table.get_add_actions(flatten=True))
        schema = pa.schema(delta_table.schema().to_arrow())
        snapshot = Snapshot(actions, schema, tuple(delta_table.metadata().partition_columns), key)
        if delta_table.version() == key[2]:  # else refreshed meanwhile by another thread: do not cache
            self._snapshots.put(key, snapshot)
        return snapshot

    # -- planning -------------------------------------------------------------------------
    def plan(self, snapshot: Snapshot, scope: WriteScope | None) -> ScanPlan:
        """Files that may hold rows of ``scope``, ordered by instrument and first timestamp
        (cached per table version and scope)."""
        cache_key = (snapshot.key, scope)
        cached = self._plans.get(cache_key) if snapshot.key[2] >= 0 else None
        if cached is not None:
            return cached
        actions = snapshot.actions
        total = actions.num_rows
        if total:
            mask = scope_mask(actions, scope)
            if mask is not None:
                actions = actions.filter(mask)
        names = actions.column_names
        order = [(f"partition.{c}", "ascending") for c in INSTRUMENT_COLUMNS if f"partition.{c}" in names]
        if "partition.coin" not in names and "min.coin" in names:
            # Exchange layout: files of a day hold coins in order, and a large day is cut into
            # several files, a coin's rows possibly over two: by day, then first coin, the
            # files of one exchange-day read out sorted (and one coin's days in order).
            order += [(f"min.{DATE_COLUMN}", "ascending")] if f"min.{DATE_COLUMN}" in names else []
            order.append(("min.coin", "ascending"))
        if "min.timestamp" in names:
            order.append(("min.timestamp", "ascending"))
        actions = actions.sort_by(order)
        plan = ScanPlan(
            paths=[unquote(p) for p in actions.column("path").to_pylist()],
            sizes=actions.column("size_bytes").to_pylist(),
            actions=actions,
            files_in_table=total,
        )
        if snapshot.key[2] >= 0:
            self._plans.put(cache_key, plan)
        return plan

    # -- reading --------------------------------------------------------------------------
    def read(
        self,
        snapshot: Snapshot,
        plan: ScanPlan,
        *,
        row_filter: ds.Expression | None,
        columns: list[str] | None,
        storage_options: dict[str, str],
        whole: list[bool] | None = None,
        latest: bool = True,
        window: RowWindow | None = None,
        own_filter: ds.Expression | None = None,
    ) -> pa.Table:
        """Read the planned files as one table (rows in plan order, then file order);
        ``whole`` marks the files whose every row is selected (:func:`.pruning.wholly_selected`);
        ``latest``: the snapshot is the table's latest version (see :meth:`.FragmentCache.read`)."""
        if not plan.paths:
            table = snapshot.schema.empty_table()
            if row_filter is not None:
                table = table.filter(row_filter)
            return table.select(columns) if columns is not None else table
        uri = snapshot.table_uri

        def make(positions: list[int]) -> tuple[Any, list[str], list[ds.Expression]]:
            # Files seen for the first time: their filesystem, paths and guarantees.
            sub = plan.actions.take(positions)
            part = ScanPlan([plan.paths[i] for i in positions], [plan.sizes[i] for i in positions], sub,
                            plan.files_in_table)
            filesystem, paths = _filesystem(uri, part, storage_options)
            return filesystem, paths, file_guarantees(sub, snapshot.schema, snapshot.partition_columns)

        return self._fragments.read(
            plan.derived("file keys", lambda: [(uri, p, s) for p, s in zip(plan.paths, plan.sizes)]), make, schema=snapshot.schema,
            row_filter=row_filter, columns=columns, remote=local_root(uri) is None, whole=whole,
            keep_small_files=latest, window=window, own_filter=own_filter,
        )

    # -- what files hold (listings) -------------------------------------------------------
    def dates_of_files(
        self, delta_table: DeltaTable, actions: pa.Table, storage_options: dict[str, str]
    ) -> set[dt.date]:
        """Distinct ``date`` values of the given add actions' files (cached per file)."""

        def days_of(fragment: ds.Fragment) -> list[dt.date]:
            values = fragment.to_table(columns=[DATE_COLUMN]).column(DATE_COLUMN)
            return sorted(d for d in pc.unique(values).to_pylist() if d is not None)

        per_file = self._per_file(delta_table, actions, storage_options, "dates", ds.ParquetFileFormat(), days_of)
        return {day for days in per_file for day in days}

    def coin_days_of_files(
        self, delta_table: DeltaTable, actions: pa.Table, storage_options: dict[str, str]
    ) -> pa.Table:
        """Distinct ``(coin, date)`` pairs of the given add actions' files, for the exchange
        layout where coin is a data column (cached per file).

        Reads only the ``coin`` (as a dictionary) and ``date`` columns; at 2,000 coins a day
        file yields 2,000 pairs.
        """

        def pairs_of(fragment: ds.Fragment) -> pa.Table:
            rows = fragment.to_table(columns=["coin", DATE_COLUMN]).unify_dictionaries()
            pairs = rows.group_by(["coin", DATE_COLUMN], use_threads=False).aggregate([])
            return pa.table({"coin": pc.cast(pairs.column("coin"), pa.string()), DATE_COLUMN: pairs.column(DATE_COLUMN)})

        file_format = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=["coin"]))
        parts = self._per_file(delta_table, actions, storage_options, "coin_days", file_format, pairs_of)
        if not parts:
            return pa.table({"coin": pa.array([], pa.string()), DATE_COLUMN: pa.array([], pa.date32())})
        return pa.concat_tables(parts)

    def _per_file(
        self,
        delta_table: DeltaTable,
        actions: pa.Table,
        storage_options: dict[str, str],
        fact: str,
        file_format: ds.ParquetFileFormat,
        compute: Callable[[ds.Fragment], T],
    ) -> list[T]:
        """``compute`` of each of ``actions``' files, from the cache where ``fact`` is known
        (data files never change), else read once and cached."""
        raw_paths = actions.column("path").to_pylist()
        found, missing = self._file_facts.get_many((fact, path) for path in raw_paths)
        if not missing:
            return found
        sub = actions.take(missing)
        plan = ScanPlan(
            paths=[unquote(p) for p in sub.column("path").to_pylist()],
            sizes=sub.column("size_bytes").to_pylist(),
            actions=sub,
            files_in_table=actions.num_rows,
        )
        filesystem, full_paths = _filesystem(delta_table.table_uri, plan, storage_options)
        fragments = [file_format.make_fragment(path, filesystem=filesystem) for path in full_paths]
        if local_root(delta_table.table_uri) is None:  # object store: fetch the files concurrently
            values = map_concurrently(compute, fragments)
        else:
            values = [compute(fragment) for fragment in fragments]
        for position, value in zip(missing, values):
            self._file_facts.put((fact, raw_paths[position]), value)
        return found + values


# -- filesystems --------------------------------------------------------------------------
def _filesystem(table_uri: str, plan: ScanPlan, storage_options: dict[str, str]) -> tuple[Any, list[str]]:
    """A pyarrow filesystem and the paths of the planned files on it (:func:`.locations.filesystem_for`)."""
    return filesystem_for(table_uri, plan.paths, plan.sizes, storage_options)


__all__ = ["DeltaScanPlanner", "ScanPlan", "Snapshot"]
