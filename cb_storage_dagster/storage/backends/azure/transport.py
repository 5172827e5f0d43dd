"""How an Azure backend's requests are retried and timed out, for both clients.

* The Blob SDK: :func:`retry_policy` builds an ``ExponentialRetry`` subclass whose waits
  scale with ``retry_backoff_seconds`` and which retries exactly what the storage core's one
  transient classifier (:func:`cb_storage_dagster.retry.is_transient`,
  :data:`~cb_storage_dagster.retry.TRANSIENT_HTTP_STATUSES`) calls transient, so the SDK,
  the error translation and Dagster's retries agree on every HTTP status.
* delta-rs (object_store): :func:`delta_transport_options` gives the same budget as
  ``storage_options``.

Example:
    >>> delta_transport_options(max_retries=2, backoff_seconds=0.5, timeout_seconds=30.0)
    {'max_retries': '2', 'retry_timeout': '90000ms', 'backoff_config.init_backoff': '500ms', 'timeout': '30000ms', 'connect_timeout': '5000ms'}
"""

from __future__ import annotations

import functools
import random
from typing import TYPE_CHECKING, Any

from cb_storage_dagster.retry import TRANSIENT_HTTP_STATUSES, is_transient

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from cb_storage_dagster.storage.backends.azure.identity import AzureIdentity

__all__ = ["blob_credential", "container_client", "delta_transport_options", "retry_policy"]


def connect_timeout(timeout_seconds: float) -> float:
    """Connecting times out after ``min(5, timeout_seconds)`` s: an unreachable endpoint fails fast."""
    return min(5.0, timeout_seconds)


def delta_transport_options(
    *, max_retries: int, backoff_seconds: float, timeout_seconds: float
) -> dict[str, str]:
    """object_store's ``max_retries``, ``retry_timeout``, ``backoff_config.init_backoff``,
    ``timeout`` and ``connect_timeout``, so that an unreachable account fails after the
    configured retries instead of object_store's default of 10 retries / 3 min."""
    return {
        "max_retries": str(max_retries),
        "retry_timeout": _duration(timeout_seconds * (max_retries + 1)),
        "backoff_config.init_backoff": _duration(backoff_seconds),
        "timeout": _duration(timeout_seconds),
        "connect_timeout": _duration(connect_timeout(timeout_seconds)),
    }


def blob_credential(identity: AzureIdentity, *, max_retries: int, backoff_seconds: float, timeout_seconds: float) -> Any:
    """``identity``'s Blob SDK credential; token requests retry like every other request
    (azure-identity's default would be 3 over ~10 s)."""
    return identity.blob_credential(
        retry_total=max_retries, retry_backoff_factor=backoff_seconds,
        connection_timeout=connect_timeout(timeout_seconds), read_timeout=timeout_seconds,
    )


def container_client(
    endpoint: str, credential: Any, container_name: str, *, max_retries: int, backoff_seconds: float,
    timeout_seconds: float,
) -> ContainerClient:
    """The Blob SDK client of one container, with the :func:`retry_policy` and the timeouts."""
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient(
        account_url=endpoint,
        credential=credential,
        retry_policy=retry_policy(max_retries=max_retries, backoff_seconds=backoff_seconds),
        connection_timeout=connect_timeout(timeout_seconds),
        read_timeout=timeout_seconds,
    )
    return service.get_container_client(container_name)


def retry_policy(*, max_retries: int, backoff_seconds: float) -> Any:
    """The Blob SDK retry policy: ``max_retries`` retries of transient failures only."""
    return _retry_policy_class()(initial_backoff=backoff_seconds, retry_total=max_retries, random_jitter_range=0)


@functools.cache
def _retry_policy_class() -> type:
    """An SDK ``ExponentialRetry`` that retries what :func:`is_transient` says, with waits
    that scale with ``initial_backoff``.

    The stock policy waits ``initial_backoff + increment_base ** n`` seconds (15 s + 3**n by
    default), which keeps an unreachable endpoint busy for minutes, and retries every status
    >= 500 but 501/505; here the n-th retry waits ``initial_backoff * 2 ** (n - 1)`` (+-20 %
    jitter) and a response is retried only for a status in ``TRANSIENT_HTTP_STATUSES``, an
    exception only if it is transient (a network failure; not a refused token request, which
    azure-identity has retried already).
    """
    from azure.core.exceptions import AzureError
    from azure.storage.blob import ExponentialRetry

    class ScaledExponentialRetry(ExponentialRetry):
        def get_backoff_time(self, settings: dict[str, Any]) -> float:
            attempt = max(int(settings.get("count", 1)), 1)
            backoff = float(self.initial_backoff) * 2 ** (attempt - 1)
            return random.uniform(0.8 * backoff, 1.2 * backoff)

        def send(self, request: Any) -> Any:
            settings = self.configure_retries(request)
            while True:
                try:
                    response = self.next.send(request)
                except AzureError as error:
                    if not is_transient(error) or not self.increment(
                        settings, request=request.http_request, error=error
                    ):
                        raise
                    self.sleep(settings, request.context.transport)
                    continue
                if response.http_response.status_code in TRANSIENT_HTTP_STATUSES and self.increment(
                    settings, request=request.http_request, response=response.http_response
                ):
                    self.sleep(settings, request.context.transport)
                    continue
                if settings["history"]:
                    response.context["history"] = settings["history"]
                response.http_response.location_mode = settings["mode"]
                return response

    return ScaledExponentialRetry


def _duration(seconds: float) -> str:
    """A humantime duration for object_store options (``"500ms"``)."""
    return f"{max(round(seconds * 1000), 1)}ms"
