"""How often a table is checkpointed: new tables carry the interval as a table property that
delta-rs honours after every commit, and the writers checkpoint tables that lack it
(:func:`checkpoint_if_due`), so that a new process opens a table from a recent checkpoint; at the
same cadence they store the table's file index (:func:`index_if_due`, :mod:`.file_index`), from
which a new process reads without opening the table through delta-rs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cb_storage_dagster.storage.delta.tables import DeltaTables

__all__ = ["CHECKPOINT_INTERVAL_PROPERTY", "INDEX_AFTER_INSTRUMENT_DAYS", "checkpoint_if_due", "index_if_due",
           "table_configuration"]

logger = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_PROPERTY = "delta.checkpointInterval"
"""The table property delta-rs 1.6 honours after every commit (write, merge, delete): it
writes a checkpoint when ``(version + 1) % interval == 0`` (verified by the log files)."""


def table_configuration(checkpoint_interval: int) -> dict[str, str]:
    """The properties a new table is created with: a checkpoint every ``checkpoint_interval``
    commits instead of delta-rs' 100, so that a new process opening a table of daily writes
    replays at most that many JSON commits (the first listing went from ~50 to ~21 ms after
    120 daily commits at 20)."""
    return {CHECKPOINT_INTERVAL_PROPERTY: str(int(checkpoint_interval))}


def checkpoint_if_due(tables: DeltaTables, table: str, version: int) -> None:
    """Checkpoint ``version`` when delta-rs will not (the table's own interval is missing
    or larger than ours) and it is a multiple of our interval. The commit has happened:
    a failed checkpoint only leaves the next open a longer log, so it is logged, not raised."""
    if version <= 0 or version % tables.checkpoint_interval:
        return
    delta_table = tables.writers.get(tables.uri(table))
    if delta_table is None or delta_table.version() != version:
        return  # moved on meanwhile: a later commit's checkpoint covers it
    own = delta_table.metadata().configuration.get(CHECKPOINT_INTERVAL_PROPERTY)
    if own is not None and own.isdigit() and 0 < int(own) <= tables.checkpoint_interval:
        return
    try:
        delta_table.create_checkpoint()
    except Exception as exc:  # the write succeeded; see the docstring
        error = tables.translate(exc, table, "checkpoint")
        logger.warning("Checkpoint of %r at version %d failed (%s): %s", table, version,
                       type(error).__name__, error)


INDEX_AFTER_INSTRUMENT_DAYS = 500
"""A commit that wrote at least this many instrument-days stores the file index whatever its
version. Such a commit adds a file per instrument-day in the instrument layout, ~0.9 KB of JSON
each, which every new process would replay until the next stored index: ten exchange-day
commits of 2,000 instruments cost a new process's first read ~110 ms of parsing; storing the
index of 60,000 files costs the writer ~25 ms (of a ~1.7 s commit)."""


def index_if_due(tables: DeltaTables, table: str, version: int, *, instrument_days: int = 0) -> None:
    """Store ``table``'s file index every ``checkpoint_interval`` versions, and after a commit
    that wrote ``instrument_days`` >= :data:`INDEX_AFTER_INSTRUMENT_DAYS`, from the writer's
    table object at ``version`` (best effort, like the checkpoint): a new process then replays
    fewer commits than that, and few files, on top of it."""
    if version % tables.checkpoint_interval and instrument_days < INDEX_AFTER_INSTRUMENT_DAYS:
        return
    writer = tables.writers.get(tables.uri(table))
    if writer is not None and writer.version() == version:
        tables.file_indexes.store(table, writer)
