"""The storage core: plain Python, no Dagster import, usable by any service.

Example:
    >>> from cb_storage_dagster.storage import StorageConfig
    >>> # manager = StorageConfig.load().build_manager()   # reads CB_STORAGE_* variables
"""

from .backends import LocalFileBackend
from .config import StorageConfig
from .errors import (
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
from .interfaces import IStorageBackend, IStorageManager
from .keys import DataType, MarketDataKey, PartitionSlot
from .manager import StorageManagerImpl
from .predicates import WriteScope
from .results import WriteResult
from .schemas import canonical_schema

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
        from .backends.azure import AzureBlobBackend

        return AzureBlobBackend
    raise AttributeError(name)
