"""The one retry policy of the storage core: what is transient, and the conflict-retry loop.

Two questions, answered here and nowhere else:

* :func:`is_transient` -- may the same call succeed if simply tried again? Decided by
  exception type: our :class:`~cb_storage_dagster.domain.errors.StorageError` says so in
  its ``transient`` attribute (``WriteConflictError``, ``BackendUnavailableError``);
  delta-rs' ``CommitFailedError`` is a lost commit race; the Azure SDK's
  ``ServiceRequestError`` / ``ServiceResponseError`` are network failures and its
  ``HttpResponseError`` is transient for 408, 429, 500, 502, 503 and 504 only. Everything else -- bad data,
  a bad key, a schema mismatch, an unsupported table, a missing table -- is not, and is
  never retried. Dagster's step and run retries ask the same question.
* :func:`run_with_conflict_retries` -- the loop that redoes a Delta commit which lost
  against a concurrent writer: full-jitter exponential backoff, an attempt budget that
  grows with the number of rival commits seen, and a delta-rs rebase budget that doubles
  when an attempt ran out of it. Only conflicts are retried here; an outage is raised at
  once (the backend's client already retried it) and so is every data error.

delta-rs raises ``CommitFailedError`` for most lost races but a few (a concurrent metadata
or protocol change, a version taken by another writer) as its base ``DeltaError``, and
tells "rebase budget exhausted" from "conflicting files" only in the message. That text is
matched in :func:`conflict_reason`, and only for delta-rs' own exception types; the reason
it returns is a fixed phrase, never the raw message (which may quote a URL).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cb_storage_dagster.domain.errors import ConfigurationError, StorageError, WriteConflictError

T = TypeVar("T")

logger = logging.getLogger(__name__)

TRANSIENT_HTTP_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses after which the same request may succeed (timeout, throttling, server trouble)."""

REBASE_BUDGET_EXHAUSTED = "more concurrent commits than the rebase budget covered"

_RETRIES_EXHAUSTED = re.compile(r"Failed to commit transaction: \d+\s*$")
# (pattern in the lower-cased message, reason); first match wins. Verified against
# deltalake 1.6: "concurrent transaction deleted/removed ...", "a concurrent transactions
# added new data", "Metadata changed since last commit", "Protocol changed since last
# commit", "Version N already exists" / "version mismatch".
_CONFLICT_TEXTS: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda t: "concurrent" in t and ("delete" in t or "remove" in t),
     "a concurrent writer removed files this commit replaces"),
    (lambda t: "concurrent" in t, "a concurrent writer added data to the same partitions"),
    (lambda t: "metadata changed" in t, "the table's metadata changed concurrently"),
    (lambda t: "protocol changed" in t, "the table's protocol changed concurrently"),
    (lambda t: ("already exists" in t and "version" in t) or "version mismatch" in t,
     "a concurrent writer took the same version"),
)


def conflict_reason(error: BaseException) -> str | None:
    """Why a Delta commit lost against a concurrent writer (a fixed phrase), or ``None`` if
    ``error`` is not a commit conflict.

    >>> conflict_reason(ValueError("concurrent")) is None  # only delta-rs errors are conflicts
    True
    """
    try:
        from deltalake.exceptions import CommitFailedError, DeltaError
    except ImportError:  # pragma: no cover - deltalake is a dependency
        return None
    if not isinstance(error, DeltaError):
        return None
    text = str(error)
    if isinstance(error, CommitFailedError) and _RETRIES_EXHAUSTED.search(text):
        return REBASE_BUDGET_EXHAUSTED
    lowered = text.lower()
    for matches, reason in _CONFLICT_TEXTS:
        if matches(lowered):
            return reason
    if isinstance(error, CommitFailedError):
        return "the commit conflicted with a concurrent writer"
    return None


def is_transient(error: BaseException) -> bool:
    """Whether trying the same call again may succeed (see the module docstring).

    >>> from cb_storage_dagster.domain.errors import InvalidDataError, WriteConflictError
    >>> is_transient(WriteConflictError("lost")), is_transient(InvalidDataError("NaN price"))
    (True, False)
    """
    if isinstance(error, StorageError):
        return type(error).transient
    if conflict_reason(error) is not None:
        return True
    if type(error).__module__.startswith("azure."):
        from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

        if isinstance(error, (ServiceRequestError, ServiceResponseError)):
            return True
        if isinstance(error, HttpResponseError):
            return error.status_code in TRANSIENT_HTTP_STATUSES
        return False
    return isinstance(error, (ConnectionError, TimeoutError))


@dataclass(frozen=True)
class RetryPolicy:
    """How hard :func:`run_with_conflict_retries` tries.

    Args:
        attempts: attempts when no rival commit is seen.
        max_attempts: hard limit; each rival commit seen between our attempts adds one
            attempt up to here, so the budget follows the number of competing writers.
        rebase_retries: delta-rs' own rebase budget (``max_commit_retries``) per attempt.
        rebase_growth_limit: an attempt that ran out of rebase retries gives the next one
            twice as many, up to this multiple of ``rebase_retries``.
        backoff_seconds: backoff window before the first retry (doubles per retry); the
            sleep is uniform in ``[0, window]`` (full jitter).
        max_backoff_seconds: largest window.

    >>> RetryPolicy(attempts=2, max_attempts=5).max_attempts
    5
    """

    attempts: int = 8
    max_attempts: int = 32
    rebase_retries: int = 25
    rebase_growth_limit: int = 8
    backoff_seconds: float = 0.05
    max_backoff_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.rebase_retries < 0 or self.backoff_seconds < 0:
            raise ConfigurationError(
                "Conflict retries need attempts >= 1, rebase_retries (max_commit_retries) >= 0 "
                "and backoff_seconds >= 0."
            )
        if self.max_attempts < self.attempts:
            object.__setattr__(self, "max_attempts", self.attempts)


@dataclass
class Attempt:
    """What one attempt of an operation is told, and what it reports back.

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
    allowed = policy.attempts
    number = 0
    while True:
        number += 1
        attempt = Attempt(number, budget, read_versions)
        try:
            value = operation(attempt)
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
            if len(read_versions) >= 2:
                rivals = read_versions[-1] - read_versions[0]
                allowed = max(allowed, min(policy.max_attempts, policy.attempts + rivals))
            if number >= allowed:
                break
            if reason == REBASE_BUDGET_EXHAUSTED:
                budget = min(budget * 2 or 1, policy.rebase_retries * policy.rebase_growth_limit or 1)
            window = min(policy.max_backoff_seconds, policy.backoff_seconds * 2 ** (number - 1))
            delay = random.uniform(0, window)
            logger.debug("%s of %s lost a conflict (%s); retrying in %.3f s", what, subject, reason, delay)
            time.sleep(delay)
            continue
        return RetryOutcome(
            value=value, attempts=number, conflicts=tuple(conflicts),
            read_version=attempt.read_version,
            rebase_retries=budget, seconds=round(time.monotonic() - started, 4),
        )
    logger.warning("%s of %s gave up after %d attempts: %s", what, subject, len(conflicts), "; ".join(conflicts))
    raise WriteConflictError(
        f"Could not commit the {what} of {subject}: it lost against concurrent writers "
        f"{len(conflicts)} times in {time.monotonic() - started:.1f} s (last: {conflicts[-1]}). "
        f"Nothing was changed by this {what}; run it again. If this keeps happening, fewer "
        "parallel runs should write the same partitions at once (or raise the conflict "
        "attempts / max_commit_retries)."
    ) from None


__all__ = [
    "Attempt",
    "RetryOutcome",
    "RetryPolicy",
    "TRANSIENT_HTTP_STATUSES",
    "conflict_reason",
    "is_transient",
    "run_with_conflict_retries",
]
