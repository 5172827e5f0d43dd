"""The fetch pool (``storage/delta/fetch_pool.py``): fetches from a store wait together, one
thread each; work on the processor goes in one run per core, so it never starts more
threads than the machine has cores (starting a thread is not free)."""

from __future__ import annotations

import os
import threading

import pytest

from cb_storage_dagster.storage.delta.fetch_pool import MAX_CONCURRENT_FETCHES, map_concurrently


def test_processor_work_runs_on_at_most_one_thread_per_core_and_keeps_the_order(monkeypatch) -> None:
    """The pool is handed at most one task per core (whatever the timing of the threads), and
    the results come back in the items' order."""
    from cb_storage_dagster.storage.delta import fetch_pool

    pool = fetch_pool._fetch_pool()
    tasks: list[int] = []

    class CountingPool:
        def map(self, function, items):
            items = list(items)
            tasks.append(len(items))
            return pool.map(function, items)

    monkeypatch.setattr(fetch_pool, "_fetch_pool", lambda: CountingPool())
    threads: set[int] = set()

    def square(n: int) -> int:
        threads.add(threading.get_ident())
        return n * n

    assert map_concurrently(square, list(range(30)), on_processor=True) == [n * n for n in range(30)]
    cores = os.cpu_count() or 1
    assert tasks == ([min(cores, 30)] if cores > 1 else []) and 1 <= len(threads) <= cores
    tasks.clear()
    assert map_concurrently(square, list(range(30))) == [n * n for n in range(30)]
    assert tasks == [30]  # (fetches: a task per item)


def test_fetches_wait_together_on_a_thread_each() -> None:
    together = threading.Barrier(8, timeout=30)  # (breaks unless eight run at once)

    def fetch(n: int) -> int:
        together.wait()
        return n

    assert 8 <= MAX_CONCURRENT_FETCHES
    assert map_concurrently(fetch, list(range(8))) == list(range(8))


def test_an_error_in_processor_work_reaches_the_caller() -> None:
    def parse(n: int) -> int:
        if n == 7:
            raise ValueError("commit 7 is not JSON")
        return n

    with pytest.raises(ValueError, match="commit 7"):
        map_concurrently(parse, list(range(10)), on_processor=True)
