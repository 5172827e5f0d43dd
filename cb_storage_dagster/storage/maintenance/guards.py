"""How every maintenance operation runs: commit conflicts retried under the storage core's
one retry loop, and every other failure leaving as a project error."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from cb_storage_dagster.domain.errors import CorruptTableError, StorageError
from cb_storage_dagster.retry import RetryPolicy, run_with_conflict_retries
from cb_storage_dagster.storage.delta.errors import translate_delta_error

if TYPE_CHECKING:
    from cb_storage_dagster.storage.interfaces import IStorageBackend

T = TypeVar("T")
P = ParamSpec("P")

DEFAULT_ATTEMPTS = 6
DEFAULT_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 10.0


def with_conflict_retries(
    backend: IStorageBackend, table: str, action: Callable[[int], T], what: str, *, attempts: int,
    backoff_seconds: float,
) -> tuple[T, int]:
    """Run ``action(attempt_number)`` under the storage core's one retry policy: commit
    conflicts are redone after a full-jitter backoff, anything else is raised translated.
    Returns the action's value and the number of attempts it took."""
    outcome = run_with_conflict_retries(
        lambda attempt: action(attempt.number),
        policy=RetryPolicy(
            attempts=attempts, max_attempts=attempts, backoff_seconds=backoff_seconds,
            max_backoff_seconds=MAX_BACKOFF_SECONDS,
        ),
        translate=lambda exc: translate_delta_error(exc, table=table, action=what, backend=backend),
        what=what,
        subject=f"Delta table {table!r}",
    )
    return outcome.value, outcome.attempts


def storage_errors(what: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Every exception of a maintenance operation ``(backend, table, ...)`` leaves as a
    StorageError with a scrubbed message (raw delta-rs text may quote request URLs); a
    table delta-rs cannot parse at all is a CorruptTableError."""

    def decorate(operation: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(operation)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return operation(*args, **kwargs)
            except StorageError:
                raise
            except Exception as exc:
                backend = kwargs.get("backend", args[0] if args else None)
                table = str(kwargs.get("table", args[1] if len(args) > 1 else "?"))
                error = translate_delta_error(exc, table=table, action=what, backend=backend)  # type: ignore[arg-type]
                if type(error) is StorageError:
                    error = CorruptTableError(
                        f"{what.capitalize()} of {table!r} failed: it is not a readable Delta table "
                        f"({type(exc).__name__}). Restore it from a backup or move it aside."
                    )
                raise error from None

        return wrapper

    return decorate
