"""Storage backends: where bytes live (local disk, Azure Blob / ADLS Gen2)."""

from cb_storage_dagster.storage.backends.local import LocalFileBackend

__all__ = ["LocalFileBackend", "AzureBlobBackend"]


def __getattr__(name: str):  # the Azure SDK is imported only when the Azure backend is used
    if name == "AzureBlobBackend":
        from cb_storage_dagster.storage.backends.azure.backend import AzureBlobBackend

        return AzureBlobBackend
    raise AttributeError(name)
