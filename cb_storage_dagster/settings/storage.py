"""The storage backend's settings: :class:`StorageConfig` (``BACKEND_TYPE``, ``DEFAULT_FORMAT``,
``LOCAL_ROOT_PATH``, ``MAX_COMMIT_RETRIES``, ``DELTA_LAYOUT``, ``CHECKPOINT_INTERVAL``, ``AZURE_*``), validated when read,
and the backend and manager it builds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import SecretStr, model_validator

from cb_storage_dagster.domain.errors import StorageError
from cb_storage_dagster.settings.azure import AZURE_VARIABLES, azure_credential_fields
from cb_storage_dagster.settings.base import ENV_PREFIX, CbStorageSettings

if TYPE_CHECKING:
    from cb_storage_dagster.storage.interfaces import IStorageBackend
    from cb_storage_dagster.storage.manager import StorageManagerImpl

DEFAULT_CHECKPOINT_INTERVAL = 20
"""Commits between Delta checkpoints (``CB_STORAGE_CHECKPOINT_INTERVAL``): a new process opens
a table from its latest checkpoint plus at most this many JSON commits."""


class StorageConfig(CbStorageSettings, azure_credential_fields(prefix="azure_", secret=SecretStr)):
    """Which backend to use and how, read from ``CB_STORAGE_*`` variables (or a ``.env`` file).

    Example:
        >>> import tempfile
        >>> config = StorageConfig(backend_type="local", local_root_path=tempfile.mkdtemp())
        >>> manager = config.build_manager()
        >>> manager.default_format
        'delta'

    Secrets are :class:`~pydantic.SecretStr`: they print as ``**********``. The Azure
    credentials are the fields ``azure_<name>`` of :class:`AzureCredentials`.
    """

    backend_type: Literal["local", "azure"] = "local"
    default_format: Literal["delta", "parquet", "json"] = "delta"
    local_root_path: Path | None = None
    max_commit_retries: int | None = None
    delta_layout: Literal["instrument", "exchange"] | None = None
    """Layout of Delta tables created from now on (``CB_STORAGE_DELTA_LAYOUT``): ``exchange``
    for thousands of instruments per exchange; existing tables keep theirs. Unset: ``instrument``
    for the storage manager; the Dagster definitions pick the partition profile's layout."""

    checkpoint_interval: int = DEFAULT_CHECKPOINT_INTERVAL
    """Delta writers checkpoint a table at least every this many commits
    (``CB_STORAGE_CHECKPOINT_INTERVAL``; see :data:`DEFAULT_CHECKPOINT_INTERVAL`)."""

    azure_container_name: str | None = None
    azure_prefix: str = ""
    azure_max_retries: int = 3

    @model_validator(mode="after")
    def _check_backend(self) -> StorageConfig:
        """Validate every setting of the chosen backend now, naming the variable, so that a
        misconfiguration fails when the configuration is read (e.g. when the Dagster
        definitions load), not at the first storage call inside a run."""
        if self.max_commit_retries is not None and self.max_commit_retries < 0:
            raise ValueError(f"{ENV_PREFIX}MAX_COMMIT_RETRIES must be >= 0 (or unset for the default).")
        if self.checkpoint_interval < 1:
            raise ValueError(f"{ENV_PREFIX}CHECKPOINT_INTERVAL must be >= 1 (commits between checkpoints).")
        if self.backend_type == "local" and self.local_root_path is None:
            raise ValueError(
                f"{ENV_PREFIX}LOCAL_ROOT_PATH is not set: the local backend needs a root folder, "
                f"e.g. export {ENV_PREFIX}LOCAL_ROOT_PATH=$PWD/data"
            )
        if self.backend_type == "local" and self.local_root_path is not None and self.local_root_path.is_file():
            raise ValueError(f"{ENV_PREFIX}LOCAL_ROOT_PATH {str(self.local_root_path)!r} is a file, not a folder.")
        if self.backend_type == "azure":
            self._check_azure()
        return self

    def _check_azure(self) -> None:
        from cb_storage_dagster.domain.identifiers import normalize_identifier
        from cb_storage_dagster.storage.backends.azure.endpoint import check_container_name
        from cb_storage_dagster.storage.backends.azure.resolve import resolve_identity

        if not self.azure_container_name:
            raise ValueError(f"{ENV_PREFIX}AZURE_CONTAINER_NAME is not set: the azure backend needs a container.")
        check_container_name(self.azure_container_name, f"{ENV_PREFIX}AZURE_CONTAINER_NAME")
        if self.azure_max_retries < 0:
            raise ValueError(f"{ENV_PREFIX}AZURE_MAX_RETRIES must be >= 0.")
        try:
            normalize_identifier(self.azure_prefix, allow_empty=True)
        except StorageError as error:
            raise ValueError(f"{ENV_PREFIX}AZURE_PREFIX: {error}") from None
        # the same validation the backend does, with the variables' names
        resolve_identity(self.azure_credentials(), names=AZURE_VARIABLES)

    def build_backend(self) -> IStorageBackend:
        if self.backend_type == "local":
            from cb_storage_dagster.storage.backends.local import LocalFileBackend

            return LocalFileBackend(self.local_root_path)  # type: ignore[arg-type]
        from cb_storage_dagster.storage.backends.azure.backend import AzureBlobBackend

        return AzureBlobBackend(
            self.azure_container_name,  # type: ignore[arg-type]
            **self.azure_credentials(),
            prefix=self.azure_prefix,
            max_retries=self.azure_max_retries,
        )

    def build_manager(self) -> StorageManagerImpl:
        from cb_storage_dagster.storage.manager import StorageManagerImpl

        return StorageManagerImpl(
            self.build_backend(),
            default_format=self.default_format,
            max_commit_retries=self.max_commit_retries,
            default_layout=self.delta_layout or "instrument",
            checkpoint_interval=self.checkpoint_interval,
        )
