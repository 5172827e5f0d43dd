"""Azure errors into the project's errors: SDK exceptions by type, delta-rs text by pattern.

:class:`AzureErrorTranslator` knows where a backend points (container, account, endpoint,
credential kind, retry budget) and turns

* Azure SDK exceptions (``azure.core.exceptions``) into :class:`NotFoundError`,
  :class:`AuthenticationError`, :class:`BackendUnavailableError` or :class:`StorageError`,
  deciding "unavailable" with the storage core's one transient classifier
  (:func:`cb_storage_dagster.retry.is_transient`);
* delta-rs / object_store / pyarrow exceptions, which carry only text, into the same errors
  by matching their messages (HTTP codes count only next to their reason phrase or a "status"
  word, and a status is "unavailable" only if it is in
  :data:`~cb_storage_dagster.retry.TRANSIENT_HTTP_STATUSES`).

Messages are built from a classification, never from the raw text (which may quote a signed
URL); the little SDK text they quote goes through :func:`.redaction.redact`.

Example:
    >>> translator = AzureErrorTranslator("c", "acct", "https://acct.blob.core.windows.net",
    ...                                   "account_key", max_retries=2)
    >>> type(translator.translate(OSError("Connection refused (os error 111)"))).__name__
    'BackendUnavailableError'
    >>> translator.translate(ValueError("403 rows failed validation")) is None
    True
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cb_storage_dagster.domain.errors import (
    AuthenticationError,
    BackendUnavailableError,
    NotFoundError,
    StorageError,
)
from cb_storage_dagster.retry import TRANSIENT_HTTP_STATUSES, is_transient
from cb_storage_dagster.storage.backends.azure.redaction import redact

__all__ = ["AzureErrorTranslator"]

_AUTH_ERROR_RE = re.compile(
    r"(?i)\b(?:401 unauthori[sz]ed|403 forbidden)|\b(?:status(?: code)?|HTTP)[ :=]*(?:401|403)\b|"
    r"AuthenticationFailed|AuthorizationFailure|AuthorizationPermissionMismatch|"
    r"InvalidAuthenticationInfo|NoAuthenticationInformation|server failed to authenticate|"
    r"lacked the necessary privileges|invalid_client|AADSTS\d+"
)
_HTTP_STATUS_RE = re.compile(r"\b(401|403)\b")
_STATUS_RE = re.compile(r"(?i)\b(?:status(?: code)?|HTTP)[ :=]*(\d{3})\b")
_UNAVAILABLE_PATTERNS = (
    ("connection refused", re.compile(r"(?i)connection refused|ConnectionRefusedError|ECONNREFUSED|os error 111")),
    ("DNS lookup failed", re.compile(r"(?i)dns error|failed to lookup address|name or service")),
    ("timed out", re.compile(r"(?i)timed out|TimeoutError|deadline has elapsed|(?:connect|read|request) timeout")),
    ("connection reset", re.compile(r"(?i)connection reset|ConnectionResetError|broken pipe|connection closed")),
    ("service unavailable", re.compile(
        r"(?i)\b(?:500 internal server error|502 bad gateway|503 service unavailable|504 gateway timeout)|ServerBusy"
    )),
    ("request failed", re.compile(r"(?i)error sending request|tcp connect error|after \d+ retries")),
)
_AUTH_HINTS = {
    "connection_string": "check the AccountKey / SharedAccessSignature in the connection string",
    "account_key": "check the account key (rotated? other account?)",
    "sas_token": "check the SAS token (expiry, permissions racwdl, container scope)",
    "service_principal": "check the service principal's tenant, client id, secret and its "
    "'Storage Blob Data Contributor' role on the container",
    "default_credential": "check the identity resolved from the environment (service principal, "
    "workload identity or managed identity; never the Azure CLI) and its 'Storage Blob Data "
    "Contributor' role",
}


def classify_unavailable(text: str) -> str | None:
    """Why ``text`` reads like an unreachable or overloaded service, or ``None``.

    >>> classify_unavailable("Server returned non-2xx status code: 503 Service Unavailable")
    'service unavailable'
    >>> classify_unavailable("HTTP status 501") is None  # not a transient status
    True
    """
    for reason, pattern in _UNAVAILABLE_PATTERNS:
        if pattern.search(text):
            return reason
    if any(int(code) in TRANSIENT_HTTP_STATUSES for code in _STATUS_RE.findall(text)):
        return "service unavailable"
    return None


@dataclass(frozen=True)
class AzureErrorTranslator:
    """Turns exceptions of one backend's requests into the project's errors.

    Args:
        container_name, account_name, endpoint: where the backend points (named in messages).
        auth_kind: the credential kind (picks the hint of an authentication error).
        max_retries: the retry budget already spent when an error reaches us.
        secrets: gives the secret values to scrub from the SDK text a message quotes (a
            callable, so that no plain copy of a secret is kept here).
    """

    container_name: str
    account_name: str
    endpoint: str
    auth_kind: str
    max_retries: int
    secrets: Callable[[], Iterable[str]] = field(default=tuple, repr=False)

    def where(self) -> str:
        return f"container {self.container_name!r} of account {self.account_name!r}"

    def authentication_error(self, detail: str) -> AuthenticationError:
        return AuthenticationError(
            f"Azure refused the credentials for {self.where()} at {self.endpoint} "
            f"(auth {self.auth_kind}; {detail}): {_AUTH_HINTS[self.auth_kind]}."
        )

    def unavailable_error(self, reason: str) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"Azure Blob endpoint {self.endpoint} is unreachable after {self.max_retries} "
            f"retries ({reason}) for {self.where()}. Check that the storage account (or "
            "Azurite) is running and reachable from this host, then retry."
        )

    def from_sdk(self, error: BaseException, action: str, identifier: str) -> StorageError | None:
        """The project error for an Azure SDK exception, or ``None`` if it is none of the SDK's."""
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
        )

        if isinstance(error, ResourceNotFoundError):
            code = getattr(error, "error_code", None) or "not found"
            return NotFoundError(f"{action} {identifier!r}: {code} in {self.where()}.")
        if isinstance(error, ClientAuthenticationError):
            status = getattr(error, "status_code", None)
            unreachable = None if status else classify_unavailable(str(error))
            if unreachable is not None:  # no answer from the token authority: not a refusal
                return BackendUnavailableError(
                    f"Could not get a Microsoft Entra ID token for {self.where()} (auth "
                    f"{self.auth_kind}; {unreachable}): the token authority is unreachable after "
                    f"{self.max_retries} retries. Check that this host can reach "
                    "login.microsoftonline.com (or AZURE_AUTHORITY_HOST), then retry."
                )
            return self.authentication_error(f"HTTP {status}" if status else type(error).__name__)
        if isinstance(error, HttpResponseError):
            status = error.status_code or 0
            code = getattr(error, "error_code", None) or error.reason or ""
            if status in (401, 403):
                return self.authentication_error(f"HTTP {status} {code}".strip())
            if is_transient(error):
                return self.unavailable_error(f"HTTP {status} {code}".strip())
            return StorageError(
                f"Azure request to {action} {identifier!r} in {self.where()} failed: "
                f"HTTP {status} {redact(str(code), self.secrets(), limit=200)}."
            )
        if isinstance(error, AzureError) and is_transient(error):  # ServiceRequestError / ...ResponseError
            return self.unavailable_error(classify_unavailable(str(error)) or "no connection")
        return None

    @contextmanager
    def sdk_errors(self, action: str, identifier: str) -> Iterator[None]:
        """Turn Azure SDK exceptions into project errors (secret-free, no chained cause)."""
        try:
            yield
        except StorageError:
            raise
        except Exception as error:
            mapped = self.from_sdk(error, action, identifier)
            if mapped is None:
                raise
            raise mapped from None  # hides the SDK exception: its text may quote a signed URL

    def translate(self, error: BaseException) -> StorageError | None:
        """The project error for an exception of delta-rs, pyarrow or the Azure SDK, or ``None``.

        Connection failures and timeouts become :class:`BackendUnavailableError`; HTTP
        401/403 become :class:`AuthenticationError`; a missing container
        :class:`NotFoundError`.
        """
        if isinstance(error, StorageError):
            return None
        if type(error).__module__.startswith("azure."):
            return self.from_sdk(error, "access", "")
        texts: list[str] = []
        current: BaseException | None = error
        while current is not None and len(texts) < 5:
            texts.append(f"{type(current).__name__}: {current}")
            current = current.__cause__ or current.__context__
        text = " | ".join(texts)
        if "ContainerNotFound" in text:
            return NotFoundError(
                f"Container {self.container_name!r} does not exist in account "
                f"{self.account_name!r} ({self.endpoint}). delta-rs never creates containers: "
                "call ensure_container() first (save_bytes does it when create_container=True)."
            )
        if _AUTH_ERROR_RE.search(text):
            status = _HTTP_STATUS_RE.search(text)
            return self.authentication_error(f"HTTP {status.group(1)}" if status else "refused")
        reason = classify_unavailable(text)
        if reason is not None:
            return self.unavailable_error(reason)
        return None
