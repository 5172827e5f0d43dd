"""Permanent errors as Dagster failures: only transient ones are retried, by either layer.

The storage core and the sources say whether trying again may help (:attr:`ProjectError.transient`:
True for commit conflicts and outages, False for bad data, bad keys, bad configuration, refused
credentials, a symbol the exchange refuses). A ``dg.Failure(allow_retries=False)`` raised by a
source or an asset says the same. Dagster has two retry layers, and both must follow that answer:

* the step ``RetryPolicy`` re-runs a step on any exception except a
  ``dg.Failure(allow_retries=False)``, so a non-transient error becomes exactly that;
* the run retry (``run_retries`` in ``dagster.yaml``) re-launches a run that failed on a step
  unless the run carries the tag ``dagster/retry_on_asset_or_op_failure=false``, which is
  added to the run when such an error is raised, whatever its origin (storage, source, or an
  asset's own ``dg.Failure(allow_retries=False)``). The instance reads the run's tags when the
  run fails, so the decision is made per run, by exception type.

A transient error passes through unchanged: the step policy retries it, and if it is still
failing after the step's retries, the run retry re-launches the run.

Example:
    >>> from cb_storage_dagster.domain.errors import InvalidDataError
    >>> try:
    ...     with permanent_failures(None, None):  # in an asset: (context.instance, context.run.run_id)
    ...         raise InvalidDataError("Column 'price' has 1 values that are not > 0.")
    ... except dg.Failure as failure:
    ...     print(failure.allow_retries, failure.metadata["error_type"].value)
    False InvalidDataError
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from cb_storage_dagster.domain.errors import ProjectError

__all__ = ["NO_RUN_RETRY_TAG", "forbid_run_retry", "non_retryable_failure", "permanent_failures"]

NO_RUN_RETRY_TAG = "dagster/retry_on_asset_or_op_failure"
"""Dagster's run tag that stops the run retry from re-launching a run that failed on a step."""


def non_retryable_failure(error: ProjectError) -> dg.Failure:
    """A ``dg.Failure`` that no step retry policy re-runs, describing ``error``.

    The message is the error's own (it says what to fix and never holds a secret).
    """
    kind = type(error).__name__
    return dg.Failure(
        description=f"{kind}: {error} (not retried: the same input fails the same way).",
        metadata={"error_type": kind, "transient": False},
        allow_retries=False,
    )


def forbid_run_retry(instance: dg.DagsterInstance | None, run_id: str | None) -> None:
    """Tag the run so that the run retry of ``dagster.yaml`` does not re-launch it."""
    if instance is not None and run_id is not None:
        instance.add_run_tags(run_id, {NO_RUN_RETRY_TAG: "false"})


@contextmanager
def permanent_failures(instance: dg.DagsterInstance | None, run_id: str | None) -> Iterator[None]:
    """Turn a permanent error raised inside into a failure that neither the step retry
    policy nor the run retry repeats; let transient errors through.

    Permanent: a :class:`ProjectError` (storage or source) that is not transient, or a
    ``dg.Failure(allow_retries=False)`` (re-raised as it is, with the run tagged).
    """
    try:
        yield
    except ProjectError as error:
        if type(error).transient:
            raise
        forbid_run_retry(instance, run_id)
        raise non_retryable_failure(error) from error
    except dg.Failure as failure:
        if not failure.allow_retries:
            forbid_run_retry(instance, run_id)
        raise
