"""The one backoff loop of the project, and the one policy that bounds it.

:func:`run_with_retries` retries an operation while its classifier calls the failure
transient (by default :func:`~cb_storage_dagster.retry.transient.is_transient`) and the
:class:`RetryPolicy` has budget left: a number of attempts (a base budget that grows with the
rivals a verdict reports, up to a hard limit) and a total wait. The backoff window doubles per
retry up to a cap; the sleep is jittered inside it (full jitter by default); a server's
``Retry-After`` hint replaces the computed delay, and a hint longer than what is left of the
wait budget ends the retries at once. Permanent failures pass through untouched.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cb_storage_dagster.domain.errors import ConfigurationError, RetriesExhaustedError
from cb_storage_dagster.retry.transient import Transient, transient_by_type

__all__ = ["FULL_JITTER", "RetryPolicy", "RetryStats", "run_with_retries"]

T = TypeVar("T")

logger = logging.getLogger(__name__)

FULL_JITTER = (0.0, 1.0)
"""Sleep uniformly in ``[0, window]``: retrying writers spread out instead of colliding again."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard :func:`run_with_retries` (and so :func:`run_with_conflict_retries`) tries.

    Args:
        attempts: attempts when no rival is seen.
        max_attempts: hard limit; each rival (e.g. a commit by another writer between our
            attempts) adds one attempt up to here, so the budget follows the competition.
        rebase_retries: Delta commits only: delta-rs' own rebase budget (``max_commit_retries``)
            per attempt.
        rebase_growth_limit: Delta commits only: an attempt that ran out of rebase retries gives
            the next one twice as many, up to this multiple of ``rebase_retries``.
        backoff_seconds: backoff window before the first retry (doubles per retry).
        max_backoff_seconds: largest window.
        max_wait_seconds: total sleep allowed per call (None: unbounded); a wait that would pass
            it ends the retries at once.
        jitter: the sleep is uniform in ``[low * window, high * window]``; :data:`FULL_JITTER`
            by default, ``(0.75, 1.25)`` for a +-25% spread around the window.

    >>> RetryPolicy(attempts=2, max_attempts=5).max_attempts
    5
    >>> RetryPolicy(backoff_seconds=1.0, max_backoff_seconds=10.0, jitter=(1.0, 1.0)).delay(3)  # doubled twice
    4.0
    """

    attempts: int = 8
    max_attempts: int = 32
    rebase_retries: int = 25
    rebase_growth_limit: int = 8
    backoff_seconds: float = 0.05
    max_backoff_seconds: float = 2.0
    max_wait_seconds: float | None = None
    jitter: tuple[float, float] = FULL_JITTER

    def __post_init__(self) -> None:
        low, high = self.jitter
        if (self.attempts < 1 or self.rebase_retries < 0 or self.backoff_seconds < 0
                or (self.max_wait_seconds is not None and self.max_wait_seconds < 0) or not 0 <= low <= high):
            raise ConfigurationError(
                f"Invalid {self}: retries need attempts >= 1, rebase_retries (max_commit_retries) >= 0, "
                "backoff_seconds and max_wait_seconds >= 0 and a jitter 0 <= low <= high."
            )
        if self.max_attempts < self.attempts:
            object.__setattr__(self, "max_attempts", self.attempts)

    def delay(self, retry: int) -> float:
        """The sleep before retry number ``retry`` (1-based), jitter included."""
        window = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (retry - 1))
        low, high = self.jitter
        return random.uniform(low * window, high * window)


@dataclass
class RetryStats:
    """Counts of :func:`run_with_retries`, accumulated across the calls it is passed to."""

    attempts: int = 0
    retries: int = 0
    waited_seconds: float = 0.0


def run_with_retries(
    operation: Callable[[], T],
    *,
    policy: RetryPolicy,
    classify: Callable[[BaseException], Transient | None] = transient_by_type,
    describe: str = "the call",
    sleep: Callable[[float], None] | None = None,
    stats: RetryStats | None = None,
) -> T:
    """Run ``operation`` and retry it while ``classify`` calls its failure transient and
    ``policy`` has budget left; the one backoff loop of the project.

    Raises:
        Exception: the operation's own exception, untouched, when ``classify`` returns None.
        RetriesExhaustedError: (chained to the last failure) when the attempts or the wait
            budget ran out; it says which, how many attempts and how long it waited.

    >>> calls = []
    >>> def flaky():
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise TimeoutError("slow")
    ...     return "ok"
    >>> run_with_retries(flaky, policy=RetryPolicy(attempts=5), sleep=lambda s: None), len(calls)
    ('ok', 3)
    """
    stats = stats if stats is not None else RetryStats()
    waited = 0.0
    allowed = policy.attempts
    number = 0
    while True:
        number += 1
        stats.attempts += 1
        try:
            return operation()
        except Exception as exc:
            verdict = classify(exc)
            if verdict is None:
                raise
            allowed = max(allowed, min(policy.max_attempts, policy.attempts + verdict.rivals))
            if number >= allowed:
                why = f"{allowed} attempts"
            else:
                delay = verdict.retry_after if verdict.retry_after is not None else policy.delay(number)
                if policy.max_wait_seconds is None or waited + delay <= policy.max_wait_seconds:
                    stats.retries += 1
                    stats.waited_seconds += delay
                    waited += delay
                    logger.debug("%s failed (%s); retrying in %.3f s", describe,
                                 verdict.reason or type(exc).__name__, delay)
                    (sleep or time.sleep)(delay)
                    continue
                why = f"the wait budget of {policy.max_wait_seconds:g} s (next wait {delay:g} s)"
            raise RetriesExhaustedError(
                f"{describe} still failed after {number} attempt(s) and {waited:.1f} s of waiting, "
                f"which exhausts {why}", attempts=number, waited_seconds=waited, why=why,
            ) from exc
