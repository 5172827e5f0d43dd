"""Transient failures retried with exponential backoff, within a bounded budget.

The budget bounds both the number of attempts and the total time spent waiting, so a run
never hangs on an exchange that keeps failing: after it, the last failure is raised as
:class:`SourceUnavailableError` (transient: the orchestrator may retry the whole step later).
A server's ``Retry-After`` hint replaces the computed delay; a hint longer than what is left
of the budget ends the retries at once. Permanent failures pass through untouched.

Example:
    >>> calls = []
    >>> def flaky():
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise TimeoutError("slow")
    ...     return "ok"
    >>> budget = RetryBudget(max_attempts=5, base_delay=0.0)
    >>> call_with_retry(flaky, lambda exc: Transient(None), budget, sleep=lambda s: None), len(calls)
    ('ok', 3)
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cb_storage_dagster.sources.ccxt.errors import SourceConfigError, SourceUnavailableError

__all__ = ["RetryBudget", "RetryStats", "Transient", "call_with_retry"]

T = TypeVar("T")


@dataclass(frozen=True)
class Transient:
    """A classifier's verdict that a failure is worth retrying, with the server's hint if any."""

    retry_after: float | None = None


@dataclass(frozen=True)
class RetryBudget:
    """How hard to try: attempts per call, total seconds of waiting, backoff shape."""

    max_attempts: int = 5
    max_wait_seconds: float = 60.0
    base_delay: float = 0.5
    max_delay: float = 15.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_wait_seconds < 0 or self.base_delay < 0:
            raise SourceConfigError(
                f"Invalid retry budget {self}: max_attempts must be at least 1 and the delays not negative."
            )

    def delay(self, retry: int) -> float:
        """Backoff before retry number ``retry`` (1-based): base x 2^(retry-1), capped, +-25% jitter."""
        delay = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return delay * random.uniform(0.75, 1.25)


@dataclass
class RetryStats:
    """Counts across calls (for output metadata and the benchmark)."""

    attempts: int = 0
    retries: int = 0
    waited_seconds: float = 0.0


def call_with_retry(
    operation: Callable[[], T],
    classify: Callable[[BaseException], Transient | None],
    budget: RetryBudget,
    *,
    describe: str = "the request",
    sleep: Callable[[float], None] = time.sleep,
    stats: RetryStats | None = None,
) -> T:
    """Run ``operation``; retry while ``classify`` calls its failure transient and budget is left.

    Raises the operation's own exception when it is permanent (``classify`` returns None), and
    :class:`SourceUnavailableError` (chained to the last failure) when the budget runs out.
    """
    stats = stats if stats is not None else RetryStats()
    waited = 0.0
    for attempt in range(1, budget.max_attempts + 1):
        stats.attempts += 1
        try:
            return operation()
        except Exception as exc:
            verdict = classify(exc)
            if verdict is None:
                raise
            if attempt == budget.max_attempts:
                reason = f"{budget.max_attempts} attempts"
            else:
                delay = verdict.retry_after if verdict.retry_after is not None else budget.delay(attempt)
                if waited + delay <= budget.max_wait_seconds:
                    stats.retries += 1
                    stats.waited_seconds += delay
                    waited += delay
                    sleep(delay)
                    continue
                reason = f"the wait budget of {budget.max_wait_seconds:g} s (next wait {delay:g} s)"
            raise SourceUnavailableError(
                f"{describe} still failed after {attempt} attempt(s) and {waited:.1f} s of waiting, "
                f"which exhausts {reason}: {type(exc).__name__}: {exc}. The exchange may be down or "
                "rate-limiting; the run can be retried later."
            ) from exc
    raise AssertionError("unreachable: max_attempts must be at least 1")  # pragma: no cover
