"""Delta commits under the conflict-retry policy, each one reported.

Every commit of the Delta format (create, write, merge, delete) runs through
:func:`commit_with_retries`: the loop and the decision of what is a conflict live in
:mod:`cb_storage_dagster.retry` (shared with maintenance); this module adds what a Delta
commit reports (:class:`CommitReport`) and the budgets the format starts from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from cb_storage_dagster.domain.errors import StorageError
from cb_storage_dagster.retry import Attempt, RetryPolicy, run_with_conflict_retries

logger = logging.getLogger("cb_storage_dagster.storage.delta.table_format")
"""Commit reports go to the Delta format's logger, the name operators and tests listen to
(docs/RELIABILITY.md), whichever module of the format commits."""

DEFAULT_COMMIT_RETRIES = 25
"""delta-rs' own rebase retries per attempt. Rebasing onto a concurrent commit to other
partitions is cheap; 8 processes committing at once needed up to 14 (STACK-NOTES)."""
COMMIT_RETRIES_GROWTH_LIMIT = 8
"""When an attempt runs out of rebase retries (more concurrent writers than the budget
covers), the next attempt gets twice as many, up to this multiple of the configured budget."""
DEFAULT_CONFLICT_ATTEMPTS = 8
"""Our own attempts when no other writer is seen: a lost conflict is redone from a fresh
snapshot. Each commit of another writer seen between our attempts adds one attempt, up to
``DEFAULT_MAX_CONFLICT_ATTEMPTS``, so the budget follows the number of competing writers."""
DEFAULT_MAX_CONFLICT_ATTEMPTS = 32
DEFAULT_CONFLICT_BACKOFF_SECONDS = 0.05
DEFAULT_MAX_BACKOFF_SECONDS = 2.0


@dataclass(frozen=True)
class CommitReport:
    """How one commit went. Logged by the Delta format's logger
    (``cb_storage_dagster.storage.delta.table_format``; DEBUG, or INFO after a lost conflict)
    with ``extra={"cb_commit": report}``.

    Attributes:
        table: the table name.
        operation: ``create``, ``write``, ``merge`` or ``delete``.
        version: the version the commit created (``None`` for a create that found the table).
        attempts: our attempts; 1 means no conflict had to be redone.
        conflicts: why each lost attempt lost (classified, never raw error text).
        concurrent_commits: commits of other writers that landed between the snapshot the
            successful attempt read and its own commit (delta-rs rebased over them).
        max_commit_retries: delta-rs' rebase budget of the successful attempt.
        seconds: wall time including backoff.
    """

    table: str
    operation: str
    version: int | None
    attempts: int
    conflicts: tuple[str, ...]
    concurrent_commits: int
    max_commit_retries: int
    seconds: float



def commit_with_retries(
    attempt: Callable[[Attempt], int | None],
    *,
    table: str,
    what: str,
    policy: RetryPolicy,
    translate: Callable[[BaseException], StorageError],
    on_conflict: Callable[[], None],
) -> CommitReport:
    """Run ``attempt`` under ``policy`` (:func:`~cb_storage_dagster.retry.run_with_conflict_retries`):
    a lost conflict calls ``on_conflict`` (forget cached snapshots) and is redone; anything
    else is raised, translated. Returns the report it logged."""
    outcome = run_with_conflict_retries(
        attempt,
        policy=policy,
        translate=translate,
        what=what,
        subject=f"Delta table {table!r}",
        on_conflict=on_conflict,
    )
    version = outcome.value
    concurrent = 0
    if outcome.read_version is not None and version is not None:
        concurrent = max(version - outcome.read_version - 1, 0)
    report = CommitReport(
        table=table, operation=what, version=version, attempts=outcome.attempts,
        conflicts=outcome.conflicts, concurrent_commits=concurrent,
        max_commit_retries=outcome.rebase_retries, seconds=outcome.seconds,
    )
    logger.log(
        logging.INFO if outcome.conflicts else logging.DEBUG,
        "Delta %s of %r committed version %s after %d attempt(s) (%d concurrent commits rebased over)",
        what, table, version, outcome.attempts, concurrent, extra={"cb_commit": report},
    )
    return report


__all__ = [
    "COMMIT_RETRIES_GROWTH_LIMIT",
    "DEFAULT_COMMIT_RETRIES",
    "DEFAULT_CONFLICT_ATTEMPTS",
    "DEFAULT_CONFLICT_BACKOFF_SECONDS",
    "DEFAULT_MAX_BACKOFF_SECONDS",
    "DEFAULT_MAX_CONFLICT_ATTEMPTS",
    "CommitReport",
    "commit_with_retries",
]
