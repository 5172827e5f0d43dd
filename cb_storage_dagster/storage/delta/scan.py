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
   handler (Azure), as one dataset whose fragments are guaranteed to hold their partition
   values and their ``timestamp``/``date`` ranges: a filter that a whole file satisfies is
   then not evaluated row by row, and a file that cannot match is skipped.

This path runs only for what it implements, named in one allow-list
(:func:`fast_path_refusal`): the product's layout and column types, reader protocol 1-3
without column mapping, and no reader feature outside :data:`FAST_PATH_READER_FEATURES`.
Every other table (deletion vectors, column mapping, another partitioning, a feature added
by a newer engine) is read by delta-rs' DataFusion reader instead (``delta_sql``).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from cb_storage_dagster.domain.schemas import DATE_COLUMN, MONTH_COLUMN
from cb_storage_dagster.domain.scope import WriteScope

if TYPE_CHECKING:
    from deltalake import DeltaTable

_STATS_SLACK = dt.timedelta(milliseconds=1)
"""Delta statistics store timestamps with millisecond precision (the max is truncated)."""
_INSTRUMENT_COLUMNS = ("exchange", "coin")
_MAX_RANGE_TERMS = 64
"""Above this many contiguous day runs, prune files by the overall first/last day only."""
_STRING_STATS_TRUSTED_LENGTH = 32
"""delta-rs truncates long string statistics: a coin min/max this long or longer is ignored."""

FAST_PATH_READER_VERSIONS = frozenset({1, 2, 3})
"""Reader protocol versions the fast path reads (2 and 3 only with the checks below)."""
FAST_PATH_READER_FEATURES = frozenset({"timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"})
"""Reader features that change nothing in how a data file is read: a column type pyarrow
reads natively, a checkpoint format and a vacuum rule that delta-rs' log replay handles
(it refuses the table itself if it cannot). Anything else (``deletionVectors``: rows hidden
by a vector the add actions do not show; ``columnMapping``: physical column names;
``typeWidening``; ``variantType``; features of newer engines) goes to DataFusion."""
FAST_PATH_LAYOUTS = (frozenset({"exchange", "coin", MONTH_COLUMN}), frozenset({"exchange", MONTH_COLUMN}))
"""Partition column sets the planner prunes: the ``instrument`` layout (partition values
exchange/coin/month, ``date`` min/max statistics) and the ``exchange`` layout (exchange/month
partitions, ``coin`` and ``date`` pruned by their min/max statistics)."""
FAST_PATH_COLUMN_TYPES: dict[str, tuple[pa.DataType, ...]] = {
    "exchange": (pa.string(), pa.large_string()),
    "coin": (pa.string(), pa.large_string()),
    MONTH_COLUMN: (pa.string(), pa.large_string()),
    DATE_COLUMN: (pa.date32(),),
    "timestamp": (pa.timestamp("us", tz="UTC"),),
}
"""The columns the planner compares with typed values, and the types it compares them as."""


@dataclass(frozen=True)
class Snapshot:
    """What a scan needs from one table version: the add actions and the Arrow schema."""

    actions: pa.Table
    schema: pa.Schema
    partition_columns: tuple[str, ...]


@dataclass(frozen=True)
class ScanPlan:
    """The files a read touches, in output order, with their partition values."""

    paths: list[str]
    sizes: list[int]
    guarantees: list[ds.Expression]
    files_in_table: int

    @property
    def file_count(self) -> int:
        return len(self.paths)


def fast_path_refusal(delta_table: DeltaTable) -> str | None:
    """Why the fast path must not read ``delta_table``'s loaded version, or ``None`` if it
    implements everything the version needs (the one allow-list; see the module docstring).

    >>> # fast_path_refusal(DeltaTable("ohlcv")) -> None for a table this product wrote
    >>> # ... -> "reader features not implemented: deletionVectors" after Databricks touched it
    """
    protocol = delta_table.protocol()
    if protocol.min_reader_version not in FAST_PATH_READER_VERSIONS:
        return f"reader protocol version {protocol.min_reader_version}"
    unknown = sorted(set(protocol.reader_features or ()) - FAST_PATH_READER_FEATURES)
    if unknown:
        return "reader features not implemented: " + ", ".join(unknown)
    metadata = delta_table.metadata()
    mode = metadata.configuration.get("delta.columnMapping.mode") or "none"
    if protocol.min_reader_version >= 2 and mode != "none":
        return f"column mapping ({mode})"
    partitions = frozenset(metadata.partition_columns)
    if partitions not in FAST_PATH_LAYOUTS:
        return "partitioned by " + (", ".join(metadata.partition_columns) or "nothing")
    schema = pa.schema(delta_table.schema().to_arrow())
    for name, types in FAST_PATH_COLUMN_TYPES.items():
        if name not in schema.names:
            return f"no {name!r} column"
        if schema.field(name).type not in types:
            return f"column {name!r} is {schema.field(name).type}"
    return None


class DeltaScanPlanner:
    """Plans and runs pruned reads of Delta snapshots; caches snapshot indexes per version."""

    def __init__(self, *, cache_size: int = 16) -> None:
        self._cache: OrderedDict[tuple[str, str, int], Snapshot] = OrderedDict()
        self._cache_size = cache_size
        self._file_dates: OrderedDict[str, list[dt.date]] = OrderedDict()
        self._file_coin_days: OrderedDict[str, pa.Table] = OrderedDict()
        self._lock = threading.Lock()

    # -- snapshot index -------------------------------------------------------------------
    def snapshot(self, delta_table: DeltaTable) -> Snapshot:
        """The add actions and schema of ``delta_table``'s loaded version (cached)."""
        key = (delta_table.table_uri, delta_table.metadata().id, delta_table.version())
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        actions = pa.table(delta_table.get_add_actions(flatten=True))
        schema = pa.schema(delta_table.schema().to_arrow())
        snapshot = Snapshot(actions, schema, tuple(delta_table.metadata().partition_columns))
        if delta_table.version() != key[2]:  # refreshed meanwhile by another thread: do not cache
            return snapshot
        with self._lock:
            self._cache[key] = snapshot
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return snapshot

    # -- planning -------------------------------------------------------------------------
    def plan(self, snapshot: Snapshot, scope: WriteScope | None) -> ScanPlan:
        """Files that may hold rows of ``scope``, ordered by instrument and first timestamp."""
        actions = snapshot.actions
        total = actions.num_rows
        if total:
            mask = _scope_mask(actions, scope)
            if mask is not None:
                actions = actions.filter(mask)
        order = [(f"partition.{c}", "ascending") for c in _INSTRUMENT_COLUMNS
                 if f"partition.{c}" in actions.column_names]
        if "min.timestamp" in actions.column_names:
            order.append(("min.timestamp", "ascending"))
        if "partition.coin" not in actions.column_names and "min.coin" in actions.column_names:
            order.append(("min.coin", "ascending"))  # exchange layout: a coin split over files
        actions = actions.sort_by(order)
        return ScanPlan(
            paths=[unquote(p) for p in actions.column("path").to_pylist()],
            sizes=actions.column("size_bytes").to_pylist(),
            guarantees=_guarantees(actions, snapshot),
            files_in_table=total,
        )

    # -- reading --------------------------------------------------------------------------
    def read(
        self,
        delta_table: DeltaTable,
        snapshot: Snapshot,
        plan: ScanPlan,
        *,
        row_filter: ds.Expression | None,
        columns: list[str] | None,
        storage_options: dict[str, str],
    ) -> pa.Table:
        """Read the planned files as one table (rows in plan order, then file order)."""
        if not plan.paths:
            table = snapshot.schema.empty_table()
            if row_filter is not None:
                table = table.filter(row_filter)
            return table.select(columns) if columns is not None else table
        filesystem, paths = _filesystem(delta_table.table_uri, plan, storage_options)
        file_format = ds.ParquetFileFormat(
            default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=True)
        )
        fragments = [
            file_format.make_fragment(path, filesystem=filesystem, partition_expression=guarantee)
            for path, guarantee in zip(paths, plan.guarantees)
        ]
        dataset = ds.FileSystemDataset(fragments, snapshot.schema, file_format, filesystem)
        return dataset.to_table(filter=row_filter, columns=columns)

    def dates_of_files(
        self,
        delta_table: DeltaTable,
        snapshot: Snapshot,
        actions: pa.Table,
        storage_options: dict[str, str],
    ) -> set[dt.date]:
        """Distinct ``date`` values of the given add actions' files (cached per file:
        data files never change)."""
        out: set[dt.date] = set()
        missing: list[int] = []
        paths = actions.column("path").to_pylist()
        with self._lock:
            for i, path in enumerate(paths):
                cached = self._file_dates.get(path)
                if cached is None:
                    missing.append(i)
                else:
                    out.update(cached)
        if not missing:
            return out
        sub = actions.take(missing)
        plan = ScanPlan(
            paths=[unquote(p) for p in sub.column("path").to_pylist()],
            sizes=sub.column("size_bytes").to_pylist(),
            guarantees=[ds.scalar(True)] * sub.num_rows,
            files_in_table=snapshot.actions.num_rows,
        )
        filesystem, full_paths = _filesystem(delta_table.table_uri, plan, storage_options)
        file_format = ds.ParquetFileFormat()
        for raw_path, path in zip(sub.column("path").to_pylist(), full_paths):
            fragment = file_format.make_fragment(path, filesystem=filesystem)
            values = fragment.to_table(columns=[DATE_COLUMN]).column(DATE_COLUMN)
            days = sorted(d for d in pc.unique(values).to_pylist() if d is not None)
            out.update(days)
            with self._lock:
                self._file_dates[raw_path] = days
                while len(self._file_dates) > 4096:
                    self._file_dates.popitem(last=False)
        return out


    def coin_days_of_files(
        self,
        delta_table: DeltaTable,
        actions: pa.Table,
        storage_options: dict[str, str],
    ) -> pa.Table:
        """Distinct ``(coin, date)`` pairs of the given add actions' files, for the exchange
        layout where coin is a data column (cached per file: data files never change).

        Reads only the ``coin`` (as a dictionary) and ``date`` columns; at 2,000 coins a day
        file yields 2,000 pairs.
        """
        parts: list[pa.Table] = []
        missing: list[int] = []
        paths = actions.column("path").to_pylist()
        with self._lock:
            for i, path in enumerate(paths):
                cached = self._file_coin_days.get(path)
                if cached is None:
                    missing.append(i)
                else:
                    parts.append(cached)
        if missing:
            sub = actions.take(missing)
            plan = ScanPlan(
                paths=[unquote(p) for p in sub.column("path").to_pylist()],
                sizes=sub.column("size_bytes").to_pylist(),
                guarantees=[ds.scalar(True)] * sub.num_rows,
                files_in_table=actions.num_rows,
            )
            filesystem, full_paths = _filesystem(delta_table.table_uri, plan, storage_options)
            file_format = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=["coin"]))
            for raw_path, path in zip(sub.column("path").to_pylist(), full_paths):
                fragment = file_format.make_fragment(path, filesystem=filesystem)
                rows = fragment.to_table(columns=["coin", DATE_COLUMN]).unify_dictionaries()
                pairs = rows.group_by(["coin", DATE_COLUMN], use_threads=False).aggregate([])
                pairs = pa.table({
                    "coin": pc.cast(pairs.column("coin"), pa.string()),
                    DATE_COLUMN: pairs.column(DATE_COLUMN),
                })
                parts.append(pairs)
                with self._lock:
                    self._file_coin_days[raw_path] = pairs
                    while len(self._file_coin_days) > 4096:
                        self._file_coin_days.popitem(last=False)
        if not parts:
            return pa.table({"coin": pa.array([], pa.string()), DATE_COLUMN: pa.array([], pa.date32())})
        return pa.concat_tables(parts)


# -- pruning ------------------------------------------------------------------------------
def _scope_mask(actions: pa.Table, scope: WriteScope | None) -> pa.ChunkedArray | None:
    """Add actions that may hold rows of ``scope`` (vectorized; null statistics keep a file)."""
    if scope is None or scope.whole_table:
        return None
    names = actions.column_names
    has_month = f"partition.{MONTH_COLUMN}" in names
    has_dates = f"min.{DATE_COLUMN}" in names and f"max.{DATE_COLUMN}" in names
    exchange = actions.column("partition.exchange")
    mask = pa.chunked_array([pa.array([False] * actions.num_rows, pa.bool_())])

    def day_terms(days: Iterable[dt.date]) -> pa.ChunkedArray:
        days = sorted(set(days))
        out = pa.chunked_array([pa.array([True] * actions.num_rows, pa.bool_())])
        if has_month:
            months = pa.array(sorted({d.strftime("%Y-%m") for d in days}), pa.string())
            out = pc.is_in(actions.column(f"partition.{MONTH_COLUMN}"), value_set=months)
        if has_dates:
            runs = _day_runs(days)
            if len(runs) > _MAX_RANGE_TERMS:
                runs = [(days[0], days[-1])]
            overlap = None
            lo, hi = actions.column(f"min.{DATE_COLUMN}"), actions.column(f"max.{DATE_COLUMN}")
            for first, last in runs:
                term = pc.and_kleene(
                    pc.less_equal(lo, pa.scalar(last, pa.date32())),
                    pc.greater_equal(hi, pa.scalar(first, pa.date32())),
                )
                overlap = term if overlap is None else pc.or_kleene(overlap, term)
            out = pc.and_(out, pc.fill_null(overlap, True))
        return out

    by_instrument: dict[tuple[str, str], list[dt.date]] = {}
    for slot in scope.slots:
        by_instrument.setdefault((slot.exchange, slot.coin), []).append(slot.date)
    for (e, c), days in by_instrument.items():
        term = pc.and_(pc.and_(pc.equal(exchange, e), coin_mask(actions, c)), day_terms(days))
        mask = pc.or_(mask, term)
    day_groups: dict[str | None, list[dt.date]] = {}
    for day in scope.days:
        day_groups.setdefault(day.exchange, []).append(day.date)
    for e, days in day_groups.items():
        term = day_terms(days)
        mask = pc.or_(mask, term if e is None else pc.and_(pc.equal(exchange, e), term))
    for e, c in scope.instruments:
        mask = pc.or_(mask, pc.and_(pc.equal(exchange, e), coin_mask(actions, c)))
    return mask


def coin_statistics(actions: pa.Table) -> tuple[pa.ChunkedArray, pa.ChunkedArray] | None:
    """Per-file ``coin`` min/max of an exchange-layout table (``None`` where a statistic is
    missing or may be truncated), or ``None`` when ``coin`` is a partition column."""
    if "partition.coin" in actions.column_names or "min.coin" not in actions.column_names:
        return None

    def trusted(column: pa.ChunkedArray) -> pa.ChunkedArray:
        short = pc.less(pc.utf8_length(column), _STRING_STATS_TRUSTED_LENGTH)
        return pc.if_else(pc.fill_null(short, False), column, pa.scalar(None, column.type))

    return trusted(actions.column("min.coin")), trusted(actions.column("max.coin"))


def coin_mask(actions: pa.Table, coin: str) -> pa.ChunkedArray:
    """Files that may hold rows of ``coin``: its partition value, or (exchange layout) its
    min/max statistics (a file without them is kept)."""
    if "partition.coin" in actions.column_names:
        return pc.equal(actions.column("partition.coin"), coin)
    stats = coin_statistics(actions)
    if stats is None:  # no statistics at all: every file may hold the coin
        return pa.chunked_array([pa.array([True] * actions.num_rows, pa.bool_())])
    lo, hi = stats
    inside = pc.and_kleene(pc.less_equal(lo, coin), pc.greater_equal(hi, coin))
    return pc.fill_null(inside, True)


def _day_runs(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Sorted distinct days as contiguous ``(first, last)`` runs."""
    runs: list[tuple[dt.date, dt.date]] = []
    for day in days:
        if runs and day - runs[-1][1] == dt.timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def scope_range_expression(scope: WriteScope | None) -> ds.Expression | None:
    """The rows of ``scope`` as an expression of equalities and day ranges.

    Equivalent to an ``isin`` over the scope's days, but made of comparisons that pyarrow
    can prove true for a whole file from its guarantee (then it skips the row filter).
    """
    if scope is None or scope.whole_table:
        return None
    date = ds.field(DATE_COLUMN)

    def days_expr(days: Iterable[dt.date]) -> ds.Expression:
        terms = []
        for first, last in _day_runs(sorted(set(days))):
            if first == last:
                terms.append(date == pa.scalar(first, pa.date32()))
            else:
                terms.append((date >= pa.scalar(first, pa.date32())) & (date <= pa.scalar(last, pa.date32())))
        return _or_all(terms)

    by_instrument: dict[tuple[str, str], list[dt.date]] = {}
    for slot in scope.slots:
        by_instrument.setdefault((slot.exchange, slot.coin), []).append(slot.date)
    terms = [
        (ds.field("exchange") == e) & (ds.field("coin") == c) & days_expr(days)
        for (e, c), days in sorted(by_instrument.items())
    ]
    day_groups: dict[str | None, list[dt.date]] = {}
    for day in scope.days:
        day_groups.setdefault(day.exchange, []).append(day.date)
    for e, days in sorted(day_groups.items(), key=lambda item: item[0] or ""):
        term = days_expr(days)
        terms.append(term if e is None else (ds.field("exchange") == e) & term)
    for e, c in sorted(scope.instruments):
        terms.append((ds.field("exchange") == e) & (ds.field("coin") == c))
    return _or_all(terms)


def _or_all(terms: list[ds.Expression]) -> ds.Expression:
    # A balanced tree keeps expression depth logarithmic for long unions.
    while len(terms) > 1:
        terms = [terms[i] | terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


def _guarantees(actions: pa.Table, snapshot: Snapshot) -> list[ds.Expression]:
    """Per file: its partition values and its ``timestamp``/``date`` ranges as one expression."""
    n = actions.num_rows
    if n == 0:
        return []
    schema = snapshot.schema
    columns: list[tuple[str, pa.DataType, list[Any]]] = []
    for name in snapshot.partition_columns:
        typ = schema.field(name).type if name in schema.names else pa.string()
        column = actions.column(f"partition.{name}")
        if column.type != typ:
            column = pc.cast(column, typ)
        columns.append((name, typ, column.to_pylist()))
    ranges: list[tuple[str, pa.DataType, list[Any], list[Any]]] = []
    coin_stats = coin_statistics(actions)
    if coin_stats is not None and "coin" in schema.names:
        ranges.append(("coin", schema.field("coin").type, coin_stats[0].to_pylist(), coin_stats[1].to_pylist()))
    for name, slack in (("timestamp", _STATS_SLACK), (DATE_COLUMN, None)):
        if f"min.{name}" in actions.column_names and name in schema.names:
            lo = actions.column(f"min.{name}").to_pylist()
            hi = actions.column(f"max.{name}").to_pylist()
            if slack is not None:
                hi = [None if v is None else v + slack for v in hi]
            ranges.append((name, schema.field(name).type, lo, hi))
    out: list[ds.Expression] = []
    for i in range(n):
        expr: ds.Expression | None = None
        for name, typ, values in columns:
            value = values[i]
            term = ds.field(name).is_null() if value is None else ds.field(name) == pa.scalar(value, typ)
            expr = term if expr is None else expr & term
        for name, typ, lo, hi in ranges:
            if lo[i] is not None and hi[i] is not None:
                term = (ds.field(name) >= pa.scalar(lo[i], typ)) & (ds.field(name) <= pa.scalar(hi[i], typ))
                expr = term if expr is None else expr & term
        out.append(expr if expr is not None else ds.scalar(True))
    return out


# -- filesystems --------------------------------------------------------------------------
def _filesystem(
    table_uri: str, plan: ScanPlan, storage_options: dict[str, str]
) -> tuple[Any, list[str]]:
    """A pyarrow filesystem and the paths of the planned files on it.

    Local tables use pyarrow's native filesystem (no Python in the read loop); other
    stores use delta-rs' object-store handler with the sizes from the log (no HEAD calls).
    """
    import pyarrow.fs as pa_fs

    parts = urlsplit(table_uri)
    if parts.scheme in ("", "file"):
        root = url2pathname(parts.path) if parts.scheme else table_uri
        root = root.rstrip("/")
        return pa_fs.LocalFileSystem(), [f"{root}/{p}" for p in plan.paths]
    from deltalake.fs import DeltaStorageHandler

    handler = DeltaStorageHandler(
        table_uri, storage_options or None, dict(zip(plan.paths, plan.sizes))
    )
    return pa_fs.PyFileSystem(handler), list(plan.paths)


def sort_rows(table: pa.Table, keys: list[str], *, single_instrument: bool) -> pa.Table:
    """``table`` in ascending order of ``keys``, without a full multi-key sort when possible.

    Reads come out sorted unless a file was compacted without sorting (delta-rs'
    ``compact`` concatenates the day files of a month in log order): then the rows are a
    few sorted runs. A stable argsort of the timestamps (timsort: near linear on runs)
    yields the order, applied as zero-copy slices of those runs. The result is checked,
    and anything else falls back to a full sort.
    """
    if is_sorted(table, keys, single_instrument=single_instrument):
        return table
    n = table.num_rows
    if single_instrument and "timestamp" in table.column_names and table.column("timestamp").null_count == 0:
        import numpy as np

        values = pc.cast(table.column("timestamp"), pa.int64()).to_numpy()
        order = np.argsort(values, kind="stable")
        cuts = np.flatnonzero(np.diff(order) != 1) + 1
        if len(cuts) < 4096:
            starts = np.concatenate(([0], cuts))
            ends = np.concatenate((cuts, [n]))
            arranged = pa.concat_tables(
                [table.slice(int(order[a]), int(b - a)) for a, b in zip(starts, ends)]
            )
        else:
            arranged = table.take(pa.array(order))
        if is_sorted(arranged, keys, single_instrument=True):
            return arranged
    return table.sort_by([(k, "ascending") for k in keys if k in table.column_names])


def is_sorted(table: pa.Table, keys: list[str], *, single_instrument: bool) -> bool:
    """Whether ``table`` is already in ascending lexicographic order of ``keys``.

    One vectorized pass over adjacent rows, far cheaper than a multi-key sort. When the
    table holds one instrument, the exchange/coin keys are constant and skipped.
    """
    n = table.num_rows
    if n < 2:
        return True
    present = [k for k in keys if k in table.column_names]
    if single_instrument:
        present = [k for k in present if k not in _INSTRUMENT_COLUMNS]
    if not present:
        return True
    ordered: pa.ChunkedArray | None = None  # rows i, i+1 in order on the keys seen so far
    tied: pa.ChunkedArray | None = None  # rows i, i+1 equal on the keys seen so far
    for position, name in enumerate(present):
        column = table.column(name)
        if column.null_count:
            return False
        before, after = column.slice(0, n - 1), column.slice(1)
        last = position == len(present) - 1
        less = pc.less_equal(before, after) if last else pc.less(before, after)
        if ordered is None:
            ordered, tied = less, (None if last else pc.equal(before, after))
        else:
            ordered = pc.or_(ordered, pc.and_(tied, less))
            if not last:
                tied = pc.and_(tied, pc.equal(before, after))
        if tied is not None and not last and not pc.any(tied).as_py():
            break  # no ties: later keys cannot matter
    return bool(pc.all(ordered).as_py())
