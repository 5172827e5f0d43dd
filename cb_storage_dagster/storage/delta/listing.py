"""Delta listings: which instruments a table holds, and which days one instrument has.

Answered from the log where it can be: partition values (``instrument`` layout) and per-file
``date`` statistics, resolved by reading one or two columns of a file only where the log
cannot tell (a compacted file spanning days; the ``exchange`` layout, where coin is data),
once per file (:meth:`.scan.DeltaScanPlanner.coin_days_of_files`). Tables the fast path
refuses are listed through DataFusion (:mod:`.read_sql`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from cb_storage_dagster.domain.errors import NotFoundError, StorageError
from cb_storage_dagster.domain.schemas import DATE_COLUMN
from cb_storage_dagster.storage.delta import read_sql
from cb_storage_dagster.storage.delta.fast_path import fast_path_refusal
from cb_storage_dagster.storage.delta.pruning import coin_mask
from cb_storage_dagster.storage.delta.scan import DeltaScanPlanner
from cb_storage_dagster.storage.delta.tables import DeltaTables
from cb_storage_dagster.storage.layout import layout_of

if TYPE_CHECKING:
    from deltalake import DeltaTable

T = TypeVar("T")


def instruments(tables: DeltaTables, scans: DeltaScanPlanner, table: str) -> list[tuple[str, str]]:
    """``(exchange, coin)`` pairs: the stamped list of the latest version
    (:mod:`.instrument_snapshot`: no table open) when there is one; else from the log's
    partition values (instrument layout) or the coin registry (exchange layout) on the fast
    path, or a ``SELECT DISTINCT`` through DataFusion, and then stamped for the next listing."""
    stamped = tables.instrument_snapshots.lookup(table)
    if stamped is not None:
        return stamped

    def pairs_of(delta_table: DeltaTable) -> list[tuple[str, str]]:
        if fast_path_refusal(delta_table) is not None:
            pairs = read_sql.instruments(delta_table, table)
        elif layout_of(delta_table.metadata().partition_columns) == "exchange":
            pairs = _exchange_layout_instruments(tables, scans, delta_table, table)
        else:
            pairs = _instrument_layout_instruments(scans, delta_table)
        tables.instrument_snapshots.save(table, delta_table.version(), pairs)
        return pairs

    return _listing(tables, table, pairs_of) or []


def _instrument_layout_instruments(scans: DeltaScanPlanner, delta_table: DeltaTable) -> list[tuple[str, str]]:
    actions = scans.snapshot(delta_table).actions
    if actions.num_rows == 0:
        return []
    pairs = actions.select(["partition.exchange", "partition.coin"])
    unique = pairs.group_by(pairs.column_names).aggregate([])
    return sorted(zip(unique.column(0).to_pylist(), unique.column(1).to_pylist()))


def list_dates(tables: DeltaTables, scans: DeltaScanPlanner, table: str, exchange: str, coin: str) -> list[dt.date]:
    """Days from the log's per-file ``date`` statistics on the fast path; files that span
    several days (after compaction) are resolved by reading only their ``date`` column
    (once per file: data files never change). Other tables: DataFusion."""

    def dates_of(delta_table: DeltaTable) -> list[dt.date]:
        if fast_path_refusal(delta_table) is not None:
            return read_sql.list_dates(delta_table, table, exchange, coin)
        if layout_of(delta_table.metadata().partition_columns) == "exchange":
            return _exchange_layout_dates(tables, scans, delta_table, table, exchange, coin)
        actions = scans.snapshot(delta_table).actions
        if actions.num_rows == 0:
            return []
        mask = pc.and_(
            pc.equal(actions.column("partition.exchange"), exchange),
            pc.equal(actions.column("partition.coin"), coin),
        )
        mine = actions.filter(mask)
        if mine.num_rows == 0:
            return []
        lo, hi = mine.column(f"min.{DATE_COLUMN}"), mine.column(f"max.{DATE_COLUMN}")
        one_day = pc.fill_null(pc.equal(lo, hi), False)
        days = set(lo.filter(one_day).to_pylist())
        spanning = mine.filter(pc.invert(one_day))
        if spanning.num_rows:
            days |= scans.dates_of_files(delta_table, spanning, tables.backend.get_storage_options())
        return sorted(days)

    return _listing(tables, table, dates_of) or []


def _listing(tables: DeltaTables, table: str, action: Callable[[DeltaTable], T]) -> T | None:
    """``action`` on the latest version (``None`` if there is no table), errors translated."""
    try:
        delta_table = tables.open(table)
    except NotFoundError:
        return None
    try:
        return action(delta_table)
    except StorageError:
        raise
    except Exception as exc:
        raise tables.translate(exc, table, "listing") from None


def _coin_facts(
    tables: DeltaTables, scans: DeltaScanPlanner, delta_table: DeltaTable, table: str, files: pa.Table
) -> pa.Table:
    """``(path, size, coin, date)`` of ``files``: from the table's coin registry, the files it
    does not know read once (``coin`` and ``date`` columns only) and registered."""
    options = tables.backend.get_storage_options()

    def read_files(missing: pa.Table) -> list[pa.Table]:
        return [scans.coin_days_of_files(delta_table, missing.slice(i, 1), options) for i in range(missing.num_rows)]

    return tables.coin_registry.coin_days(table, files, scans.snapshot(delta_table).actions, read_files)


def _exchange_layout_instruments(
    tables: DeltaTables, scans: DeltaScanPlanner, delta_table: DeltaTable, table: str
) -> list[tuple[str, str]]:
    """Exchange layout: coins are data; each file's coins come from the coin registry
    (:mod:`.coin_registry`), files it does not know are read once. Fast-path tables only."""
    actions = scans.snapshot(delta_table).actions
    if actions.num_rows == 0:
        return []
    facts = _coin_facts(tables, scans, delta_table, table, actions)
    exchange_of = actions.select(["path", "partition.exchange"]).group_by(["path", "partition.exchange"]).aggregate([])
    pairs = facts.select(["path", "coin"]).join(exchange_of, "path").select(["partition.exchange", "coin"])
    unique = pairs.group_by(pairs.column_names, use_threads=False).aggregate([])
    return sorted(zip(unique.column(0).to_pylist(), unique.column(1).to_pylist()))


def _exchange_layout_dates(
    tables: DeltaTables, scans: DeltaScanPlanner, delta_table: DeltaTable, table: str, exchange: str, coin: str
) -> list[dt.date]:
    """Exchange layout: the files whose coin statistics admit ``coin``, resolved to the
    days they hold for it through the coin registry (a file's coin range may skip coins:
    never inferred). Fast-path tables only."""
    actions = scans.snapshot(delta_table).actions
    if actions.num_rows == 0:
        return []
    mine = actions.filter(pc.and_(pc.equal(actions.column("partition.exchange"), exchange),
                                  coin_mask(actions, coin)))
    if mine.num_rows == 0:
        return []
    facts = _coin_facts(tables, scans, delta_table, table, mine)
    days = facts.filter(pc.equal(facts.column("coin"), coin)).column(DATE_COLUMN)
    return sorted(pc.unique(days).to_pylist())


__all__ = ["instruments", "list_dates"]
