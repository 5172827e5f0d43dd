"""Storage backends as Dagster resources, so a run can be pointed at local disk or Azure
from the launchpad or the environment without code changes.

Secrets are passed with ``dg.EnvVar`` so the UI shows the variable's name, never its value.
"""

from __future__ import annotations

import os
from abc import abstractmethod

import dagster as dg
from pydantic import PrivateAttr

from cb_storage_dagster.settings import (
    AZURE_SECRET_SETTINGS,
    AZURE_VARIABLES,
    ENV_PREFIX,
    StorageConfig,
    azure_credential_fields,
)
from cb_storage_dagster.storage.interfaces import IStorageBackend


class StorageBackendResource(dg.ConfigurableResource):
    """Base class: a resource that builds one :class:`IStorageBackend`."""

    _backend: IStorageBackend | None = PrivateAttr(default=None)

    @abstractmethod
    def _build_backend(self) -> IStorageBackend: ...

    def get_backend(self) -> IStorageBackend:
        """The backend, built once per process."""
        if self._backend is None:
            self._backend = self._build_backend()
        return self._backend


class LocalStorageResource(StorageBackendResource):
    """Local disk rooted at ``root_path``.

    Example:
        >>> import tempfile
        >>> type(LocalStorageResource(root_path=tempfile.mkdtemp()).get_backend()).__name__
        'LocalFileBackend'
    """

    root_path: str

    def _build_backend(self) -> IStorageBackend:
        from cb_storage_dagster.storage.backends.local import LocalFileBackend

        return LocalFileBackend(self.root_path)


class AzureStorageResource(StorageBackendResource, azure_credential_fields(secret=str)):
    """One container of an Azure storage account (Blob storage or ADLS Gen2).

    Give exactly one credential: ``connection_string``, ``account_key``, ``sas_token``, a
    service principal (``tenant_id``/``client_id``/``client_secret``) or
    ``use_default_credential`` (environment service principal, workload identity or managed
    identity; never the Azure CLI). The credential fields are those of
    :class:`~cb_storage_dagster.settings.AzureCredentials`, declared there once.

    Example:
        >>> resource = AzureStorageResource(
        ...     container_name="market-data", account_name="myaccount",
        ...     account_key=dg.EnvVar("CB_STORAGE_AZURE_ACCOUNT_KEY"))
        >>> resource.account_key
        'CB_STORAGE_AZURE_ACCOUNT_KEY'
    """

    container_name: str
    prefix: str = ""
    max_retries: int = 3

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        """Secrets print as ``'**********'`` in ``repr()`` and ``str()`` (an ``EnvVar`` shows its name)."""
        for name, value in super().__repr_args__():
            if name in AZURE_SECRET_SETTINGS and value is not None and not isinstance(value, dg.EnvVar):
                value = "**********"
            yield name, value

    def _build_backend(self) -> IStorageBackend:
        from cb_storage_dagster.storage.backends.azure.backend import AzureBlobBackend

        return AzureBlobBackend(
            self.container_name, **self.azure_credentials(), prefix=self.prefix, max_retries=self.max_retries
        )


def storage_resource_from_env(config: StorageConfig | None = None) -> StorageBackendResource:
    """The backend resource the ``CB_STORAGE_*`` environment (and ``.env``) describes.

    Validates every backend setting and credential now, when the definitions load (a
    :class:`ConfigurationError` naming the variable), and passes secrets as ``dg.EnvVar`` so
    they never appear in the UI or run config. A secret given only in ``.env`` is exported
    to this process's environment first (:func:`adopt_dotenv`), so its ``EnvVar`` resolves.
    """
    adopt_dotenv()
    config = config or StorageConfig.load()
    if config.backend_type == "local":
        return LocalStorageResource(root_path=str(config.local_root_path))
    kwargs: dict[str, object] = {"container_name": config.azure_container_name}
    for name, value in config.azure_credentials().items():
        if name in AZURE_SECRET_SETTINGS:
            if AZURE_VARIABLES[name] in os.environ:
                kwargs[name] = dg.EnvVar(AZURE_VARIABLES[name])
            elif value is not None:  # given to StorageConfig directly: a value, masked in repr
                kwargs[name] = value.get_secret_value()
        elif value or isinstance(value, bool):
            kwargs[name] = value
    if config.azure_prefix:
        kwargs["prefix"] = config.azure_prefix
    kwargs["max_retries"] = config.azure_max_retries
    return AzureStorageResource(**kwargs)  # type: ignore[arg-type]


def adopt_dotenv() -> list[str]:
    """Export the ``CB_STORAGE_*`` variables of the ``.env`` file that :class:`StorageConfig`
    reads into ``os.environ``, unless already set there; returns their names.

    Resources get secrets as ``dg.EnvVar`` (resolved from the environment by every process
    that runs a step), so a secret that only ``.env`` holds must be in the environment too.
    Runs once per definitions load; the real environment always wins over ``.env``.
    """
    from dotenv import dotenv_values

    env_file = StorageConfig.model_config.get("env_file")
    if not isinstance(env_file, (str, os.PathLike)) or not os.path.isfile(env_file):
        return []
    adopted = []
    for name, value in dotenv_values(env_file).items():
        if name.upper().startswith(ENV_PREFIX) and value is not None and name not in os.environ:
            os.environ[name] = value
            adopted.append(name)
    return adopted
