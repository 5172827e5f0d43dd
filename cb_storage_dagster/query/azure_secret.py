"""The product's Azure identity as a DuckDB secret, so DuckDB reads with the same credential.

DuckDB's ``delta`` extension reads the Delta log through delta-kernel-rs (object_store) and the
Parquet files through DuckDB's ``azure`` extension; both take their credential from one
``CREATE SECRET (TYPE azure, ...)``:

=====================  ==================================================================
product credential     DuckDB secret
=====================  ==================================================================
connection_string      ``CONNECTION_STRING`` (as given)
account_key            ``CONNECTION_STRING`` built from account, key and blob endpoint
sas_token              ``CONNECTION_STRING`` ``BlobEndpoint=...;SharedAccessSignature=...``
service_principal      ``PROVIDER service_principal`` (tenant, client id, client secret)
default_credential     environment -> ``service_principal``; workload / managed identity ->
                       ``PROVIDER credential_chain`` with that one ``CHAIN``
=====================  ==================================================================

Tables are addressed as ``az://<container>/<prefix>/<table>`` (the Blob API; DuckDB's
``abfss://`` goes through the ADLS Gen2 DFS API, which Azurite does not serve).

Azurite: the ``azure`` extension follows the connection string's ``BlobEndpoint``, but
delta-kernel-rs, like delta-rs, finds an emulator only through the process-wide variable
``AZURITE_BLOB_STORAGE_URL`` (default ``http://127.0.0.1:10000``). The product's Azure backend
sets it when it is built (:class:`~cb_storage_dagster.storage.backends.azure.endpoint.EmulatorEndpoint`),
so a connection opened from a ``StorageConfig`` reads Azurite on any port.

The SQL holds secrets: it is executed, never logged. No Dagster import.
"""

from __future__ import annotations

from cb_storage_dagster.domain.errors import ConfigurationError
from cb_storage_dagster.storage.backends.azure.backend import AzureBlobBackend
from cb_storage_dagster.storage.backends.azure.identity import (
    AccountKeyAuth,
    ConnectionStringAuth,
    DefaultCredentialAuth,
    SasTokenAuth,
    ServicePrincipalAuth,
)

__all__ = ["azure_secret_sql", "azure_table_url"]


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def azure_table_url(backend: AzureBlobBackend, table: str) -> str:
    """``az://<container>/<prefix>/<table>``: the URL DuckDB's ``delta_scan`` reads ``table`` at.

    >>> backend = AzureBlobBackend("market-data", account_name="acct", account_key="a2V5",
    ...                            prefix="prod", create_container=False)
    >>> azure_table_url(backend, "ohlcv_1m")
    'az://market-data/prod/ohlcv_1m'
    """
    path = f"{backend.prefix}/{table}" if backend.prefix else table
    return f"az://{backend.container_name}/{path}"


def azure_secret_sql(backend: AzureBlobBackend, name: str = "cb_storage_azure") -> str:
    """``CREATE OR REPLACE SECRET`` giving DuckDB the backend's own credential (see the module).

    >>> backend = AzureBlobBackend("market-data", account_name="acct", account_key="a2V5",
    ...                            create_container=False)
    >>> azure_secret_sql(backend).startswith("CREATE OR REPLACE SECRET cb_storage_azure (TYPE azure, CONNECTION_STRING")
    True
    """
    identity = backend.identity
    credential = identity.credential
    account, endpoint = identity.account_name, identity.endpoint.url
    if isinstance(credential, ConnectionStringAuth):
        options = {"CONNECTION_STRING": credential.connection_string.get_secret_value()}
    elif isinstance(credential, AccountKeyAuth):
        protocol = "http" if identity.endpoint.is_emulator else "https"
        options = {"CONNECTION_STRING": (
            f"DefaultEndpointsProtocol={protocol};AccountName={account};"
            f"AccountKey={credential.account_key.get_secret_value()};BlobEndpoint={endpoint};")}
    elif isinstance(credential, SasTokenAuth):
        sas = credential.sas_token.get_secret_value().lstrip("?")
        options = {"CONNECTION_STRING": f"BlobEndpoint={endpoint};SharedAccessSignature={sas};"}
    elif isinstance(credential, ServicePrincipalAuth) or (
        isinstance(credential, DefaultCredentialAuth) and credential.source == "environment"
    ):
        if credential.client_secret is None:  # pragma: no cover - the models require it
            raise ConfigurationError("The service principal has no client secret: set CB_STORAGE_AZURE_CLIENT_SECRET.")
        options = {"PROVIDER": "service_principal", "TENANT_ID": credential.tenant_id or "",
                   "CLIENT_ID": credential.client_id or "",
                   "CLIENT_SECRET": credential.client_secret.get_secret_value(), "ACCOUNT_NAME": account}
    elif isinstance(credential, DefaultCredentialAuth):
        options = {"PROVIDER": "credential_chain", "CHAIN": credential.source, "ACCOUNT_NAME": account}
    else:  # pragma: no cover - every credential kind is handled above
        raise ConfigurationError(f"DuckDB cannot use the Azure credential kind {identity.kind!r}.")
    body = ", ".join(f"{key} {_quote(value) if key != 'PROVIDER' else value}" for key, value in options.items())
    return f"CREATE OR REPLACE SECRET {name} (TYPE azure, {body})"
