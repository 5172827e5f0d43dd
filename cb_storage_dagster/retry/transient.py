"""What is transient, decided once and by type; the verdict a classifier hands the backoff loop.

:func:`is_transient` answers for any exception: the project's own errors by their
``transient`` attribute (:class:`~cb_storage_dagster.domain.errors.ProjectError`: storage and
source errors); delta-rs' lost commit races (:func:`conflict_reason`); the Azure SDK's
``ServiceRequestError`` / ``ServiceResponseError`` (network) and ``HttpResponseError`` with a
status in :data:`TRANSIENT_HTTP_STATUSES`; Python's ``ConnectionError`` / ``TimeoutError``.
Everything else is not transient.

Only :func:`conflict_reason` reads message text, because delta-rs does not say by type: it
raises ``CommitFailedError`` for most lost races but a few (a concurrent metadata or protocol
change, a version taken by another writer) as its base ``DeltaError``, and tells "rebase
budget exhausted" from "conflicting files" only in the message. The text is matched only on
delta-rs' own exception types, and the reason returned is a fixed phrase, never the raw
message (which may quote a URL).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from cb_storage_dagster.domain.errors import ProjectError

__all__ = [
    "REBASE_BUDGET_EXHAUSTED",
    "TRANSIENT_HTTP_STATUSES",
    "Transient",
    "conflict_reason",
    "is_transient",
    "transient_by_type",
]

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

    >>> from cb_storage_dagster.domain.errors import InvalidDataError, SourceUnavailableError
    >>> is_transient(SourceUnavailableError("binance did not answer")), is_transient(InvalidDataError("NaN"))
    (True, False)
    """
    if isinstance(error, ProjectError):
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
class Transient:
    """A classifier's verdict that a failure is worth retrying.

    Attributes:
        retry_after: the server's ``Retry-After`` hint in seconds; replaces the computed backoff.
        reason: a fixed phrase for the log (never raw error text).
        rivals: competing writers seen so far; each adds one attempt, up to the hard limit.
    """

    retry_after: float | None = None
    reason: str | None = None
    rivals: int = 0


def transient_by_type(error: BaseException) -> Transient | None:
    """The default classifier of :func:`run_with_retries`: :func:`is_transient`, with the
    error's own ``retry_after`` attribute (if any) as the hint."""
    return Transient(getattr(error, "retry_after", None)) if is_transient(error) else None
