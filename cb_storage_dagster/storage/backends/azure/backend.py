"""Azure Blob Storage backend: one container of a storage account (ADLS Gen2 included).

Bytes go through azure-storage-blob (the Blob API, which ADLS Gen2 accounts also serve and
the Azurite emulator implements); Delta tables go through delta-rs, which gets its URI from
:meth:`AzureBlobBackend.get_uri_for_identifier` and its credentials from
:meth:`AzureBlobBackend.get_storage_options`. This module moves bytes; who the backend is
(credential and endpoint, the same for both clients) is decided in :mod:`.resolve` /
:mod:`.identity` / :mod:`.endpoint`, how requests are retried in :mod:`.transport`, how
errors become the project's in :mod:`.errors`, and what logs may show in :mod:`.redaction`.
The Azure SDK is imported on first use (importing this module stays cheap); no Dagster here.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Unpack

from cb_storage_dagster.domain.errors import AuthenticationError, ConfigurationError, StorageError
from cb_storage_dagster.domain.identifiers import normalize_identifier
from cb_storage_dagster.settings import AzureCredentials
from cb_storage_dagster.storage.backends.azure.endpoint import EmulatorEndpoint, check_container_name
from cb_storage_dagster.storage.backends.azure.errors import AzureErrorTranslator
from cb_storage_dagster.storage.backends.azure.identity import AzureIdentity
from cb_storage_dagster.storage.backends.azure.redaction import install_log_redaction
from cb_storage_dagster.storage.backends.azure.resolve import resolve_identity
from cb_storage_dagster.storage.backends.azure.transport import (
    blob_credential,
    container_client,
    delta_transport_options,
)
from cb_storage_dagster.storage.interfaces import IStorageBackend

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

__all__ = ["AzureBlobBackend"]

class AzureBlobBackend(IStorageBackend):
    """One container (optionally a folder in it) of an Azure storage account.

    Works with Blob Storage and ADLS Gen2 accounts (through the Blob API) and with the
    Azurite emulator. Exactly one authentication method must be given among the
    ``credentials`` (:class:`~cb_storage_dagster.settings.AzureCredentials`): a connection
    string, an account key, a SAS token, a service principal (tenant, client id, client
    secret) or ``use_default_credential=True`` (environment service principal, workload
    identity or managed identity, resolved once: see :class:`~.identity.DefaultCredentialAuth`;
    never the Azure CLI). Secrets are kept as :class:`pydantic.SecretStr` and never appear in
    ``repr()``, :meth:`describe` or error messages.

    Args:
        container_name: the container (created on first write if ``create_container``).
        prefix: root folder inside the container; identifiers are relative to it.
        max_retries: retries per request (SDK and delta-rs) before giving up.
        retry_backoff_seconds: wait before the first retry; doubles with each retry.
        timeout_seconds: per-request timeout; connecting times out after
            ``min(5, timeout_seconds)`` s so that an unreachable endpoint fails fast.
        create_container: create the container on first write if it does not exist.
        **credentials: ``account_name``, ``connection_string``, ``account_key``, ``sas_token``,
            ``tenant_id``, ``client_id``, ``client_secret``, ``use_default_credential``,
            ``endpoint`` (see :class:`~cb_storage_dagster.settings.AzureCredentials`).

    Example:
        >>> backend = AzureBlobBackend("market-data", account_name="myaccount", account_key="a2V5", prefix="prod")
        >>> backend.get_uri_for_identifier("ohlcv/1m")
        'abfss://market-data@myaccount.dfs.core.windows.net/prod/ohlcv/1m'
        >>> backend.describe()
        'azure://myaccount/market-data/prod (endpoint https://myaccount.blob.core.windows.net, auth account_key)'
        >>> "a2V5" in repr(backend)
        False
    """

    def __init__(
        self,
        container_name: str,
        *,
        prefix: str = "",
        max_retries: int = 3,
        retry_backoff_seconds: float = 0.5,
        timeout_seconds: float = 30.0,
        create_container: bool = True,
        **credentials: Unpack[AzureCredentials],
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
        self._create_container = create_container
        self._identity: AzureIdentity = resolve_identity(credentials)
        self._errors = AzureErrorTranslator(
            container_name, self.account_name, self.endpoint, self.auth_kind,
            self._max_retries, self._identity.secrets,
        )
        self._lock = threading.Lock()
        self._container_client: ContainerClient | None = None
        self._container_ready = False
        install_log_redaction()
        self._claim_emulator()

    def _claim_emulator(self) -> None:
        """Point delta-rs at this backend's emulator, once, when the backend is built (see
        :class:`~.endpoint.EmulatorEndpoint` for why a process reaches one emulator)."""
        if isinstance(self._identity.endpoint, EmulatorEndpoint):
            self._identity.endpoint.claim()

    # -- public properties ----------------------------------------------------------------
    container_name = property(lambda self: self._container_name, doc="The container.")
    prefix = property(lambda self: self._prefix, doc="Root folder inside the container.")
    identity = property(lambda self: self._identity, doc="The validated credential and endpoint both clients use.")
    account_name = property(lambda self: self._identity.account_name, doc="The storage account.")
    endpoint = property(lambda self: self._identity.endpoint.url, doc="The blob endpoint URL.")
    auth_kind = property(lambda self: self._identity.kind, doc="Which kind of credential is used.")
    is_emulator = property(
        lambda self: self._identity.endpoint.is_emulator,
        doc="True for an ``http://`` endpoint (Azurite): real Azure only serves HTTPS.",
    )

    def __getstate__(self) -> dict[str, Any]:
        # Picklable / deep-copyable (Dagster may copy resources): drop the lock and client.
        state = self.__dict__.copy()
        state["_lock"] = None
        state["_container_client"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        install_log_redaction()
        self._claim_emulator()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(account_name={self.account_name!r}, "
            f"container_name={self._container_name!r}, endpoint={self.endpoint!r}, "
            f"auth={self.auth_kind!r})"
        )

    def describe(self) -> str:
        location = f"{self.account_name}/{self._container_name}"
        if self._prefix:
            location += f"/{self._prefix}"
        return f"azure://{location} (endpoint {self.endpoint}, auth {self.auth_kind})"

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
        return f"abfss://{self._container_name}@{self.account_name}.dfs.core.windows.net/{path}"

    def get_storage_options(self) -> dict[str, str]:
        """delta-rs ``storage_options`` for this account (holds secrets: never log it).

        The account, endpoint and credential options come from :attr:`identity`, the same
        identity the Blob SDK uses; an emulator endpoint adds ``azure_storage_use_emulator``.
        Then always the retry and timeout options of :func:`.transport.delta_transport_options`.
        """
        return {**self._identity.delta_options(), **delta_transport_options(**self._transport())}

    def translate_error(self, error: BaseException) -> StorageError | None:
        """Map an exception from delta-rs, pyarrow or the Azure SDK to a project error
        (see :meth:`.errors.AzureErrorTranslator.translate`); anything else returns ``None``."""
        return self._errors.translate(error)

    # -- Blob API -------------------------------------------------------------------------
    def _transport(self) -> dict[str, Any]:
        return {"max_retries": self._max_retries, "backoff_seconds": self._retry_backoff_seconds,
                "timeout_seconds": self._timeout_seconds}

    def _credential(self) -> Any:
        """The Blob SDK credential; its token requests retry like every other request."""
        return blob_credential(self._identity, **self._transport())

    def _container(self) -> ContainerClient:
        with self._lock:
            if self._container_client is None:
                self._container_client = container_client(self.endpoint, self._credential(),
                                                          self._container_name, **self._transport())
            return self._container_client

    def ensure_container(self) -> None:
        """Create the container if it does not exist (delta-rs never creates containers)."""
        from azure.core.exceptions import ResourceExistsError

        with self._errors.sdk_errors("create container for", ""):
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
                if not self._identity.uses_sas:
                    raise
                self._container_ready = True

    def save_bytes(self, identifier: str, data: bytes) -> None:
        """Upload ``data`` with one ``upload_blob(overwrite=True)``.

        Readers see the old or the new blob, never a mix: a single Put Blob (and, above
        64 MiB, the final Put Block List) replaces the content atomically.
        """
        from azure.core.exceptions import ResourceNotFoundError

        name = self._blob_name(identifier)
        with self._errors.sdk_errors("write", identifier):
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
        with self._errors.sdk_errors("read", identifier):
            return self._container().download_blob(self._blob_name(identifier)).readall()

    def load_head(self, identifier: str, size: int) -> bytes:
        with self._errors.sdk_errors("read", identifier):  # one ranged GET
            return self._container().download_blob(self._blob_name(identifier), offset=0, length=size).readall()

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
        with self._errors.sdk_errors("list", prefix):
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
        """True for a blob or a folder prefix with a blob under it: the folder is listed first
        (one request for a table's ``_delta_log``), then a ``HEAD`` if nothing is under it."""
        from azure.core.exceptions import ResourceNotFoundError

        name = self._blob_name(identifier, allow_empty=True)
        with self._errors.sdk_errors("check", identifier):
            container = self._container()
            try:
                pages = container.list_blob_names(name_starts_with=f"{name}/" if name else None, results_per_page=1)
                if next(iter(pages), None) is not None:
                    return True
                return bool(name) and container.get_blob_client(name).exists()
            except ResourceNotFoundError:
                return False

    def delete(self, identifier: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        name = self._blob_name(identifier)
        with self._errors.sdk_errors("delete", identifier):
            try:
                self._container().delete_blob(name)
            except ResourceNotFoundError:
                pass
