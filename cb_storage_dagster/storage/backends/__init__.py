"""Storage backends: where bytes live (local disk, Azure Blob / ADLS Gen2)."""

from .local import LocalFileBackend

__all__ = ["LocalFileBackend", "AzureBlobBackend"]


def __getattr__(name: str):  # the Azure SDK is imported only when the Azure backend is used
    if name == "AzureBlobBackend":
        from .azure import AzureBlobBackend

        return AzureBlobBackend
    raise AttributeError(name)
