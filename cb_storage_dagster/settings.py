"""StorageConfig: the storage layer configured from ``CB_STORAGE_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cb_storage_dagster.domain.errors import ConfigurationError, StorageError

if TYPE_CHECKING:
    from cb_storage_dagster.storage.interfaces import IStorageBackend
    from cb_storage_dagster.storage.manager import StorageManagerImpl

ENV_PREFIX = "CB_STORAGE_"

AZURE_VARIABLES = {
    name: f"{ENV_PREFIX}AZURE_{name.upper()}"
    for name in ("account_name", "connection_string", "account_key", "sas_token", "tenant_id",
                 "client_id", "client_secret", "use_default_credential", "endpoint")
}
"""The variable behind each Azure setting, for error messages."""


class StorageConfig(BaseSettings):
    """Which backend to use and how, read from ``CB_STORAGE_*`` variables (or a ``.env`` file).

    Example:
        >>> import tempfile
        >>> config = StorageConfig(backend_type="local", local_root_path=tempfile.mkdtemp())
        >>> manager = config.build_manager()
        >>> manager.default_format
        'delta'

    Secrets are :class:`~pydantic.SecretStr`: they print as ``**********``.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    backend_type: Literal["local", "azure"] = "local"
    default_format: Literal["delta", "parquet", "json"] = "delta"
    local_root_path: Path | None = None
    max_commit_retries: int | None = None
    delta_layout: Literal["instrument", "exchange"] | None = None
    """Layout of Delta tables created from now on (``CB_STORAGE_DELTA_LAYOUT``): ``exchange``
    for thousands of instruments per exchange; existing tables keep theirs. Unset: ``instrument``
    for the storage manager; the Dagster definitions pick the partition profile's layout."""

    azure_container_name: str | None = None
    azure_account_name: str | None = None
    azure_connection_string: SecretStr | None = None
    azure_account_key: SecretStr | None = None
    azure_sas_token: SecretStr | None = None
    azure_tenant_id: str | None = None
    azure_client_id: str | None = None
    azure_client_secret: SecretStr | None = None
    azure_use_default_credential: bool = False
    azure_endpoint: str | None = None
    azure_prefix: str = ""
    azure_max_retries: int = 3

    @model_validator(mode="after")
    def _check_backend(self) -> StorageConfig:
        """Validate every setting of the chosen backend now, naming the variable, so that a
        misconfiguration fails when the configuration is read (e.g. when the Dagster
        definitions load), not at the first storage call inside a run."""
        if self.max_commit_retries is not None and self.max_commit_retries < 0:
            raise ValueError(f"{ENV_PREFIX}MAX_COMMIT_RETRIES must be >= 0 (or unset for the default).")
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
        from cb_storage_dagster.storage.backends.azure.backend import check_container_name
        from cb_storage_dagster.storage.backends.azure.identity import resolve_identity

        if not self.azure_container_name:
            raise ValueError(f"{ENV_PREFIX}AZURE_CONTAINER_NAME is not set: the azure backend needs a container.")
        check_container_name(self.azure_container_name, f"{ENV_PREFIX}AZURE_CONTAINER_NAME")
        if self.azure_max_retries < 0:
            raise ValueError(f"{ENV_PREFIX}AZURE_MAX_RETRIES must be >= 0.")
        try:
            normalize_identifier(self.azure_prefix, allow_empty=True)
        except StorageError as error:
            raise ValueError(f"{ENV_PREFIX}AZURE_PREFIX: {error}") from None
        resolve_identity(  # the same validation the backend does, with the variables' names
            account_name=self.azure_account_name, connection_string=self.azure_connection_string,
            account_key=self.azure_account_key, sas_token=self.azure_sas_token,
            tenant_id=self.azure_tenant_id, client_id=self.azure_client_id,
            client_secret=self.azure_client_secret, use_default_credential=self.azure_use_default_credential,
            endpoint=self.azure_endpoint, names=AZURE_VARIABLES,
        )

    @classmethod
    def load(cls, **overrides: object) -> StorageConfig:
        """Read the environment; a misconfiguration raises :class:`ConfigurationError`
        naming the variable (and never its secret value)."""
        try:
            return cls(**overrides)  # type: ignore[arg-type]
        except ValidationError as exc:
            problems = "; ".join(_describe(err) for err in exc.errors())
            raise ConfigurationError(f"Invalid storage configuration: {problems}") from None

    def build_backend(self) -> IStorageBackend:
        if self.backend_type == "local":
            from cb_storage_dagster.storage.backends.local import LocalFileBackend

            return LocalFileBackend(self.local_root_path)  # type: ignore[arg-type]
        from cb_storage_dagster.storage.backends.azure.backend import AzureBlobBackend

        return AzureBlobBackend(
            self.azure_container_name,  # type: ignore[arg-type]
            account_name=self.azure_account_name,
            connection_string=self.azure_connection_string,
            account_key=self.azure_account_key,
            sas_token=self.azure_sas_token,
            tenant_id=self.azure_tenant_id,
            client_id=self.azure_client_id,
            client_secret=self.azure_client_secret,
            use_default_credential=self.azure_use_default_credential,
            endpoint=self.azure_endpoint,
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
        )


def _describe(error: dict) -> str:
    location = ".".join(str(p) for p in error.get("loc", ()))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if location:
        return f"{ENV_PREFIX}{location.upper()}: {message}"
    return message
