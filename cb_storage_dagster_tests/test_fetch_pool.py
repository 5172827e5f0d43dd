"""The fetch pool (``storage/delta/fetch_pool.py``): fetches from a store wait together, one
thread each; work on the processor goes in one run per core, so it never starts more
threads than the machine has cores (starting a thread is not free)."""

from __future__ import annotations

import os
import threading

import pytest

from cb_storage_dagster.storage.delta.fetch_pool import MAX_CONCURRENT_FETCHES, map_concurrently


def test_processor_work_runs_on_at_most_one_thread_per_core_and_keeps_the_order() -> None:
    threads: set[int] = set()

    def square(n: int) -> int:
        threads.add(threading.get_ident())
        return n * n

    assert map_concurrently(square, list(range(30)), on_processor=True) == [n * n for n in range(30)]
    assert 1 <= len(threads) <= (os.cpu_count() or 1)


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
