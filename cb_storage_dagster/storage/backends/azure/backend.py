"""Azure Blob Storage backend: one container of a storage account (ADLS Gen2 included).

Bytes go through azure-storage-blob (the Blob API, which ADLS Gen2 accounts also serve and
the Azurite emulator implements); Delta tables go through delta-rs, which gets its URI from
:meth:`AzureBlobBackend.get_uri_for_identifier` and its credentials from
:meth:`AzureBlobBackend.get_storage_options`. Who the backend is (credential and endpoint,
the same for both clients) is decided in :mod:`.azure_auth`; this module moves bytes and
translates errors.

The Azure SDK and azure-identity are imported on first use, so importing this module stays
cheap. This module must not import Dagster: it is part of the plain-Python storage core.
"""

from __future__ import annotations

import functools
import logging
import random
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import SecretStr

from cb_storage_dagster.domain.errors import (
    AuthenticationError,
    BackendUnavailableError,
    ConfigurationError,
    NotFoundError,
    StorageError,
)
from cb_storage_dagster.domain.identifiers import normalize_identifier
from cb_storage_dagster.storage.backends.azure.identity import (
    AZURITE_URL_ENV,
    AuthKind,
    AzureIdentity,
    ConnectionStringAuth,
    EmulatorEndpoint,
    SasTokenAuth,
    resolve_identity,
)
from cb_storage_dagster.storage.interfaces import IStorageBackend

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

__all__ = ["AZURITE_URL_ENV", "AuthKind", "AzureBlobBackend", "check_container_name"]

logger = logging.getLogger(__name__)

_CONTAINER_RE = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
# Secret-looking fragments that may appear in SDK / delta-rs messages (SAS query parameters,
# connection-string fields, form-encoded OAuth secrets).
_SECRET_PATTERNS = (
    re.compile(r"(?i)\b(sig|se|sp|sv|ss|srt|spr|st|skoid|sktid|skt|ske|sks|skv)=[^&\s'\"]+"),
    re.compile(r"(?i)(AccountKey|SharedAccessSignature|client_secret|password)=[^;&\s'\"]+"),
    re.compile(r"(?i)(Authorization|x-ms-copy-source-authorization)\s*[:=]\s*[^\r\n,'\"]+"),
)
# Classifiers for delta-rs / object_store / pyarrow messages. HTTP codes only count next to
# their reason phrase or a "status" word, so that "403 rows failed validation" is not a 403.
_AUTH_ERROR_RE = re.compile(
    r"(?i)\b(?:401 unauthori[sz]ed|403 forbidden)|\b(?:status(?: code)?|HTTP)[ :=]*(?:401|403)\b|"
    r"AuthenticationFailed|AuthorizationFailure|AuthorizationPermissionMismatch|"
    r"InvalidAuthenticationInfo|NoAuthenticationInformation|server failed to authenticate|"
    r"lacked the necessary privileges|invalid_client|AADSTS\d+"
)
_HTTP_STATUS_RE = re.compile(r"\b(401|403)\b")
_UNAVAILABLE_PATTERNS = (
    (
        "connection refused",
        re.compile(r"(?i)connection refused|ConnectionRefusedError|ECONNREFUSED|os error 111"),
    ),
    ("DNS lookup failed", re.compile(r"(?i)dns error|failed to lookup address|name or service")),
    (
        "timed out",
        re.compile(r"(?i)timed out|TimeoutError|deadline has elapsed|(?:connect|read|request) timeout"),
    ),
    (
        "connection reset",
        re.compile(r"(?i)connection reset|ConnectionResetError|broken pipe|connection closed"),
    ),
    (
        "service unavailable",
        re.compile(
            r"(?i)\b(?:500 internal server error|502 bad gateway|503 service unavailable|"
            r"504 gateway timeout)|\b(?:status(?: code)?|HTTP)[ :=]*5\d\d\b|ServerBusy"
        ),
    ),
    ("request failed", re.compile(r"(?i)error sending request|tcp connect error|after \d+ retries")),
)


def check_container_name(container_name: object, setting: str = "container_name") -> str:
    """``container_name`` if it is a valid Azure container name, else a ConfigurationError
    naming ``setting``."""
    if not isinstance(container_name, str) or not _CONTAINER_RE.match(container_name):
        raise ConfigurationError(
            f"{setting} {container_name!r} is not a valid Azure container name: use 3-63 "
            "lower-case letters, digits and single hyphens, starting and ending with a letter "
            "or digit."
        )
    return container_name


@functools.cache
def _retry_policy_class() -> type:
    """An SDK ``ExponentialRetry`` whose waits scale with ``retry_backoff_seconds``.

    The stock policy waits ``initial_backoff + increment_base ** n`` seconds (15 s + 3**n by
    default), which keeps an unreachable endpoint busy for minutes; here the n-th retry waits
    ``initial_backoff * 2 ** (n - 1)`` (+-20 % jitter).
    """
    from azure.storage.blob import ExponentialRetry

    class ScaledExponentialRetry(ExponentialRetry):
        def get_backoff_time(self, settings: dict[str, Any]) -> float:
            attempt = max(int(settings.get("count", 1)), 1)
            backoff = float(self.initial_backoff) * 2 ** (attempt - 1)
            return random.uniform(0.8 * backoff, 1.2 * backoff)

    return ScaledExponentialRetry


class AzureBlobBackend(IStorageBackend):
    """One container (optionally a folder in it) of an Azure storage account.

    Works with Blob Storage and ADLS Gen2 accounts (through the Blob API) and with the
    Azurite emulator. Exactly one authentication method must be given: a connection string,
    an account key, a SAS token, a service principal (tenant, client id, client secret) or
    ``use_default_credential=True`` (environment service principal, workload identity or
    managed identity, resolved once: see :class:`~.azure_auth.DefaultCredentialAuth`). Secrets are kept as :class:`pydantic.SecretStr` and never
    appear in ``repr()``, :meth:`describe` or error messages.

    Args:
        container_name: the container (created on first write if ``create_container``).
        account_name: storage account; may be omitted with a connection string or an
            endpoint that names the account.
        connection_string: ``AccountName=...;AccountKey=...`` or ``...;SharedAccessSignature=...``
            (``UseDevelopmentStorage=true`` means Azurite on port 10000).
        account_key: shared key of the account.
        sas_token: SAS token (with or without the leading ``?``).
        tenant_id, client_id, client_secret: service principal.
        use_default_credential: the host's identity, resolved from the environment once and
            used by both the SDK and delta-rs.
        endpoint: blob endpoint, e.g. ``http://127.0.0.1:10000/devstoreaccount1`` (Azurite),
            a sovereign cloud or a private endpoint. Default
            ``https://{account}.blob.core.windows.net``. An ``http://`` endpoint is treated as
            the emulator (one emulator per process for Delta tables, see
            :class:`~.azure_auth.EmulatorEndpoint`).
        prefix: root folder inside the container; identifiers are relative to it.
        max_retries: retries per request (SDK and delta-rs) before giving up.
        retry_backoff_seconds: wait before the first retry; doubles with each retry.
        timeout_seconds: per-request timeout; connecting times out after
            ``min(5, timeout_seconds)`` s so that an unreachable endpoint fails fast.
        create_container: create the container on first write if it does not exist.

    Example:
        >>> backend = AzureBlobBackend(                                  # doctest: +SKIP
        ...     "market-data",
        ...     account_name="devstoreaccount1",
        ...     account_key=SecretStr(AZURITE_WELL_KNOWN_KEY),
        ...     endpoint="http://127.0.0.1:10000/devstoreaccount1",
        ...     prefix="prod",
        ... )
        >>> backend.save_bytes("ohlcv/_manifest.json", b"{}")            # doctest: +SKIP
        >>> backend.list_items("ohlcv")                                  # doctest: +SKIP
        ['ohlcv/_manifest.json']
        >>> import deltalake                                             # doctest: +SKIP
        >>> deltalake.write_deltalake(                                   # doctest: +SKIP
        ...     backend.get_uri_for_identifier("ohlcv/1m"), table,
        ...     storage_options=backend.get_storage_options(),
        ... )
    """

    def __init__(
        self,
        container_name: str,
        *,
        account_name: str | None = None,
        connection_string: SecretStr | str | None = None,
        account_key: SecretStr | str | None = None,
        sas_token: SecretStr | str | None = None,
        tenant_id: str | None = None,
        client_id: str | None = None,
        client_secret: SecretStr | str | None = None,
        use_default_credential: bool = False,
        endpoint: str | None = None,
        prefix: str = "",
        max_retries: int = 3,
        retry_backoff_seconds: float = 0.5,
        timeout_seconds: float = 30.0,
        create_container: bool = True,
    ) -> None:
        check_container_name(container_name)
        if max_retries < 0 or retry_backoff_seconds < 0 or timeout_seconds <= 0:
            raise ConfigurationError(
                "max_retries and retry_backoff_seconds must be >= 0 and timeout_seconds > 0."
            )
        self._container_name = container_name
        self._prefix = normalize_identifier(prefix, allow_empty=True)
        self._max_retries = int(max_retries)
        self._retry_backoff_seconds = float(retry_backoff_seconds)
        self._timeout_seconds = float(timeout_seconds)
        self._connect_timeout_seconds = min(5.0, self._timeout_seconds)
        self._create_container = create_container

        self._identity: AzureIdentity = resolve_identity(
            account_name=account_name, connection_string=connection_string, account_key=account_key,
            sas_token=sas_token, tenant_id=tenant_id, client_id=client_id, client_secret=client_secret,
            use_default_credential=use_default_credential, endpoint=endpoint,
        )
        self._auth_kind: AuthKind = self._identity.kind
        self._account_name = self._identity.account_name
        self._endpoint = self._identity.endpoint.url

        self._lock = threading.Lock()
        self._container_client: ContainerClient | None = None
        self._container_ready = False
        _install_log_redaction()
        self._claim_emulator()

    def _claim_emulator(self) -> None:
        """Point delta-rs at this backend's emulator, once, when the backend is built (see
        :class:`~.azure_auth.EmulatorEndpoint` for why a process reaches one emulator)."""
        if isinstance(self._identity.endpoint, EmulatorEndpoint):
            self._identity.endpoint.claim()

    # -- public properties ----------------------------------------------------------------
    @property
    def account_name(self) -> str:
        return self._account_name

    @property
    def container_name(self) -> str:
        return self._container_name

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def endpoint(self) -> str:
        return self._endpoint

    @property
    def auth_kind(self) -> AuthKind:
        return self._auth_kind

    @property
    def identity(self) -> AzureIdentity:
        """The validated credential and endpoint both clients use."""
        return self._identity

    @property
    def is_emulator(self) -> bool:
        """True for an ``http://`` endpoint (Azurite): real Azure only serves HTTPS."""
        return self._identity.endpoint.is_emulator

    def __getstate__(self) -> dict[str, Any]:
        # Picklable / deep-copyable (Dagster may copy resources): drop the lock and client.
        state = self.__dict__.copy()
        state["_lock"] = None
        state["_container_client"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        _install_log_redaction()
        self._claim_emulator()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(account_name={self._account_name!r}, "
            f"container_name={self._container_name!r}, endpoint={self._endpoint!r}, "
            f"auth={self._auth_kind!r})"
        )

    def describe(self) -> str:
        location = f"{self._account_name}/{self._container_name}"
        if self._prefix:
            location += f"/{self._prefix}"
        return f"azure://{location} (endpoint {self._endpoint}, auth {self._auth_kind})"

    # -- delta-rs -------------------------------------------------------------------------
    def _blob_name(self, identifier: str, *, allow_empty: bool = False) -> str:
        clean = normalize_identifier(identifier, allow_empty=allow_empty)
        if self._prefix and clean:
            return f"{self._prefix}/{clean}"
        return self._prefix or clean

    def get_uri_for_identifier(self, identifier: str) -> str:
        """``abfss://{container}@{account}.dfs.core.windows.net/{prefix}/{identifier}``.

        The host only carries the account name for delta-rs; requests go to the endpoint
        from :meth:`get_storage_options` (the emulator or ``azure_storage_endpoint``).
        """
        path = self._blob_name(identifier, allow_empty=True)
        return f"abfss://{self._container_name}@{self._account_name}.dfs.core.windows.net/{path}"

    def get_storage_options(self) -> dict[str, str]:
        """delta-rs ``storage_options`` for this account (holds secrets: never log it).

        The account, endpoint and credential options come from :attr:`identity`, the same
        identity the Blob SDK uses (see :mod:`.azure_auth`); an emulator endpoint adds
        ``azure_storage_use_emulator``. Then always ``max_retries``, ``retry_timeout``,
        ``backoff_config.init_backoff``, ``timeout`` and ``connect_timeout``, so that an
        unreachable account fails after the configured retries instead of object_store's
        default of 10 retries / 3 min.
        """
        return {
            **self._identity.delta_options(),
            "max_retries": str(self._max_retries),
            "retry_timeout": _duration(self._timeout_seconds * (self._max_retries + 1)),
            "backoff_config.init_backoff": _duration(self._retry_backoff_seconds),
            "timeout": _duration(self._timeout_seconds),
            "connect_timeout": _duration(self._connect_timeout_seconds),
        }

    # -- errors ---------------------------------------------------------------------------
    def _scrub(self, text: str, limit: int = 200) -> str:
        """``text`` with every known secret and secret-looking fragment removed."""
        for secret in self._identity.secrets():
            text = text.replace(secret, "***")
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(lambda m: m.group(0).split("=", 1)[0].split(":", 1)[0] + "=***", text)
        text = " ".join(text.split())
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def _where(self) -> str:
        return f"container {self._container_name!r} of account {self._account_name!r}"

    def _authentication_error(self, detail: str) -> AuthenticationError:
        hint = {
            "connection_string": "check the AccountKey / SharedAccessSignature in the connection string",
            "account_key": "check the account key (rotated? other account?)",
            "sas_token": "check the SAS token (expiry, permissions racwdl, container scope)",
            "service_principal": "check the service principal's tenant, client id, secret and its "
            "'Storage Blob Data Contributor' role on the container",
            "default_credential": "check the managed identity / workload identity / "
            "`az login` session and its 'Storage Blob Data Contributor' role",
        }[self._auth_kind]
        return AuthenticationError(
            f"Azure refused the credentials for {self._where()} at {self._endpoint} "
            f"(auth {self._auth_kind}; {detail}): {hint}."
        )

    def _unavailable_error(self, reason: str) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"Azure Blob endpoint {self._endpoint} is unreachable after {self._max_retries} "
            f"retries ({reason}) for {self._where()}. Check that the storage account (or "
            "Azurite) is running and reachable from this host, then retry."
        )

    def _map_sdk_error(self, error: BaseException, action: str, identifier: str) -> StorageError | None:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        if isinstance(error, ResourceNotFoundError):
            code = getattr(error, "error_code", None) or "not found"
            return NotFoundError(f"{action} {identifier!r}: {code} in {self._where()}.")
        if isinstance(error, ClientAuthenticationError):
            status = getattr(error, "status_code", None)
            unreachable = None if status else _classify_unavailable(str(error))
            if unreachable is not None:  # no answer from the token authority: not a refusal
                return BackendUnavailableError(
                    f"Could not get a Microsoft Entra ID token for {self._where()} (auth "
                    f"{self._auth_kind}; {unreachable}): the token authority is unreachable after "
                    f"{self._max_retries} retries. Check that this host can reach "
                    "login.microsoftonline.com (or AZURE_AUTHORITY_HOST), then retry."
                )
            detail = f"HTTP {status}" if status else type(error).__name__
            return self._authentication_error(detail)
        if isinstance(error, HttpResponseError):
            status = error.status_code or 0
            code = getattr(error, "error_code", None) or error.reason or ""
            if status in (401, 403):
                return self._authentication_error(f"HTTP {status} {code}".strip())
            if status >= 500 or status in (408, 429):
                return self._unavailable_error(f"HTTP {status} {code}".strip())
            return StorageError(
                f"Azure request to {action} {identifier!r} in {self._where()} failed: "
                f"HTTP {status} {self._scrub(str(code))}."
            )
        if isinstance(error, (ServiceRequestError, ServiceResponseError)):
            return self._unavailable_error(_classify_unavailable(str(error)) or "no connection")
        return None

    @contextmanager
    def _sdk_errors(self, action: str, identifier: str) -> Iterator[None]:
        """Turn azure SDK exceptions into project errors (secret-free, no chained cause)."""
        try:
            yield
        except StorageError:
            raise
        except Exception as error:
            mapped = self._map_sdk_error(error, action, identifier)
            if mapped is None:
                raise
            _raise_without_context(mapped)

    def translate_error(self, error: BaseException) -> StorageError | None:
        """Map an exception from delta-rs, pyarrow or the Azure SDK to a project error.

        Connection failures and timeouts become :class:`BackendUnavailableError`; HTTP
        401/403 become :class:`AuthenticationError`. The message is built from a
        classification, never from the raw text (which may quote a signed URL). Anything
        else returns ``None``.
        """
        if isinstance(error, StorageError):
            return None
        if type(error).__module__.startswith("azure."):
            return self._map_sdk_error(error, "access", "")
        texts: list[str] = []
        current: BaseException | None = error
        while current is not None and len(texts) < 5:
            texts.append(f"{type(current).__name__}: {current}")
            current = current.__cause__ or current.__context__
        text = " | ".join(texts)
        if "ContainerNotFound" in text:
            return NotFoundError(
                f"Container {self._container_name!r} does not exist in account "
                f"{self._account_name!r} ({self._endpoint}). delta-rs never creates containers: "
                "call ensure_container() first (save_bytes does it when create_container=True)."
            )
        if _AUTH_ERROR_RE.search(text):
            status = _HTTP_STATUS_RE.search(text)
            return self._authentication_error(f"HTTP {status.group(1)}" if status else "refused")
        reason = _classify_unavailable(text)
        if reason is not None:
            return self._unavailable_error(reason)
        return None

    # -- Blob API -------------------------------------------------------------------------
    def _credential(self) -> Any:
        # Token requests retry like every other request (azure-identity's default: 3 over ~10 s).
        return self._identity.blob_credential(
            retry_total=self._max_retries, retry_backoff_factor=self._retry_backoff_seconds,
            connection_timeout=self._connect_timeout_seconds, read_timeout=self._timeout_seconds,
        )

    def _uses_sas(self) -> bool:
        credential = self._identity.credential
        if isinstance(credential, ConnectionStringAuth):
            credential = credential.inner
        return isinstance(credential, SasTokenAuth)

    def _container(self) -> ContainerClient:
        with self._lock:
            if self._container_client is None:
                from azure.storage.blob import BlobServiceClient

                retry_policy = _retry_policy_class()(
                    initial_backoff=self._retry_backoff_seconds,
                    retry_total=self._max_retries,
                    random_jitter_range=0,
                )
                service = BlobServiceClient(
                    account_url=self._endpoint,
                    credential=self._credential(),
                    retry_policy=retry_policy,
                    connection_timeout=self._connect_timeout_seconds,
                    read_timeout=self._timeout_seconds,
                )
                self._container_client = service.get_container_client(self._container_name)
            return self._container_client

    def ensure_container(self) -> None:
        """Create the container if it does not exist (delta-rs never creates containers)."""
        from azure.core.exceptions import ResourceExistsError

        with self._sdk_errors("create container for", ""):
            try:
                self._container().create_container()
            except ResourceExistsError:
                pass
        self._container_ready = True

    def prepare_for_writes(self) -> None:
        """Create the container before delta-rs writes, if ``create_container`` allows it.

        A container-scoped SAS may neither create nor inspect its container (HTTP 403): the
        container is then used as it is, and a missing one is reported by the write itself.
        """
        if self._create_container and not self._container_ready:
            try:
                self.ensure_container()
            except AuthenticationError:
                if not self._uses_sas():
                    raise
                self._container_ready = True

    def save_bytes(self, identifier: str, data: bytes) -> None:
        """Upload ``data`` with one ``upload_blob(overwrite=True)``.

        Readers see the old or the new blob, never a mix: a single Put Blob (and, above
        64 MiB, the final Put Block List) replaces the content atomically.
        """
        from azure.core.exceptions import ResourceNotFoundError

        name = self._blob_name(identifier)
        with self._sdk_errors("write", identifier):
            container = self._container()
            try:
                container.upload_blob(name, bytes(data), overwrite=True, length=len(data))
            except ResourceNotFoundError as error:
                container_missing = getattr(error, "error_code", None) == "ContainerNotFound"
                if not (container_missing and self._create_container and not self._container_ready):
                    raise
                self.ensure_container()
                container.upload_blob(name, bytes(data), overwrite=True, length=len(data))
        self._container_ready = True

    def load_bytes(self, identifier: str) -> bytes:
        name = self._blob_name(identifier)
        with self._sdk_errors("read", identifier):
            return self._container().download_blob(name).readall()

    def list_items(self, prefix: str = "") -> list[str]:
        """Blobs under the folder ``prefix`` (recursive), relative to the backend prefix.

        ``prefix`` is a folder: ``"a"`` lists ``a/x`` but not ``ab``. The SDK pages through
        results 5,000 at a time. Folder placeholders of ADLS Gen2 accounts with a
        hierarchical namespace (``hdi_isfolder`` metadata) are not objects and are skipped.
        """
        from azure.core.exceptions import ResourceNotFoundError

        folder = self._blob_name(prefix, allow_empty=True)
        starts_with = f"{folder}/" if folder else ""
        strip = len(self._prefix) + 1 if self._prefix else 0
        items: list[str] = []
        with self._sdk_errors("list", prefix):
            try:
                for blob in self._container().list_blobs(
                    name_starts_with=starts_with or None, include=["metadata"]
                ):
                    if (blob.metadata or {}).get("hdi_isfolder") == "true":
                        continue
                    items.append(blob.name[strip:])
            except ResourceNotFoundError:
                return []
        return sorted(items)

    def exists(self, identifier: str) -> bool:
        """True for a blob or for a folder prefix with at least one blob under it."""
        from azure.core.exceptions import ResourceNotFoundError

        name = self._blob_name(identifier, allow_empty=True)
        with self._sdk_errors("check", identifier):
            container = self._container()
            try:
                if name and container.get_blob_client(name).exists():
                    return True
                pages = container.list_blob_names(
                    name_starts_with=f"{name}/" if name else None, results_per_page=1
                )
                return next(iter(pages), None) is not None
            except ResourceNotFoundError:
                return False

    def delete(self, identifier: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        name = self._blob_name(identifier)
        with self._sdk_errors("delete", identifier):
            try:
                self._container().delete_blob(name)
            except ResourceNotFoundError:
                pass


class _RedactSecretsFilter(logging.Filter):
    """Removes SAS signatures and other secret-looking fragments from log records.

    urllib3 (the Azure SDK's transport) logs every request line at DEBUG, query string
    included, and a SAS token *is* a query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        redacted = _redact(text)
        if redacted != text:
            record.msg, record.args = redacted, None
        return True


_REDACT_FILTER = _RedactSecretsFilter()
_REDACTED_LOGGERS = (
    "urllib3.connectionpool",
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.identity",
)


def _install_log_redaction() -> None:
    for name in _REDACTED_LOGGERS:
        target = logging.getLogger(name)
        if _REDACT_FILTER not in target.filters:
            target.addFilter(_REDACT_FILTER)


def _redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(0).split("=", 1)[0].split(":", 1)[0] + "=***", text)
    return text


def _duration(seconds: float) -> str:
    """A humantime duration for object_store options (``"500ms"``)."""
    return f"{max(round(seconds * 1000), 1)}ms"


def _classify_unavailable(text: str) -> str | None:
    for reason, pattern in _UNAVAILABLE_PATTERNS:
        if pattern.search(text):
            return reason
    return None


def _raise_without_context(error: StorageError) -> NoReturn:
    """Raise ``error`` hiding the SDK exception it replaces (its text may quote a signed URL)."""
    raise error from None
