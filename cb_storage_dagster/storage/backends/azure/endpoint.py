"""Where an Azure backend sends requests: an account's endpoint, or the Azurite emulator.

:func:`resolve_endpoint` validates an endpoint URL and the account name together (an
emulator URL is path-style and names its account); the result is an
:class:`AccountEndpoint` (Azure, a sovereign cloud, a private endpoint) or an
:class:`EmulatorEndpoint` (any ``http://`` URL). The emulator owns the one process-global
setting of this package, ``AZURITE_BLOB_STORAGE_URL`` (see :class:`EmulatorEndpoint`).
:func:`check_container_name` validates the container, the last part of the address.

Example:
    >>> endpoint, account = resolve_endpoint("http://127.0.0.1:10000/devstoreaccount1", None)
    >>> type(endpoint).__name__, endpoint.base_url, account
    ('EmulatorEndpoint', 'http://127.0.0.1:10000', 'devstoreaccount1')
    >>> resolve_endpoint(None, "myaccount")[0].url
    'https://myaccount.blob.core.windows.net'
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from cb_storage_dagster.domain.errors import ConfigurationError

__all__ = ["AZURITE_URL_ENV", "AccountEndpoint", "EmulatorEndpoint", "check_container_name", "resolve_endpoint"]

logger = logging.getLogger(__name__)

AZURITE_URL_ENV = "AZURITE_BLOB_STORAGE_URL"
"""Environment variable delta-rs (object_store) reads for the emulator's base URL."""

_ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}$")


class AccountEndpoint(BaseModel):
    """An Azure storage account's blob endpoint (public cloud, sovereign cloud or private)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
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

    model_config = ConfigDict(frozen=True, extra="forbid")
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


def resolve_endpoint(
    endpoint: str | None, account: str | None, name: Callable[[str], str] = str
) -> tuple[AccountEndpoint | EmulatorEndpoint, str]:
    """The endpoint and the account name, validated together.

    ``name`` gives the caller's name of a setting for messages (``endpoint``,
    ``account_name``, ``connection_string``, ``sas_token``). Raises :class:`ConfigurationError`
    for a URL that is not http(s), one with a query string or user info (a SAS pasted into
    it would leak into messages), an emulator URL naming another account, or a missing or
    malformed account name.
    """
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"{name('endpoint')} {endpoint!r} is not an http(s) URL such as "
                "'https://myaccount.blob.core.windows.net' or 'http://127.0.0.1:10000/devstoreaccount1'."
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigurationError(
                f"{name('endpoint')} must not contain a query string or user info; pass a SAS token "
                f"through {name('sas_token')} (the endpoint is not shown)."
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
                f"{name('account_name')} {account!r} differs from the account {endpoint_account!r} in "
                f"{name('endpoint')} {endpoint!r}."
            )
        account = account or endpoint_account
        endpoint = endpoint.rstrip("/")
    if not account:
        raise ConfigurationError(
            f"{name('account_name')} is required (or {name('connection_string')} / {name('endpoint')} "
            "that names the storage account)."
        )
    if not _ACCOUNT_RE.match(account):
        raise ConfigurationError(
            f"{name('account_name')} {account!r} is not a valid storage account name (3-24 lower-case "
            "letters and digits)."
        )
    url = endpoint or f"https://{account}.blob.core.windows.net"
    place = EmulatorEndpoint(url=url) if url.startswith("http://") else AccountEndpoint(url=url)
    return place, account


_CONTAINER_RE = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def check_container_name(container_name: object, setting: str = "container_name") -> str:
    """``container_name`` if it is a valid Azure container name, else a ConfigurationError
    naming ``setting``.

    >>> check_container_name("market-data")
    'market-data'
    """
    if not isinstance(container_name, str) or not _CONTAINER_RE.match(container_name):
        raise ConfigurationError(
            f"{setting} {container_name!r} is not a valid Azure container name: use 3-63 "
            "lower-case letters, digits and single hyphens, starting and ending with a letter "
            "or digit."
        )
    return container_name
