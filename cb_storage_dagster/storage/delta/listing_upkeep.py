"""Listings kept current by the writers: after a replace, the stamped instrument list and the
exchange layout's coin registry advance with the commit, so that ``list_coins`` in a new process
reads a small file instead of the log's files or the data."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from cb_storage_dagster.storage.layout import layout_of

if TYPE_CHECKING:
    from cb_storage_dagster.storage.delta.tables import DeltaTables

__all__ = ["keep_listings_current"]


def keep_listings_current(tables: DeltaTables, table: str, version: int, days: pa.Table) -> None:
    """After a replace: advance the stamped instrument list (:mod:`.instrument_snapshot`) and,
    in the exchange layout, register the coins of the files just written
    (:mod:`.coin_registry`), so that listings read neither the log's files nor data. ``days`` is
    :func:`~.coin_registry.instrument_days` of the rows the commit wrote."""
    writer = tables.writers.get(tables.uri(table))
    if writer is None or writer.version() != version:
        return  # reopened meanwhile (a conflict): the next listing recomputes
    exchange_layout = layout_of(writer.metadata().partition_columns) == "exchange"
    written = set(zip(days.column("exchange").to_pylist(), days.column("coin").to_pylist()))
    facts = tables.coin_registry.load(table) if exchange_layout else None

    def removed_pairs(removes: list[dict]) -> set[tuple[str, str]] | None:
        if exchange_layout:
            return tables.coin_registry.coins_of(table, removes, facts)
        return _partition_pairs(removes)

    def added_pairs(adds: list[dict]) -> set[tuple[str, str]] | None:
        if not adds:
            return set()  # (a commit that adds no file: a vacuum's, a metadata change)
        if exchange_layout:
            return None  # (another writer's files: their coins are not registered)
        return _partition_pairs(adds)

    advanced = tables.instrument_snapshots.advance(table, version, written, removed_pairs, added_pairs)
    if advanced and not exchange_layout:
        return
    actions = pa.table(writer.get_add_actions(flatten=True))
    if exchange_layout:
        facts = tables.coin_registry.register_commit(
            table, version, days, actions.select(["path", "size_bytes"]), facts) or facts
    if advanced:
        return
    if exchange_layout:  # the whole list from the registered facts, if every file is known
        pairs = tables.coin_registry.instruments_of(table, actions, facts)
    else:
        unique = actions.select(["partition.exchange", "partition.coin"]).group_by(
            ["partition.exchange", "partition.coin"], use_threads=False).aggregate([])
        pairs = set(zip(unique.column(0).to_pylist(), unique.column(1).to_pylist()))
    if pairs is not None:
        tables.instrument_snapshots.save(table, version, pairs)


def _partition_pairs(actions: list[dict]) -> set[tuple[str, str]] | None:
    """The ``(exchange, coin)`` partition values of add or remove actions of the instrument
    layout; ``None`` where one lacks them.

    >>> _partition_pairs([{"partitionValues": {"exchange": "binance", "coin": "BTC", "month": "2024-01"}}])
    {('binance', 'BTC')}
    >>> _partition_pairs([{"partitionValues": {"exchange": "binance", "coin": None}}]) is None
    True
    """
    values = [action.get("partitionValues") or {} for action in actions]
    if any(not isinstance(v.get("exchange"), str) or not isinstance(v.get("coin"), str) for v in values):
        return None
    return {(v["exchange"], v["coin"]) for v in values}
