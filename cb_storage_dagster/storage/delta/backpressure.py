"""Backpressure for a streamed Delta write: the producer of chunks waits for delta-rs' encoder.

delta-rs 1.6 pulls the batches of a streamed write (``write_deltalake`` of a
``RecordBatchReader``) ahead of its Parquet encoder into a queue that never blocks the
producer (most likely DataFusion's repartition channels: every row of one exchange-month goes
to one channel, and a channel does not block while a sibling is empty). Nothing then slows a
producer that is faster than the encoder, and chunks read back from a spool
(:mod:`cb_storage_dagster.storage.spool`) are: the run's data waits in memory, measured at
~60% of the bytes streamed (200 instruments x 32 exchange-days of trades: +0.7 GB). The same
write fed by a producer slower than the encoder stays flat, and so does delta-rs with a slow
generator of the same size.

:class:`WriterBackpressure` paces the producer by what the process holds: before each
chunk, while the resident set is more than a budget above what it was when the write began,
the producer waits (polling) for the encoder to drain the channel, which frees those
buffers. Memory held elsewhere never stalls a write for long: after :data:`STALL_SECONDS`
without a drop the current level becomes the new baseline and the stream goes on.
Without ``/proc`` (not Linux) there is nothing to measure and it never waits.

The resident set drops when delta-rs frees only if its allocator gives pages back soon:
delta-rs ships its own jemalloc, which keeps freed pages for 10 s by default. Importing
``cb_storage_dagster`` sets :data:`DELTA_ALLOCATOR_CONF` as that jemalloc's configuration
(``_RJEM_MALLOC_CONF``, read when delta-rs first allocates) unless the variable is already
set; a process that loaded delta-rs before still paces, with longer waits.

Example:
    >>> pacer = WriterBackpressure(budget_bytes=1 << 40)  # a budget nothing reaches
    >>> pacer.before_chunk()
    0.0
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

__all__ = [
    "DELTA_ALLOCATOR_CONF",
    "DELTA_ALLOCATOR_VARIABLE",
    "POLL_SECONDS",
    "STALL_SECONDS",
    "STREAM_BUDGET_BYTES",
    "WriterBackpressure",
    "configure_delta_allocator",
    "resident_bytes",
]

logger = logging.getLogger(__name__)

STREAM_BUDGET_BYTES = 384 * 1024 * 1024
"""How far the resident set may rise above its level at the start of a streamed write before
the producer waits (a few chunks of 250 instruments x one day of trades, plus delta-rs'
row-group and file buffers)."""
POLL_SECONDS = 0.02
"""How often a waiting producer looks at the resident set again."""
STALL_SECONDS = 12.0
"""How long a producer waits for a drop before it takes the current level as its baseline:
longer than jemalloc's default decay (10 s), so that a drained queue shows even where
:data:`DELTA_ALLOCATOR_CONF` could not be set."""

DELTA_ALLOCATOR_VARIABLE = "_RJEM_MALLOC_CONF"
"""The variable delta-rs' bundled jemalloc reads its configuration from (its symbols carry the
``_rjem_`` prefix, so plain ``MALLOC_CONF`` does not reach it)."""
DELTA_ALLOCATOR_CONF = "dirty_decay_ms:1000,muzzy_decay_ms:0"
"""Freed pages go back to the system within a second instead of ten (measured: a streamed
write of 200 instruments x 32 days of trades ends at 0.41 instead of 1.22 GB resident)."""

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def configure_delta_allocator() -> None:
    """Set :data:`DELTA_ALLOCATOR_CONF` for delta-rs' jemalloc unless the variable is set."""
    os.environ.setdefault(DELTA_ALLOCATOR_VARIABLE, DELTA_ALLOCATOR_CONF)


def resident_bytes() -> int | None:
    """The process's resident set in bytes, or ``None`` where ``/proc`` does not tell it."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


class WriterBackpressure:
    """Paces the chunks of one streamed write (see the module docstring).

    Args:
        budget_bytes: how far above its starting level the resident set may rise.
        measure: the resident set in bytes (``None``: unknown, never wait); tests pass a fake.
        sleep: how to wait (tests pass a fake clock).
    """

    def __init__(
        self,
        budget_bytes: int = STREAM_BUDGET_BYTES,
        *,
        measure: Callable[[], int | None] = resident_bytes,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.budget_bytes = budget_bytes
        self._measure = measure
        self._sleep = sleep
        self._baseline = measure()
        self.waited_seconds = 0.0
        self.stalls = 0

    def before_chunk(self) -> float:
        """Wait until the resident set is back under the budget (or the wait stalls); the
        seconds waited."""
        if self._baseline is None:
            return 0.0
        waited = 0.0
        while True:
            level = self._measure()
            if level is None or level <= self._baseline + self.budget_bytes:
                break
            if waited >= STALL_SECONDS:
                # Held by something else than this write's queue: go on from here.
                self.stalls += 1
                logger.info("Streamed write: %.0f MB stay resident after %.0f s; pacing from this level on.",
                            level / 2**20, waited)
                self._baseline = level
                break
            self._sleep(POLL_SECONDS)
            waited += POLL_SECONDS
        self.waited_seconds += waited
        return waited
