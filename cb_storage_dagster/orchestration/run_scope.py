"""The exchange/coin/day partitions an IO context covers, from its Dagster partition keys.

Both directions of one mapping: :func:`run_scope` turns a run's (or an input's) partition keys
into the :class:`WriteScope` the storage manager writes or reads; :func:`rows_by_partition_key`
turns the writer's ``exchange/coin/date`` row counts back into one figure per partition key.

* ``date`` x ``instrument`` keys: one slot each; ``date`` x ``exchange`` keys: every coin of
  the exchange-day;
* daily keys: every instrument of the day; instrument keys: every day of the instrument;
* no partitions: the whole table.

A *repair run* of the ``exchange`` profile carries the run tag :data:`INSTRUMENTS_TAG`
(``cb_storage/instruments=binance:XRP,binance:DOGE``): its exchange-days then stand for those
instruments only, so the run fetches, replaces and re-builds exactly them and leaves every
other instrument of the day as it is stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import dagster as dg

from cb_storage_dagster.domain.keys import PartitionSlot, decode_instrument, parse_date
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.orchestration.partitions import (
    DATE_DIMENSION,
    EXCHANGE_DIMENSION,
    INSTRUMENT_DIMENSION,
    decode_exchange_day_key,
    decode_multi_key,
    is_exchange_day_key,
)

__all__ = ["INSTRUMENTS_TAG", "day_of", "repair_instruments", "repair_tags", "rows_by_partition_key", "run_scope"]

INSTRUMENTS_TAG = "cb_storage/instruments"
"""Run tag of a repair run: the ``<exchange>:<coin>`` keys (comma-separated) it re-runs."""


def repair_tags(instruments: Sequence[str]) -> dict[str, str]:
    """The tag of a run that re-runs only ``instruments`` of its exchange-days.

    >>> repair_tags(["binance:XRP", "binance:DOGE"])
    {'cb_storage/instruments': 'binance:DOGE,binance:XRP'}
    """
    pairs = sorted({decode_instrument(key.strip()) for key in instruments})
    return {INSTRUMENTS_TAG: ",".join(f"{e}:{c}" for e, c in pairs)}


def repair_instruments(tags: Mapping[str, str]) -> frozenset[tuple[str, str]] | None:
    """The instruments a repair run re-runs, or ``None`` for a normal run.

    Raises:
        InvalidKeyError: the tag holds something that is not ``<exchange>:<coin>``.
    """
    value = tags.get(INSTRUMENTS_TAG)
    if value is None or not value.strip():
        return None
    return frozenset(decode_instrument(key.strip()) for key in value.split(",") if key.strip())


def context_tags(context: dg.OutputContext | dg.InputContext) -> Mapping[str, str]:
    """The run's tags (none for a context built by hand)."""
    try:
        return context.step_context.run_tags
    except dg.DagsterInvariantViolationError:
        return {}


def run_scope(context: dg.OutputContext | dg.InputContext) -> WriteScope:
    """The exchange/coin/day partitions a run (or an input) covers (see the module docstring)."""
    if not context.has_asset_partitions:
        return WriteScope.everything()
    keys: Sequence[str] = context.asset_partition_keys
    partitions_def = context.asset_partitions_def
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        names = {d.name for d in partitions_def.partitions_defs}
        if names == {DATE_DIMENSION, EXCHANGE_DIMENSION}:  # the exchange profile
            exchange_days = [decode_exchange_day_key(key) for key in keys]
            repaired = repair_instruments(context_tags(context))
            if repaired is not None:
                return WriteScope.of_slots(
                    PartitionSlot(e, c, day) for exchange, day in exchange_days for e, c in sorted(repaired)
                    if e == exchange
                )
            return WriteScope.of_exchange_days(exchange_days)
        if names != {DATE_DIMENSION, INSTRUMENT_DIMENSION}:
            raise dg.Failure(
                f"MarketDataIOManager needs multi-partitions named {DATE_DIMENSION!r} and "
                f"{INSTRUMENT_DIMENSION!r} (or {EXCHANGE_DIMENSION!r}), got {sorted(names)}."
            )
        return WriteScope.of_slots(decode_multi_key(key) for key in keys)
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return WriteScope.of_days(day_of(key, partitions_def) for key in keys)
    return WriteScope.of_instruments(decode_instrument(key) for key in keys)


def day_of(key: str, partitions_def: dg.TimeWindowPartitionsDefinition) -> dt.date:
    window = partitions_def.time_window_for_partition_key(key)
    if window.end - window.start != dt.timedelta(days=1):
        raise dg.Failure("MarketDataIOManager supports daily time partitions only.")
    return parse_date(window.start.date())


def rows_by_partition_key(
    context: dg.OutputContext, rows_per_slot: Mapping[str, int]
) -> dict[str, int]:
    """Rows written per Dagster partition key, from the writer's ``exchange/coin/date`` counts.

    A ``date|instrument`` key is one slot; a ``date|exchange`` key sums every coin of that
    exchange-day; a daily key sums every instrument of that day; an instrument key sums every
    day of that instrument.
    """
    partitions_def = context.asset_partitions_def
    keys: Sequence[str] = context.asset_partition_keys
    slots = [(slot.split("/"), rows) for slot, rows in rows_per_slot.items()]
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        if keys and is_exchange_day_key(keys[0]):
            exchange_days = {key: decode_exchange_day_key(key) for key in keys}
            totals: dict[tuple[str, str], int] = {}
            for parts, rows in slots:
                totals[(parts[0], parts[2])] = totals.get((parts[0], parts[2]), 0) + rows
            return {key: totals.get((e, d.isoformat()), 0) for key, (e, d) in exchange_days.items()}
        return {key: rows_per_slot.get(str(decode_multi_key(key)), 0) for key in keys}
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        days = {key: day_of(key, partitions_def).isoformat() for key in keys}
        return {key: sum(rows for parts, rows in slots if parts[2] == day) for key, day in days.items()}
    instruments = {key: list(decode_instrument(key)) for key in keys}
    return {
        key: sum(rows for parts, rows in slots if parts[:2] == instrument)
        for key, instrument in instruments.items()
    }
