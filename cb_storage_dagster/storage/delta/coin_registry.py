"""The coin registry of an exchange-layout table: which ``(coin, date)`` pairs each data file holds.

In the ``exchange`` layout ``coin`` is a data column, so the log's partition values cannot
list coins, and reading the ``coin`` column of every file in a new process took seconds at
2,000 coins. The registry is one small Parquet object beside the log,
``<table>/_cb_registry/coin_days.parquet`` (a ``_`` folder: Delta readers and vacuum ignore
it), with rows ``(path, size, coin, date)``.

Why it is always correct, whatever crashed or wrote meanwhile: it holds only **facts about
immutable data files** (a Delta data file is never rewritten; its path is unique), never the
answer itself. A listing takes the table's current files from the log (the authority, at
whatever version a foreign writer left it), the facts of the files the registry knows, and
reads the ``coin``/``date`` columns of the files it does not know (written by another tool, a
merge, a delete, a writer that crashed before registering, or lost in a race). Files removed
by replaces, deletes or compaction simply stop being asked for. So a registry can be
incomplete (slower, and then completed by the listing that noticed) but never wrong, and
"atomic with the commit" reduces to: facts are added only after the file is committed, the
object is replaced in one atomic ``save_bytes``, and concurrent updaters that overwrite each
other only lose entries. Entries of files no longer in the table are dropped on each update.

Writers register what they know exactly without reading anything back: for each partition to
which their commit added exactly one file holding exactly their rows of it (``numRecords`` in
the commit's add action), the ``(coin, date)`` pairs of those rows.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cb_storage_dagster.domain.errors import NotFoundError, StorageError
from cb_storage_dagster.domain.schemas import DATE_COLUMN, MONTH_COLUMN

if TYPE_CHECKING:
    from cb_storage_dagster.storage.interfaces import IStorageBackend

logger = logging.getLogger(__name__)

REGISTRY_OBJECT = "_cb_registry/coin_days.parquet"
"""Where a table's registry lives, relative to the table's folder."""
SCHEMA = pa.schema([("path", pa.string()), ("size", pa.int64()), ("coin", pa.string()), (DATE_COLUMN, pa.date32())])


def _key(paths: pa.ChunkedArray | pa.Array, sizes: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A file's identity: its path and size (a size mismatch means another file, never trusted)."""
    return pc.binary_join_element_wise(pc.cast(paths, pa.string()), pc.cast(sizes, pa.string()), "|")


class CoinRegistry:
    """The registries of the exchange-layout tables under one backend.

    >>> import tempfile
    >>> from cb_storage_dagster import LocalFileBackend
    >>> registry = CoinRegistry(LocalFileBackend(tempfile.mkdtemp()))
    >>> registry.load("ohlcv").num_rows
    0
    """

    def __init__(self, backend: IStorageBackend) -> None:
        self.backend = backend

    def load(self, table: str) -> pa.Table:
        """The stored facts (none if there is no registry, or it is unreadable)."""
        try:
            raw = self.backend.load_bytes(f"{table}/{REGISTRY_OBJECT}")
        except NotFoundError:
            return SCHEMA.empty_table()
        try:
            return pq.read_table(io.BytesIO(raw)).select(SCHEMA.names).cast(SCHEMA)
        except (pa.ArrowException, KeyError, ValueError):
            logger.warning("Coin registry of %r is unreadable; it is rebuilt from the data files.", table)
            return SCHEMA.empty_table()

    def coin_days(
        self, table: str, files: pa.Table, all_files: pa.Table, read_files: Callable[[pa.Table], list[pa.Table]]
    ) -> pa.Table:
        """``(path, size, coin, date)`` facts of ``files`` (add actions with ``path`` and
        ``size_bytes``).

        Known files come from the registry; ``read_files`` resolves the others (one pairs
        table per action, in order), and their facts are saved, dropping entries of files that
        are not in ``all_files`` (the version's add actions) any more.
        """
        facts = self.load(table)
        wanted = _key(files.column("path"), files.column("size_bytes"))
        known_keys = pc.unique(_key(facts.column("path"), facts.column("size"))) if facts.num_rows else pa.array(
            [], pa.string())
        missing = files.filter(pc.invert(pc.is_in(wanted, value_set=known_keys)))
        known = facts.filter(pc.is_in(_key(facts.column("path"), facts.column("size")), value_set=wanted))
        if missing.num_rows:
            new = []
            for action, pairs in zip(missing.to_pylist(), read_files(missing)):
                new.append(_facts(action["path"], action["size_bytes"], pairs))
            added = pa.concat_tables(new)
            self._save(table, pa.concat_tables([facts, added]), all_files)
            known = pa.concat_tables([known, added])
        return known

    def register_commit(
        self, table: str, version: int, days: pa.Table, all_files: pa.Table, facts: pa.Table | None = None
    ) -> pa.Table | None:
        """After a replace committed as ``version`` whose rows are summarized by ``days``
        (:func:`instrument_days`): record the files of that commit that hold exactly its rows
        of their partition, on top of ``facts`` (default: the stored ones). Returns the facts
        saved. Best effort: a failure leaves the files unknown (the next listing reads them),
        never a wrong entry."""
        try:
            added = self._exact_files(table, version, days)
            if added is not None and added.num_rows:
                return self._save(table, pa.concat_tables([self.load(table) if facts is None else facts, added]),
                                  all_files)
        except StorageError as error:
            logger.warning("Coin registry of %r not updated after version %d (%s).", table, version,
                           type(error).__name__)
        return None

    def coins_of(
        self, table: str, removes: list[dict], facts: pa.Table | None = None
    ) -> set[tuple[str, str]] | None:
        """The ``(exchange, coin)`` pairs the files of ``removes`` (``remove`` actions of a
        commit) held, or ``None`` if one of them is not registered."""
        facts = self.load(table) if facts is None else facts
        known = dict.fromkeys(facts.column("path").to_pylist()) if facts.num_rows else {}
        pairs: set[tuple[str, str]] = set()
        for remove in removes:
            exchange = (remove.get("partitionValues") or {}).get("exchange")
            if exchange is None or remove.get("path") not in known:
                return None
            mine = facts.filter(pc.equal(facts.column("path"), remove["path"]))
            pairs.update((exchange, c) for c in mine.column("coin").to_pylist())
        return pairs

    def instruments_of(
        self, table: str, actions: pa.Table, facts: pa.Table | None = None
    ) -> set[tuple[str, str]] | None:
        """The ``(exchange, coin)`` pairs of the files of ``actions`` (flattened add actions
        of a version), or ``None`` if one of them is not registered."""
        facts = self.load(table) if facts is None else facts
        wanted = _key(actions.column("path"), actions.column("size_bytes"))
        facts = facts.filter(pc.is_in(_key(facts.column("path"), facts.column("size")), value_set=wanted))
        if pc.count_distinct(facts.column("path")).as_py() != actions.num_rows:
            return None
        exchange_of = dict(zip(actions.column("path").to_pylist(), actions.column("partition.exchange").to_pylist()))
        unique = facts.select(["path", "coin"]).group_by(["path", "coin"], use_threads=False).aggregate([])
        return {(exchange_of[p], c) for p, c in zip(unique.column("path").to_pylist(), unique.column("coin").to_pylist())}

    # -- internals ------------------------------------------------------------------------
    def _exact_files(self, table: str, version: int, days: pa.Table) -> pa.Table | None:
        raw = self.backend.load_bytes(f"{table}/_delta_log/{version:020d}.json")
        adds: dict[tuple[str, str], list[dict]] = {}
        for line in raw.decode().splitlines():
            action = json.loads(line) if line.strip() else {}
            add = action.get("add")
            if add:
                values = add.get("partitionValues") or {}
                adds.setdefault((values.get("exchange"), values.get(MONTH_COLUMN)), []).append(add)
        if not adds:
            return None
        groups = days.group_by(["exchange", MONTH_COLUMN], use_threads=False).aggregate([("rows", "sum")])
        counts = {(e, m): n for e, m, n in zip(*(groups.column(c).to_pylist() for c in groups.column_names))}
        out = []
        for (exchange, month), files in adds.items():
            if len(files) != 1 or (exchange, month) not in counts:
                continue
            stats = json.loads(files[0].get("stats") or "{}")
            if stats.get("numRecords") != counts[(exchange, month)]:
                continue  # the file also holds rows the commit kept from a rewritten file
            mine = days.filter(pc.and_(pc.equal(days.column("exchange"), exchange),
                                       pc.equal(days.column(MONTH_COLUMN), month)))
            pairs = mine.select(["coin", DATE_COLUMN]).group_by(["coin", DATE_COLUMN], use_threads=False).aggregate([])
            out.append(_facts(files[0]["path"], int(files[0]["size"]), pairs))
        return pa.concat_tables(out) if out else None

    def _save(self, table: str, facts: pa.Table, all_files: pa.Table) -> pa.Table:
        live = _key(all_files.column("path"), all_files.column("size_bytes"))
        facts = facts.filter(pc.is_in(_key(facts.column("path"), facts.column("size")), value_set=live))
        facts = facts.group_by(SCHEMA.names, use_threads=False).aggregate([]).select(SCHEMA.names).cast(SCHEMA)
        sink = io.BytesIO()
        pq.write_table(facts.sort_by([("path", "ascending"), ("coin", "ascending")]), sink,
                       use_dictionary=True, compression="zstd")
        self.backend.save_bytes(f"{table}/{REGISTRY_OBJECT}", sink.getvalue())
        return facts


def instrument_days(data: pa.Table) -> pa.Table:
    """``(exchange, month, coin, date, rows)`` of normalized ``data``, one row per run of equal
    values: what a commit wrote, in a few thousand rows instead of millions. Writers sort by
    exchange, coin and time, so each instrument-day is one run (comparing neighbours is ~10x
    cheaper than a hash group-by of an exchange-day); unsorted data only gives more runs.

    >>> import datetime as dt
    >>> day = dt.date(2024, 1, 2)
    >>> rows = pa.table({"exchange": ["b", "b", "b"], "month": ["2024-01"] * 3, "coin": ["A", "A", "B"],
    ...                  "date": pa.array([day] * 3, pa.date32())})
    >>> instrument_days(rows).column("rows").to_pylist()
    [2, 1]
    """
    columns = ["exchange", MONTH_COLUMN, "coin", DATE_COLUMN]
    n = data.num_rows
    if n == 0:
        return pa.table({**{c: data.column(c) for c in columns}, "rows": pa.array([], pa.int64())})
    change = None
    for name in ("exchange", "coin", DATE_COLUMN):
        column = data.column(name)
        differs = pc.fill_null(pc.not_equal(column.slice(1), column.slice(0, n - 1)), True)
        change = differs if change is None else pc.or_(change, differs)
    after = pc.indices_nonzero(change)
    if isinstance(after, pa.ChunkedArray):
        after = after.combine_chunks()
    starts = pa.concat_arrays([pa.array([0], pa.int64()), pc.add(after.cast(pa.int64()), 1)])
    counts = pc.subtract(pa.concat_arrays([starts.slice(1), pa.array([n], pa.int64())]), starts)
    runs = data.select(columns).take(starts)
    return runs.append_column("rows", counts)


def _facts(path: str, size: int, pairs: pa.Table) -> pa.Table:
    n = pairs.num_rows
    return pa.table({
        "path": pa.array([path] * n, pa.string()), "size": pa.array([size] * n, pa.int64()),
        "coin": pc.cast(pairs.column("coin"), pa.string()), DATE_COLUMN: pc.cast(pairs.column(DATE_COLUMN), pa.date32()),
    }, schema=SCHEMA)


__all__ = ["REGISTRY_OBJECT", "CoinRegistry", "instrument_days"]
