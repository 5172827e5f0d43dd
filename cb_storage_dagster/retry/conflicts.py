"""Delta commits that lost against a concurrent writer, redone through the one backoff loop.

:func:`run_with_conflict_retries` is what the Delta format and table maintenance commit
through. Only conflicts (:func:`~cb_storage_dagster.retry.transient.conflict_reason`) are
retried: the attempt budget grows with the number of rival commits seen between attempts,
and a delta-rs rebase budget (``max_commit_retries``) doubles when an attempt ran out of it.
An outage is raised at once (the backend's client already retried it) and so is every data
error, translated into the project's own error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cb_storage_dagster.domain.errors import RetriesExhaustedError, StorageError, WriteConflictError
from cb_storage_dagster.retry.backoff import RetryPolicy, RetryStats, run_with_retries
from cb_storage_dagster.retry.transient import REBASE_BUDGET_EXHAUSTED, Transient, conflict_reason

__all__ = ["Attempt", "RetryOutcome", "run_with_conflict_retries"]

T = TypeVar("T")

logger = logging.getLogger(__name__)


@dataclass
class Attempt:
    """What one attempt of a commit is told, and what it reports back.

    Attributes:
        number: 1 for the first attempt.
        rebase_retries: the delta-rs rebase budget to pass as ``max_commit_retries``.
    """

    number: int
    rebase_retries: int
    _read_versions: list[int] = field(default_factory=list, repr=False)
    read_version: int | None = None

    def started_from(self, version: int) -> None:
        """Record the table version this attempt read (measures the rival commits)."""
        self.read_version = version
        self._read_versions.append(version)


@dataclass(frozen=True)
class RetryOutcome(Generic[T]):
    """The result of the attempt that succeeded, and how it went.

    Attributes:
        value: what the operation returned.
        attempts: attempts made; 1 means no conflict had to be redone.
        conflicts: why each lost attempt lost (fixed phrases).
        read_version: the version the successful attempt started from, if it said.
        rebase_retries: the rebase budget of the successful attempt.
        seconds: wall time including backoff.
    """

    value: T
    attempts: int
    conflicts: tuple[str, ...]
    read_version: int | None
    rebase_retries: int
    seconds: float


class _LostCommit(Exception):
    """An attempt lost against a concurrent writer (internal to :func:`run_with_conflict_retries`)."""

    def __init__(self, verdict: Transient) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


def run_with_conflict_retries(
    operation: Callable[[Attempt], T],
    *,
    policy: RetryPolicy,
    translate: Callable[[BaseException], StorageError],
    what: str = "commit",
    subject: str = "the table",
    on_conflict: Callable[[], None] | None = None,
) -> RetryOutcome[T]:
    """Run ``operation(attempt)`` until it commits, redoing commits that lost a conflict.

    ``translate`` turns any other exception into the project's error (it is raised at once,
    without its context: raw delta-rs and Azure text may quote URLs). ``on_conflict`` runs
    after each lost attempt (e.g. to drop a cached table so the next attempt starts from a
    fresh snapshot). A lost attempt changes nothing visible: its data files are never
    referenced by the log.

    Raises:
        WriteConflictError: every attempt of the budget lost against concurrent writers.
        StorageError: whatever ``translate`` made of a non-conflict error.

    >>> outcome = run_with_conflict_retries(lambda a: a.number, policy=RetryPolicy(), translate=StorageError)
    >>> outcome.value, outcome.attempts
    (1, 1)
    """
    started = time.monotonic()
    budget = policy.rebase_retries
    conflicts: list[str] = []
    read_versions: list[int] = []
    stats = RetryStats()
    attempt = Attempt(0, budget, read_versions)

    def commit() -> T:
        nonlocal attempt, budget
        attempt = Attempt(stats.attempts, budget, read_versions)
        try:
            return operation(attempt)
        except StorageError:
            raise  # already the project's own error: a data error, an outage, ...
        except Exception as exc:
            error = translate(exc)
            reason = conflict_reason(exc) if isinstance(error, WriteConflictError) else None
            if reason is None:
                raise error from None
            conflicts.append(reason)
            if on_conflict is not None:
                on_conflict()
            if reason == REBASE_BUDGET_EXHAUSTED:
                budget = min(budget * 2 or 1, policy.rebase_retries * policy.rebase_growth_limit or 1)
            rivals = read_versions[-1] - read_versions[0] if len(read_versions) >= 2 else 0
            raise _LostCommit(Transient(reason=reason, rivals=rivals)) from None

    try:
        value = run_with_retries(
            commit, policy=policy, stats=stats, describe=f"{what} of {subject}",
            classify=lambda exc: exc.verdict if isinstance(exc, _LostCommit) else None,
        )
    except RetriesExhaustedError:
        logger.warning("%s of %s gave up after %d attempts: %s", what, subject, len(conflicts), "; ".join(conflicts))
        raise WriteConflictError(
            f"Could not commit the {what} of {subject}: it lost against concurrent writers "
            f"{len(conflicts)} times in {time.monotonic() - started:.1f} s (last: {conflicts[-1]}). "
            f"Nothing was changed by this {what}; run it again. If this keeps happening, fewer "
            "parallel runs should write the same partitions at once (or raise the conflict "
            "attempts / max_commit_retries)."
        ) from None
    return RetryOutcome(
        value=value, attempts=stats.attempts, conflicts=tuple(conflicts), read_version=attempt.read_version,
        rebase_retries=budget, seconds=round(time.monotonic() - started, 4),
    )
