"""The nine Azure credential settings, declared once: :class:`AzureCredentials` (the keyword
arguments of ``AzureBlobBackend`` and ``resolve_identity``) and :func:`azure_credential_fields`,
which makes them fields of :class:`~cb_storage_dagster.settings.StorageConfig` and of the Dagster
``AzureStorageResource``."""

from __future__ import annotations

from typing import Any, ClassVar, TypedDict, get_args, get_type_hints

from pydantic import BaseModel, SecretStr, create_model

from cb_storage_dagster.settings.base import ENV_PREFIX


class AzureCredentials(TypedDict, total=False):
    """Who an Azure backend is: give exactly one credential (see ``resolve_identity``).

    The keyword arguments of ``AzureBlobBackend`` and ``resolve_identity``; as fields,
    ``CB_STORAGE_AZURE_<NAME>`` of :class:`StorageConfig` and the config of the Dagster
    ``AzureStorageResource``. A ``SecretStr`` in the type marks a secret.
    """

    account_name: str | None
    connection_string: SecretStr | str | None
    account_key: SecretStr | str | None
    sas_token: SecretStr | str | None
    tenant_id: str | None
    client_id: str | None
    client_secret: SecretStr | str | None
    use_default_credential: bool
    endpoint: str | None


_AZURE_HINTS = get_type_hints(AzureCredentials)
AZURE_CREDENTIAL_SETTINGS: tuple[str, ...] = tuple(_AZURE_HINTS)
AZURE_SECRET_SETTINGS = frozenset(name for name, hint in _AZURE_HINTS.items() if SecretStr in get_args(hint))
AZURE_VARIABLES = {name: f"{ENV_PREFIX}AZURE_{name.upper()}" for name in AZURE_CREDENTIAL_SETTINGS}
"""The variable behind each Azure setting, for error messages."""


class _AzureCredentialFields(BaseModel):
    _credential_prefix: ClassVar[str] = ""

    def azure_credentials(self) -> AzureCredentials:
        """The nine credential settings, as :class:`AzureCredentials` keyword arguments."""
        return {name: getattr(self, self._credential_prefix + name) for name in AZURE_CREDENTIAL_SETTINGS}  # type: ignore[return-value]


def azure_credential_fields(*, prefix: str = "", secret: type = SecretStr) -> type[_AzureCredentialFields]:
    """A pydantic mixin with one field per :class:`AzureCredentials` setting, named
    ``prefix + name``: secrets typed ``secret | None``, ``use_default_credential`` a ``bool``
    (default ``False``), the others ``str | None``.

    >>> sorted(azure_credential_fields(prefix="azure_").model_fields)[:2]
    ['azure_account_key', 'azure_account_name']
    """
    fields: dict[str, Any] = {}
    for name, hint in _AZURE_HINTS.items():
        if hint is bool:
            fields[prefix + name] = (bool, False)
        else:
            fields[prefix + name] = (secret | None if name in AZURE_SECRET_SETTINGS else str | None, None)
    mixin = create_model("AzureCredentialFields", __base__=_AzureCredentialFields, **fields)
    mixin._credential_prefix = prefix
    return mixin
