"""Azure identity: one configuration gives the Blob SDK and delta-rs the same credential.

The backend talks to Azure through two clients: azure-storage-blob for bytes and delta-rs
(object_store) for Delta tables. Each credential kind is one pydantic model that yields BOTH
the SDK credential (:meth:`blob_credential`) and the delta-rs ``storage_options``
(:meth:`delta_options`), so the two can never authenticate as different identities:

=====================  ==================================  =====================================
kind                   Blob SDK                            delta-rs options
=====================  ==================================  =====================================
connection_string      its AccountKey or SAS               the same key or SAS
account_key            ``AzureNamedKeyCredential``         ``azure_storage_account_key``
sas_token              ``AzureSasCredential``              ``azure_storage_sas_token``
service_principal      ``ClientSecretCredential``          ``azure_client_id/secret``, tenant
default_credential     resolved once from the environment (see :class:`DefaultCredentialAuth`)
=====================  ==================================  =====================================

Where requests go is the other half: :class:`AccountEndpoint` (Azure, or a custom HTTPS
endpoint) or :class:`EmulatorEndpoint` (Azurite, any ``http://`` endpoint).
:func:`resolve_identity` validates a configuration into an :class:`AzureIdentity`; its error
messages use the caller's names for the settings (constructor arguments for the backend,
``CB_STORAGE_*`` variables for :class:`~cb_storage_dagster.settings.StorageConfig`).

Example:
    >>> identity = resolve_identity(account_name="acct", sas_token="?sv=2024&sig=abc")
    >>> identity.kind, identity.delta_options()["azure_storage_sas_token"]
    ('sas_token', 'sv=2024&sig=abc')

No Dagster import; the Azure SDKs are imported only when a credential is built.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

from cb_storage_dagster.domain.errors import ConfigurationError

__all__ = [
    "AZURITE_URL_ENV",
    "AccountEndpoint",
    "AccountKeyAuth",
    "AuthKind",
    "AzureIdentity",
    "ConnectionStringAuth",
    "DefaultCredentialAuth",
    "EmulatorEndpoint",
    "SasTokenAuth",
    "ServicePrincipalAuth",
    "resolve_identity",
]

logger = logging.getLogger(__name__)

AuthKind = Literal["connection_string", "account_key", "sas_token", "service_principal", "default_credential"]

AZURITE_URL_ENV = "AZURITE_BLOB_STORAGE_URL"
"""Environment variable delta-rs (object_store) reads for the emulator's base URL."""

EMULATOR_ACCOUNT = "devstoreaccount1"
EMULATOR_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's public, well-known account and key (``UseDevelopmentStorage=true``)."""

_ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}$")
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class _Names:
    """How error messages call each setting (argument names, or ``CB_STORAGE_*`` variables)."""

    def __init__(self, names: Mapping[str, str] | None) -> None:
        self._names = dict(names or {})

    def __call__(self, setting: str) -> str:
        return self._names.get(setting, setting)

    def help(self) -> str:
        n = self
        return (
            f"Give exactly one of: {n('connection_string')}; {n('account_key')} (with "
            f"{n('account_name')}); {n('sas_token')} (with {n('account_name')}); {n('tenant_id')} + "
            f"{n('client_id')} + {n('client_secret')} (service principal, with {n('account_name')}); "
            f"{n('use_default_credential')}=true (environment service principal, workload identity "
            f"or managed identity, with {n('account_name')})."
        )


# -- credentials --------------------------------------------------------------------------
class _Credential(BaseModel):
    model_config = _FROZEN
    kind: ClassVar[AuthKind]

    def blob_credential(self, account_name: str, **transport: Any) -> Any:
        """The credential for ``BlobServiceClient`` (``transport``: retry/timeout settings of
        credentials that request tokens)."""
        raise NotImplementedError

    def delta_options(self) -> dict[str, str]:
        """delta-rs ``storage_options`` entries for the same identity (they hold secrets)."""
        raise NotImplementedError

    def secrets(self) -> list[str]:
        """Secret values to scrub from any message."""
        return [v.get_secret_value() for v in self.__dict__.values()
                if isinstance(v, SecretStr) and v.get_secret_value()]


class AccountKeyAuth(_Credential):
    """The storage account's shared key (base64)."""

    kind: ClassVar[AuthKind] = "account_key"
    account_key: SecretStr

    def blob_credential(self, account_name: str, **transport: Any) -> Any:
        from azure.core.credentials import AzureNamedKeyCredential

        return AzureNamedKeyCredential(account_name, self.account_key.get_secret_value())

    def delta_options(self) -> dict[str, str]:
        return {"azure_storage_account_key": self.account_key.get_secret_value()}


class SasTokenAuth(_Credential):
    """A SAS token (without the leading ``?``)."""

    kind: ClassVar[AuthKind] = "sas_token"
    sas_token: SecretStr

    def blob_credential(self, account_name: str, **transport: Any) -> Any:
        from azure.core.credentials import AzureSasCredential

        return AzureSasCredential(self.sas_token.get_secret_value())

    def delta_options(self) -> dict[str, str]:
        return {"azure_storage_sas_token": self.sas_token.get_secret_value()}


class ConnectionStringAuth(_Credential):
    """A connection string; delta-rs cannot take one, so both clients use the key or SAS in it."""

    kind: ClassVar[AuthKind] = "connection_string"
    connection_string: SecretStr
    inner: AccountKeyAuth | SasTokenAuth

    def blob_credential(self, account_name: str, **transport: Any) -> Any:
        return self.inner.blob_credential(account_name, **transport)

    def delta_options(self) -> dict[str, str]:
        return self.inner.delta_options()

    def secrets(self) -> list[str]:
        return [self.connection_string.get_secret_value(), *self.inner.secrets()]


class ServicePrincipalAuth(_Credential):
    """A Microsoft Entra ID application: tenant, client id and client secret."""

    kind: ClassVar[AuthKind] = "service_principal"
    tenant_id: str
    client_id: str
    client_secret: SecretStr

    def blob_credential(self, account_name: str, **transport: Any) -> Any:
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(
            self.tenant_id, self.client_id, self.client_secret.get_secret_value(), **transport
        )

    def delta_options(self) -> dict[str, str]:
        return {
            "azure_client_id": self.client_id,
            "azure_client_secret": self.client_secret.get_secret_value(),
            "azure_tenant_id": self.tenant_id,
        }


class DefaultCredentialAuth(_Credential):
    """The host's identity, resolved ONCE from the environment, for both clients.

    azure-identity's ``DefaultAzureCredential`` tries a chain at request time (environment,
    workload identity, managed identity, Azure CLI, ...) and delta-rs cannot run that chain,
    so the two could pick different identities (e.g. the SDK a VM's managed identity and
    delta-rs an ``az login`` user). Here the chain is decided when the configuration is read,
    in this order, and each client gets the same one:

    * ``environment``: ``AZURE_CLIENT_ID`` + ``AZURE_TENANT_ID`` + ``AZURE_CLIENT_SECRET``;
    * ``workload_identity``: ``AZURE_CLIENT_ID`` + ``AZURE_TENANT_ID`` + ``AZURE_FEDERATED_TOKEN_FILE``;
    * ``managed_identity``: otherwise (``AZURE_CLIENT_ID``, if set, picks a user-assigned one).

    The Azure CLI is never chosen implicitly (having ``az`` on the PATH changes nothing).
    """

    kind: ClassVar[AuthKind] = "default_credential"
    source: Literal["environment", "workload_identity", "managed_identity"]
    client_id: str | None = None
    tenant_id: str | None = None
    client_secret: SecretStr | None = None
    federated_token_file: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> DefaultCredentialAuth:
        env = os.environ if environ is None else environ
        client_id, tenant_id = env.get("AZURE_CLIENT_ID") or None, env.get("AZURE_TENANT_ID") or None
        if client_id and tenant_id and env.get("AZURE_CLIENT_SECRET"):
            return cls(source="environment", client_id=client_id, tenant_id=tenant_id,
                       client_secret=SecretStr(env["AZURE_CLIENT_SECRET"]))
        if client_id and tenant_id and env.get("AZURE_FEDERATED_TOKEN_FILE"):
            return cls(source="workload_identity", client_id=client_id, tenant_id=tenant_id,
                       federated_token_file=env["AZURE_FEDERATED_TOKEN_FILE"])
        return cls(source="managed_identity", client_id=client_id)

    def blob_credential(self, account_name: str, **transport: Any) -> Any:
        if self.source == "environment":
            assert self.tenant_id and self.client_id and self.client_secret is not None
            return ServicePrincipalAuth(
                tenant_id=self.tenant_id, client_id=self.client_id, client_secret=self.client_secret
            ).blob_credential(account_name, **transport)
        if self.source == "workload_identity":
            from azure.identity import WorkloadIdentityCredential

            return WorkloadIdentityCredential(
                tenant_id=self.tenant_id, client_id=self.client_id, token_file_path=self.federated_token_file
            )
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=self.client_id) if self.client_id else ManagedIdentityCredential()

    def delta_options(self) -> dict[str, str]:
        if self.source == "environment":
            assert self.client_secret is not None
            return {"azure_client_id": self.client_id or "", "azure_tenant_id": self.tenant_id or "",
                    "azure_client_secret": self.client_secret.get_secret_value()}
        if self.source == "workload_identity":
            return {"azure_client_id": self.client_id or "", "azure_tenant_id": self.tenant_id or "",
                    "azure_federated_token_file": self.federated_token_file or ""}
        # object_store's fallback without credentials is the managed identity (IMDS)
        return {"azure_client_id": self.client_id} if self.client_id else {}


# -- endpoints ----------------------------------------------------------------------------
class AccountEndpoint(BaseModel):
    """An Azure storage account's blob endpoint (public cloud, sovereign cloud or private)."""

    model_config = _FROZEN
    url: str

    is_emulator: ClassVar[bool] = False

    def delta_options(self, account_name: str) -> dict[str, str]:
        if self.url == f"https://{account_name}.blob.core.windows.net":
            return {}
        return {"azure_storage_endpoint": self.url}


class EmulatorEndpoint(BaseModel):
    """Azurite (any ``http://`` endpoint, path-style: ``http://127.0.0.1:10000/devstoreaccount1``).

    delta-rs (object_store 0.13) reaches an emulator only in emulator mode, and then takes its
    base URL from the process-wide environment variable ``AZURITE_BLOB_STORAGE_URL``, with no
    per-table option (giving the endpoint as ``azure_storage_endpoint`` instead broke commits on
    ports other than 10000, see STACK-NOTES). So a process can use ONE emulator for Delta
    tables: :meth:`claim` sets the variable when a backend is built, and :meth:`delta_options`
    refuses (``ConfigurationError``) if another emulator has claimed it since, rather than
    sending this backend's tables to the other emulator. Its byte API is not affected.
    """

    model_config = _FROZEN
    url: str

    is_emulator: ClassVar[bool] = True

    @property
    def base_url(self) -> str:
        """``scheme://host:port`` (what ``AZURITE_BLOB_STORAGE_URL`` holds)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def claim(self) -> None:
        """Point delta-rs at this emulator (called once per backend, when it is built)."""
        previous = os.environ.get(AZURITE_URL_ENV)
        if previous != self.base_url:
            if previous:
                logger.warning("%s changes from %s to %s: Delta tables of backends on the former "
                               "emulator are refused from now on in this process.",
                               AZURITE_URL_ENV, previous, self.base_url)
            os.environ[AZURITE_URL_ENV] = self.base_url

    def delta_options(self, account_name: str) -> dict[str, str]:
        current = os.environ.get(AZURITE_URL_ENV)
        if current is None:
            self.claim()  # e.g. removed by a test or another library: nothing else uses it
        elif current != self.base_url:
            raise ConfigurationError(
                f"delta-rs can reach one Azurite emulator per process and {AZURITE_URL_ENV} now "
                f"points at {current}, not at this backend's {self.base_url}: use one emulator "
                "per process (or create this backend again to switch)."
            )
        return {"azure_storage_use_emulator": "true"}


AzureCredential = ConnectionStringAuth | AccountKeyAuth | SasTokenAuth | ServicePrincipalAuth | DefaultCredentialAuth


class AzureIdentity(BaseModel):
    """Who the backend is (credential) and where it sends requests (endpoint), validated."""

    model_config = _FROZEN
    account_name: str
    endpoint: AccountEndpoint | EmulatorEndpoint
    credential: AzureCredential

    @property
    def kind(self) -> AuthKind:
        return self.credential.kind

    def blob_credential(self, **transport: Any) -> Any:
        return self.credential.blob_credential(self.account_name, **transport)

    def delta_options(self) -> dict[str, str]:
        """Account, endpoint and credential options for delta-rs (no retry settings)."""
        return {
            "azure_storage_account_name": self.account_name,
            **self.endpoint.delta_options(self.account_name),
            **self.credential.delta_options(),
        }

    def secrets(self) -> list[str]:
        return self.credential.secrets()

    def __repr__(self) -> str:  # secrets are SecretStr already; keep it short
        return f"AzureIdentity(account_name={self.account_name!r}, endpoint={self.endpoint.url!r}, kind={self.kind!r})"


# -- resolution -----------------------------------------------------------------------------
def _secret(value: SecretStr | str | None) -> SecretStr | None:
    """``None`` for a missing or empty secret (an empty env var is not a credential)."""
    if value is None:
        return None
    secret = value if isinstance(value, SecretStr) else SecretStr(value)
    return secret if secret.get_secret_value().strip() else None


def _text(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def resolve_identity(
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
    names: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AzureIdentity:
    """Validate one Azure configuration into an :class:`AzureIdentity`.

    Raises :class:`ConfigurationError` naming the setting (through ``names``) for no or
    several credentials, an incomplete service principal, a malformed connection string,
    account key or endpoint, or account names that disagree. Secret values are never shown.
    """
    n = _Names(names)
    conn, key, sas, secret = _secret(connection_string), _secret(account_key), _secret(sas_token), _secret(client_secret)
    tenant, client = _text(tenant_id), _text(client_id)
    given: list[str] = []
    if conn is not None:
        given.append(n("connection_string"))
    if key is not None:
        given.append(n("account_key"))
    if sas is not None:
        given.append(n("sas_token"))
    if tenant or client or secret is not None:
        given.append("a service principal")
    if use_default_credential:
        given.append(n("use_default_credential"))
    if len(given) != 1:
        listed = ", ".join(given) if given else "none"
        raise ConfigurationError(f"{len(given)} Azure authentication methods given ({listed}). {n.help()}")

    account = _text(account_name)
    conn_endpoint: str | None = None
    credential: _Credential
    if conn is not None:
        account, conn_endpoint, inner = _from_connection_string(conn, account, n)
        credential = ConnectionStringAuth(connection_string=conn, inner=inner)
    elif key is not None:
        credential = AccountKeyAuth(account_key=_checked_key(key, n("account_key")))
    elif sas is not None:
        credential = SasTokenAuth(sas_token=SecretStr(sas.get_secret_value().strip().lstrip("?")))
    elif use_default_credential:
        credential = DefaultCredentialAuth.from_environment(environ)
    else:
        if not (tenant and client and secret is not None):
            raise ConfigurationError(
                f"A service principal needs all of {n('tenant_id')}, {n('client_id')} and "
                f"{n('client_secret')}. {n.help()}"
            )
        credential = ServicePrincipalAuth(tenant_id=tenant, client_id=client, client_secret=secret)

    explicit = _text(endpoint)
    if explicit and conn_endpoint and explicit.rstrip("/") != conn_endpoint:
        raise ConfigurationError(
            f"{n('endpoint')} and the BlobEndpoint of {n('connection_string')} differ; give only one."
        )
    url, account = _endpoint_and_account(explicit or conn_endpoint, account, n)
    place: AccountEndpoint | EmulatorEndpoint = (
        EmulatorEndpoint(url=url) if url.startswith("http://") else AccountEndpoint(url=url)
    )
    return AzureIdentity(account_name=account, endpoint=place, credential=credential)


def _checked_key(key: SecretStr, name: str) -> SecretStr:
    try:
        base64.b64decode(key.get_secret_value().strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            f"{name} is not valid base64; copy it again from the storage account's 'Access keys' "
            "page (the value is not shown)."
        ) from None
    return SecretStr(key.get_secret_value().strip())


def _parse_connection_string(connection_string: str, name: str) -> dict[str, str]:
    """``Key=Value;...`` fields with lower-cased keys (values may contain ``=``)."""
    fields: dict[str, str] = {}
    for part in connection_string.split(";"):
        if not part.strip():
            continue
        field, sep, value = part.partition("=")
        if not sep:
            raise ConfigurationError(
                f"{name} is malformed: expected 'Key=Value;' fields such as AccountName, "
                "AccountKey, BlobEndpoint (the value is not shown)."
            )
        fields[field.strip().lower()] = value.strip()
    return fields


def _from_connection_string(
    conn: SecretStr, account: str | None, n: _Names
) -> tuple[str | None, str | None, AccountKeyAuth | SasTokenAuth]:
    """Account, endpoint and the key or SAS of a connection string."""
    fields = _parse_connection_string(conn.get_secret_value(), n("connection_string"))
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        fields.setdefault("accountname", EMULATOR_ACCOUNT)
        fields.setdefault("accountkey", EMULATOR_KEY)
        fields.setdefault("blobendpoint", f"http://127.0.0.1:10000/{EMULATOR_ACCOUNT}")
    conn_account = fields.get("accountname")
    if account and conn_account and account != conn_account:
        raise ConfigurationError(
            f"{n('account_name')} {account!r} differs from the AccountName {conn_account!r} of "
            f"{n('connection_string')}."
        )
    account = account or conn_account
    inner: AccountKeyAuth | SasTokenAuth
    if fields.get("accountkey"):
        inner = AccountKeyAuth(
            account_key=_checked_key(SecretStr(fields["accountkey"]), f"The AccountKey of {n('connection_string')}")
        )
    elif fields.get("sharedaccesssignature"):
        inner = SasTokenAuth(sas_token=SecretStr(fields["sharedaccesssignature"].lstrip("?")))
    else:
        raise ConfigurationError(
            f"{n('connection_string')} has neither AccountKey nor SharedAccessSignature; use one "
            "that contains a credential (the value is not shown)."
        )
    endpoint = fields.get("blobendpoint")
    if endpoint is None and account:
        protocol = fields.get("defaultendpointsprotocol", "https")
        suffix = fields.get("endpointsuffix", "core.windows.net")
        endpoint = f"{protocol}://{account}.blob.{suffix}"
    return account, endpoint.rstrip("/") if endpoint else None, inner


def _endpoint_and_account(endpoint: str | None, account: str | None, n: _Names) -> tuple[str, str]:
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"{n('endpoint')} {endpoint!r} is not an http(s) URL such as "
                "'https://myaccount.blob.core.windows.net' or 'http://127.0.0.1:10000/devstoreaccount1'."
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            # A SAS pasted into the endpoint would leak into messages; refuse it.
            raise ConfigurationError(
                f"{n('endpoint')} must not contain a query string or user info; pass a SAS token "
                f"through {n('sas_token')} (the endpoint is not shown)."
            )
        path_segments = [s for s in parts.path.split("/") if s]
        endpoint_account: str | None = None
        if parts.scheme == "http" and path_segments:
            endpoint_account = path_segments[0]  # emulator: path-style URL
        elif parts.scheme == "https" and ".blob." in parts.hostname:
            endpoint_account = parts.hostname.split(".", 1)[0]
        # Private endpoints / custom domains may use another host name: trust the account
        # name then, except for the emulator's path-style URL.
        if account and endpoint_account and account != endpoint_account and parts.scheme == "http":
            raise ConfigurationError(
                f"{n('account_name')} {account!r} differs from the account {endpoint_account!r} in "
                f"{n('endpoint')} {endpoint!r}."
            )
        account = account or endpoint_account
        endpoint = endpoint.rstrip("/")
    if not account:
        raise ConfigurationError(
            f"{n('account_name')} is required (or {n('connection_string')} / {n('endpoint')} that "
            "names the storage account)."
        )
    if not _ACCOUNT_RE.match(account):
        raise ConfigurationError(
            f"{n('account_name')} {account!r} is not a valid storage account name (3-24 lower-case "
            "letters and digits)."
        )
    return endpoint or f"https://{account}.blob.core.windows.net", account
