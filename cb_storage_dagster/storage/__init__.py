"""The storage core: plain Python, no Dagster import, usable by any service.

Example:
    >>> from cb_storage_dagster.storage import StorageConfig
    >>> # manager = StorageConfig.load().build_manager()   # reads CB_STORAGE_* variables
"""

from cb_storage_dagster.domain.errors import (
    AuthenticationError,
    BackendUnavailableError,
    ConfigurationError,
    CorruptTableError,
    InvalidDataError,
    InvalidKeyError,
    LayoutMismatchError,
    NotFoundError,
    PartitionMismatchError,
    SchemaMismatchError,
    StorageError,
    TimeRangeError,
    UnsupportedFormatError,
    UnsupportedTableFeatureError,
    UnsupportedWriteModeError,
    WriteConflictError,
)
from cb_storage_dagster.domain.keys import DataType, MarketDataKey, PartitionSlot
from cb_storage_dagster.domain.results import WriteResult
from cb_storage_dagster.domain.schemas import canonical_schema
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.settings import StorageConfig
from cb_storage_dagster.storage.backends import LocalFileBackend
from cb_storage_dagster.storage.interfaces import IStorageBackend, IStorageManager
from cb_storage_dagster.storage.manager import StorageManagerImpl

__all__ = [
    "AuthenticationError", "AzureBlobBackend", "BackendUnavailableError", "ConfigurationError",
    "CorruptTableError", "DataType", "IStorageBackend", "IStorageManager", "InvalidDataError",
    "InvalidKeyError", "LayoutMismatchError", "LocalFileBackend", "MarketDataKey", "NotFoundError",
    "PartitionMismatchError", "PartitionSlot", "SchemaMismatchError", "StorageConfig",
    "StorageError", "StorageManagerImpl", "TimeRangeError", "UnsupportedFormatError",
    "UnsupportedTableFeatureError", "UnsupportedWriteModeError", "WriteConflictError", "WriteResult",
    "WriteScope", "canonical_schema",
]


def __getattr__(name: str):  # the Azure SDK loads only when the Azure backend is used
    if name == "AzureBlobBackend":
        from cb_storage_dagster.storage.backends.azure.backend import AzureBlobBackend

        return AzureBlobBackend
    raise AttributeError(name)
