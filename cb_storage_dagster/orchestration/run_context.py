"""What a market-data step reads from its run: its instrument-days and its run tags.

A run covers one partition or several (a range, a batch of a backfill); an exchange-day
partition stands for every configured coin of its exchange, narrowed in a repair run (run tag
``cb_storage/instruments``, :mod:`.run_scope`) to the instruments it names. A tag that cannot be
read fails the step at once and tags the run so the run retry does not re-launch it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import dagster as dg

from cb_storage_dagster.domain.keys import PartitionSlot
from cb_storage_dagster.orchestration.failures import forbid_run_retry
from cb_storage_dagster.orchestration.partitions import slots_of_keys
from cb_storage_dagster.orchestration.run_scope import INSTRUMENTS_TAG, repair_instruments

__all__ = ["run_partition_slots", "run_slots", "tag_value"]

T = TypeVar("T")
StepContext = dg.AssetExecutionContext | dg.AssetCheckExecutionContext


def run_partition_slots(
    context: StepContext,
    coins: Mapping[str, Sequence[str]] | None = None,
) -> list[PartitionSlot]:
    """The (exchange, coin, UTC day) slots of every partition of the run, sorted.

    A run covers one partition (``context.partition_key``) or several (a range, or a batch
    of a backfill); ``context.partition_keys`` lists them in both cases. An exchange-day
    partition stands for every coin ``coins`` lists for its exchange.
    """
    return slots_of_keys(context.partition_keys, coins)


def run_slots(
    context: StepContext,
    coins: Mapping[str, Sequence[str]] | None,
) -> list[PartitionSlot]:
    """:func:`run_partition_slots`, narrowed in a repair run of the exchange profile (run tag
    ``cb_storage/instruments``) to the instruments it names."""
    slots = run_partition_slots(context, coins)
    if coins is None:
        return slots
    repaired = tag_value(repair_instruments, context)
    if repaired is None:
        return slots
    unknown = sorted(f"{e}:{c}" for e, c in repaired if c not in coins.get(e, ()))
    if unknown:
        forbid_run_retry(context.instance, context.run.run_id)
        raise dg.Failure(f"A repair run names instruments this pipeline does not fetch: {', '.join(unknown)}. "
                         f"Name configured instruments in the {INSTRUMENTS_TAG} run tag.", allow_retries=False)
    return [slot for slot in slots if (slot.exchange, slot.coin) in repaired]


def tag_value(
    parse: Callable[[Mapping[str, str]], T], context: StepContext
) -> T:
    """``parse`` of the run's tags; a tag it refuses (``ValueError``) fails the step for good."""
    try:
        return parse(context.run.tags)
    except ValueError as exc:  # InvalidKeyError too
        forbid_run_retry(context.instance, context.run.run_id)
        raise dg.Failure(str(exc), allow_retries=False) from None
