"""The process-wide pool of threads that fetch from an object store: data files of one read,
log commits, a listing and an index together (one round trip for all of them); work on the
processor (parsing local footers and commits, decoding) goes in one run per core on the same
threads.

Threads are started as work first needs them, and starting one is not free (~2 ms measured
in this project's sandbox): a new process's first read of 30 local files parsed their footers
on 30 new threads (25 of its ~105 ms in a profile; 4-5 ms measured without the profiler),
where two cores could use two.

>>> map_concurrently(lambda n: n * n, [1, 2, 3])
[1, 4, 9]
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pyarrow as pa

T = TypeVar("T")
R = TypeVar("R")

MAX_CONCURRENT_FETCHES = 32
"""Data files of one read fetched at once from an object store."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _fetch_pool() -> ThreadPoolExecutor:
    """The pool (created on first use).

    pyarrow issues the coalesced ranged reads of ``pre_buffer`` on its IO thread pool (8
    threads by default), which would cap a read at 8 files per round trip: it is raised to
    :data:`MAX_CONCURRENT_FETCHES` (never lowered)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            if pa.io_thread_count() < MAX_CONCURRENT_FETCHES:
                pa.set_io_thread_count(MAX_CONCURRENT_FETCHES)
            _pool = ThreadPoolExecutor(max_workers=MAX_CONCURRENT_FETCHES, thread_name_prefix="delta-fetch")
        return _pool


def map_concurrently(function: Callable[[T], R], items: Sequence[T], *, on_processor: bool = False) -> list[R]:
    """``function`` of each item, in order, run on the fetch pool (one item: inline).
    ``on_processor``: the work waits on no store (it parses or decodes what is at hand), so
    it goes in one run of items per core (:func:`map_in_runs`), not a thread per item.

    >>> map_concurrently(len, ["a", "bc", "def"], on_processor=True)
    [1, 2, 3]
    """
    if len(items) <= 1:
        return [function(item) for item in items]
    if on_processor:
        return map_in_runs(lambda run: [function(item) for item in run], list(items), min_run=1)
    return list(_fetch_pool().map(function, items))


def map_in_runs(function: Callable[[list[T]], list[R]], items: list[T], *, min_run: int,
                weigh: Callable[[T], int] | None = None, cores: int | None = None) -> list[R]:
    """``function`` of consecutive runs of ``items``, its results joined in order: one run per
    core (``cores``, default the machine's), each weighing at least ``min_run`` (``weigh(item)``, else 1 per item; less in all:
    one run, inline), the runs about equal in weight. For work that releases the GIL for much
    of its time (pyarrow decoding).

    >>> map_in_runs(lambda run: [len(run)], list(range(10)), min_run=10)  # one run: too few items
    [10]
    >>> map_in_runs(lambda run: run, list(range(10)), min_run=1)
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    weights = [weigh(item) for item in items] if weigh is not None else [1] * len(items)
    total = sum(weights)
    runs = min(cores or os.cpu_count() or 1, total // max(min_run, 1), len(items))
    if runs <= 1:
        return function(items)
    cuts, reached = [0], 0
    for position, weight in enumerate(weights):
        reached += weight
        if reached * runs >= total * len(cuts) and len(cuts) < runs:
            cuts.append(position + 1)
    cuts.append(len(items))
    pieces = [items[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]
    return [result for run in map_concurrently(function, pieces) for result in run]


__all__ = ["MAX_CONCURRENT_FETCHES", "map_concurrently", "map_in_runs"]
