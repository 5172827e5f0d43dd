"""Connection strings: the account, endpoint and key or SAS an Azure connection string holds.

delta-rs cannot take a connection string, so :func:`parse_connection_string` splits one into
the parts both clients use; ``UseDevelopmentStorage=true`` means Azurite's well-known account
on port 10000. Messages never show the value.

Example:
    >>> parts = parse_connection_string("AccountName=acct;SharedAccessSignature=?sv=1&sig=x", None)
    >>> parts.account_name, parts.endpoint, parts.sas_token.get_secret_value()
    ('acct', 'https://acct.blob.core.windows.net', 'sv=1&sig=x')
    >>> parse_connection_string("UseDevelopmentStorage=true", None).endpoint
    'http://127.0.0.1:10000/devstoreaccount1'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from pydantic import SecretStr

from cb_storage_dagster.domain.errors import ConfigurationError

__all__ = ["EMULATOR_ACCOUNT", "EMULATOR_KEY", "ConnectionStringParts", "parse_connection_string"]

EMULATOR_ACCOUNT = "devstoreaccount1"
EMULATOR_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's public, well-known account and key (``UseDevelopmentStorage=true``)."""


class ConnectionStringParts(NamedTuple):
    """What a connection string says: exactly one of ``account_key`` and ``sas_token`` is set."""

    account_name: str | None
    endpoint: str | None
    account_key: SecretStr | None
    sas_token: SecretStr | None


def parse_connection_string(
    connection_string: str, account: str | None, name: Callable[[str], str] = str
) -> ConnectionStringParts:
    """The parts of ``connection_string``; ``account`` (if given) must agree with its AccountName.

    ``name`` gives the caller's name of a setting for messages (``connection_string``,
    ``account_name``).
    """
    fields = _fields(connection_string, name("connection_string"))
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        fields.setdefault("accountname", EMULATOR_ACCOUNT)
        fields.setdefault("accountkey", EMULATOR_KEY)
        fields.setdefault("blobendpoint", f"http://127.0.0.1:10000/{EMULATOR_ACCOUNT}")
    conn_account = fields.get("accountname")
    if account and conn_account and account != conn_account:
        raise ConfigurationError(
            f"{name('account_name')} {account!r} differs from the AccountName {conn_account!r} of "
            f"{name('connection_string')}."
        )
    account = account or conn_account
    key = sas = None
    if fields.get("accountkey"):
        key = SecretStr(fields["accountkey"])
    elif fields.get("sharedaccesssignature"):
        sas = SecretStr(fields["sharedaccesssignature"].lstrip("?"))
    else:
        raise ConfigurationError(
            f"{name('connection_string')} has neither AccountKey nor SharedAccessSignature; use one "
            "that contains a credential (the value is not shown)."
        )
    endpoint = fields.get("blobendpoint")
    if endpoint is None and account:
        protocol = fields.get("defaultendpointsprotocol", "https")
        suffix = fields.get("endpointsuffix", "core.windows.net")
        endpoint = f"{protocol}://{account}.blob.{suffix}"
    return ConnectionStringParts(account, endpoint.rstrip("/") if endpoint else None, key, sas)


def _fields(connection_string: str, name: str) -> dict[str, str]:
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
