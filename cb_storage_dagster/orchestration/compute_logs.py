"""Compute logs (each step's stdout/stderr) in Azure Blob Storage, on any blob endpoint.

dagster-azure's :class:`~dagster_azure.blob.AzureBlobComputeLogManager` always talks to
``https://<account>.blob.<endpoint_suffix>``. That covers the public and sovereign clouds,
but not an explicit endpoint: a private endpoint with its own host name, or the Azurite
emulator (``http://127.0.0.1:10000/devstoreaccount1``) that the tests use. This subclass adds
one optional setting, ``endpoint`` (the same meaning as ``CB_STORAGE_AZURE_ENDPOINT``), and
otherwise is dagster-azure's manager: same keys, same upload, same UI behaviour.

Configured in the instance's ``dagster.yaml`` (see ``deploy/dagster.yaml``), never in code.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.identity import ClientSecretCredential, DefaultAzureCredential
from azure.storage.blob import BlobServiceClient
from dagster import Field, Noneable, StringSource
from dagster_azure.blob import AzureBlobComputeLogManager

from cb_storage_dagster.orchestration.dagster_internals import blob_key, use_blob_client


class EndpointAzureBlobComputeLogManager(AzureBlobComputeLogManager):
    """dagster-azure's blob compute log manager, with an optional explicit blob ``endpoint``.

    Without ``endpoint`` it behaves exactly like ``AzureBlobComputeLogManager``. With it, the
    blob client is built on that URL (``http://`` is allowed only there, for the emulator).

    Example (``dagster.yaml``)::

        compute_logs:
          module: cb_storage_dagster.orchestration.compute_logs
          class: EndpointAzureBlobComputeLogManager
          config:
            storage_account: mystorageaccount
            container: dagster-compute-logs
            default_azure_credential: {}
            endpoint: https://mystorageaccount.privatelink.blob.core.windows.net
    """

    def __init__(self, *args: Any, endpoint: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._endpoint = endpoint
        if endpoint:
            # The parent built a client for the public-cloud URL (no request was made yet);
            # replace it by one on the configured endpoint, with the same credential choice.
            settings = inspect.signature(AzureBlobComputeLogManager.__init__).bind(self, *args, **kwargs).arguments
            client = BlobServiceClient(
                account_url=endpoint.rstrip("/"),
                credential=_credential_for(
                    settings["storage_account"],
                    settings.get("secret_credential"),
                    settings.get("access_key_or_sas_token"),
                    settings.get("default_azure_credential"),
                ),
            )
            use_blob_client(self, client, settings["container"])
            self._container_url = client.get_container_client(settings["container"]).url

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {
            **super().config_type(),
            "endpoint": Field(
                Noneable(StringSource),
                is_required=False,
                default_value=None,
                description="Blob endpoint URL (private endpoint, Azurite); default: the public cloud.",
            ),
        }

    def display_path_for_type(self, log_key: Any, io_type: Any) -> str:
        if not self._endpoint:
            return super().display_path_for_type(log_key, io_type)
        return f"{self._container_url}/{blob_key(self, log_key, io_type)}"


def _credential_for(
    storage_account: str,
    secret_credential: Mapping[str, str] | None,
    key_or_sas: str | None,
    default_azure_credential: Mapping[str, Any] | None,
) -> Any:
    """The credential dagster-azure would use for the same settings."""
    if secret_credential:
        return ClientSecretCredential(**secret_credential)
    if key_or_sas:
        # A SAS token is a query string (sv=...&sig=...); an account key is base64.
        if "sig=" in key_or_sas:
            return AzureSasCredential(key_or_sas.lstrip("?"))
        return AzureNamedKeyCredential(storage_account, key_or_sas)
    return DefaultAzureCredential(**(default_azure_credential or {}))
