"""Azure settings into an :class:`~.identity.AzureIdentity`: exactly one credential, validated.

:func:`resolve_identity` takes the :class:`~cb_storage_dagster.settings.AzureCredentials`
settings (the backend's keyword arguments, or :class:`~cb_storage_dagster.settings.StorageConfig`'s
``azure_*`` fields) and checks them together: one authentication method, a complete service
principal, a well-formed connection string, account key and endpoint, account names that
agree. Its error messages use the caller's names for the settings (constructor arguments for
the backend, ``CB_STORAGE_*`` variables for ``StorageConfig``) and never show a secret value.

Example:
    >>> identity = resolve_identity({"account_name": "acct", "sas_token": "?sv=2024&sig=abc"})
    >>> identity.kind, identity.delta_options()["azure_storage_sas_token"]
    ('sas_token', 'sv=2024&sig=abc')
    >>> resolve_identity({"account_name": "acct"}, names={"account_key": "CB_STORAGE_AZURE_ACCOUNT_KEY"})
    Traceback (most recent call last):
    ...
    cb_storage_dagster.domain.errors.ConfigurationError: 0 Azure authentication methods given (none). Give exactly one of: connection_string; CB_STORAGE_AZURE_ACCOUNT_KEY (with account_name); sas_token (with account_name); tenant_id + client_id + client_secret (service principal, with account_name); use_default_credential=true (environment service principal, workload identity or managed identity, with account_name).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from cb_storage_dagster.domain.errors import ConfigurationError
from cb_storage_dagster.settings import AZURE_CREDENTIAL_SETTINGS, AzureCredentials
from cb_storage_dagster.storage.backends.azure.connection_string import parse_connection_string
from cb_storage_dagster.storage.backends.azure.endpoint import resolve_endpoint
from cb_storage_dagster.storage.backends.azure.identity import (
    AccountKeyAuth,
    AzureCredential,
    AzureIdentity,
    ConnectionStringAuth,
    DefaultCredentialAuth,
    SasTokenAuth,
    ServicePrincipalAuth,
)

__all__ = ["resolve_identity"]


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



def _secret(value: SecretStr | str | None) -> SecretStr | None:
    """``None`` for a missing or empty secret (an empty env var is not a credential)."""
    if value is None:
        return None
    secret = value if isinstance(value, SecretStr) else SecretStr(value)
    return secret if secret.get_secret_value().strip() else None


def _text(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def resolve_identity(
    credentials: AzureCredentials | Mapping[str, Any],
    *,
    names: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AzureIdentity:
    """Validate one Azure configuration into an :class:`AzureIdentity`.

    Raises :class:`ConfigurationError` naming the setting (through ``names``) for no or
    several credentials, an incomplete service principal, a malformed connection string,
    account key or endpoint, or account names that disagree. Secret values are never shown.
    ``environ`` (default ``os.environ``) is where ``use_default_credential`` looks.
    """
    unknown = sorted(set(credentials) - set(AZURE_CREDENTIAL_SETTINGS))
    if unknown:
        raise TypeError(f"Unknown Azure setting(s) {unknown}: use {', '.join(AZURE_CREDENTIAL_SETTINGS)}.")
    n = _Names(names)
    conn, key = _secret(credentials.get("connection_string")), _secret(credentials.get("account_key"))
    sas, secret = _secret(credentials.get("sas_token")), _secret(credentials.get("client_secret"))
    tenant, client = _text(credentials.get("tenant_id")), _text(credentials.get("client_id"))
    use_default_credential = bool(credentials.get("use_default_credential", False))
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

    account = _text(credentials.get("account_name"))
    conn_endpoint: str | None = None
    credential: AzureCredential
    if conn is not None:
        parts = parse_connection_string(conn.get_secret_value(), account, n)
        account, conn_endpoint = parts.account_name, parts.endpoint
        inner: AccountKeyAuth | SasTokenAuth
        if parts.account_key is not None:
            inner = AccountKeyAuth(
                account_key=_checked_key(parts.account_key, f"The AccountKey of {n('connection_string')}")
            )
        else:
            inner = SasTokenAuth(sas_token=parts.sas_token)
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

    explicit = _text(credentials.get("endpoint"))
    if explicit and conn_endpoint and explicit.rstrip("/") != conn_endpoint:
        raise ConfigurationError(
            f"{n('endpoint')} and the BlobEndpoint of {n('connection_string')} differ; give only one."
        )
    place, account = resolve_endpoint(explicit or conn_endpoint, account, n)
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
