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

Where requests go is the other half, in :mod:`.endpoint`; :class:`AzureIdentity` holds both.
:func:`.resolve.resolve_identity` builds one from the settings, validated.

Example:
    >>> from pydantic import SecretStr
    >>> identity = AzureIdentity(account_name="acct",
    ...                          endpoint=AccountEndpoint(url="https://acct.blob.core.windows.net"),
    ...                          credential=SasTokenAuth(sas_token=SecretStr("sv=2024&sig=abc")))
    >>> identity.kind, identity.delta_options()
    ('sas_token', {'azure_storage_account_name': 'acct', 'azure_storage_sas_token': 'sv=2024&sig=abc'})

No Dagster import; the Azure SDKs are imported only when a credential is built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from cb_storage_dagster.storage.backends.azure.endpoint import AccountEndpoint, EmulatorEndpoint

__all__ = [
    "AccountKeyAuth",
    "AuthKind",
    "AzureIdentity",
    "ConnectionStringAuth",
    "DefaultCredentialAuth",
    "SasTokenAuth",
    "ServicePrincipalAuth",
]

AuthKind = Literal["connection_string", "account_key", "sas_token", "service_principal", "default_credential"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


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

    @property
    def uses_sas(self) -> bool:
        """True for a SAS token, given directly or in a connection string."""
        credential = self.credential
        if isinstance(credential, ConnectionStringAuth):
            credential = credential.inner
        return isinstance(credential, SasTokenAuth)

    def __repr__(self) -> str:  # secrets are SecretStr already; keep it short
        return f"AzureIdentity(account_name={self.account_name!r}, endpoint={self.endpoint.url!r}, kind={self.kind!r})"
