"""The one retry decision of the project: what is transient, and the one backoff loop.

* :func:`is_transient` (:mod:`.transient`) -- may the same call succeed if simply tried
  again? Decided by exception type: the project's own errors
  (:class:`~cb_storage_dagster.domain.errors.ProjectError`, storage and source errors alike)
  say so in their ``transient`` attribute; delta-rs' lost commit races, the Azure SDK's network
  failures and its HTTP statuses in :data:`TRANSIENT_HTTP_STATUSES`, and Python's
  ``ConnectionError`` / ``TimeoutError`` are transient; everything else -- bad data, a bad key,
  a schema mismatch, an unsupported or missing table, a refused request -- is not, and is
  never retried. Dagster's step and run retries ask the same question.
* :func:`run_with_retries` (:mod:`.backoff`) -- the one backoff loop, bounded by one
  :class:`RetryPolicy` (attempts, total wait, window, jitter; a server's ``Retry-After`` hint
  replaces the computed delay). When the budget is spent it raises
  :class:`~cb_storage_dagster.domain.errors.RetriesExhaustedError`, which callers turn into
  their own error (the ccxt client into ``SourceUnavailableError``).
* :func:`run_with_conflict_retries` (:mod:`.conflicts`) -- that loop applied to Delta commits
  that lost against a concurrent writer (the Delta format and table maintenance use it).

One classification is made by message text, because it cannot be made by type: which kind of
commit conflict delta-rs raised (:func:`conflict_reason`, applied to delta-rs' own exception
types only). Nothing else here reads error text.

Example:
    >>> from cb_storage_dagster.domain.errors import InvalidDataError, WriteConflictError
    >>> is_transient(WriteConflictError("lost")), is_transient(InvalidDataError("NaN price"))
    (True, False)
"""

from cb_storage_dagster.retry.backoff import FULL_JITTER, RetryPolicy, RetryStats, run_with_retries
from cb_storage_dagster.retry.conflicts import Attempt, RetryOutcome, run_with_conflict_retries
from cb_storage_dagster.retry.transient import (
    REBASE_BUDGET_EXHAUSTED,
    TRANSIENT_HTTP_STATUSES,
    Transient,
    conflict_reason,
    is_transient,
    transient_by_type,
)

__all__ = [
    "FULL_JITTER",
    "REBASE_BUDGET_EXHAUSTED",
    "TRANSIENT_HTTP_STATUSES",
    "Attempt",
    "RetryOutcome",
    "RetryPolicy",
    "RetryStats",
    "Transient",
    "conflict_reason",
    "is_transient",
    "run_with_conflict_retries",
    "run_with_retries",
    "transient_by_type",
]
