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

from collections.abc import Mapping
from typing import Any

from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.identity import ClientSecretCredential, DefaultAzureCredential
from azure.storage.blob import BlobServiceClient
from dagster import Field, Noneable, StringSource
from dagster_azure.blob import AzureBlobComputeLogManager


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
            self._blob_client = BlobServiceClient(
                account_url=endpoint.rstrip("/"),
                credential=self._credential_for(
                    kwargs.get("secret_credential"), kwargs.get("access_key_or_sas_token")
                ),
            )
            self._container_client = self._blob_client.get_container_client(self._container)

    def _credential_for(self, secret_credential: Mapping[str, str] | None, key_or_sas: str | None) -> Any:
        if secret_credential:
            return ClientSecretCredential(**secret_credential)
        if key_or_sas:
            # A SAS token is a query string (sv=...&sig=...); an account key is base64.
            if "sig=" in key_or_sas:
                return AzureSasCredential(key_or_sas.lstrip("?"))
            return AzureNamedKeyCredential(self._storage_account, key_or_sas)
        return DefaultAzureCredential(**self._default_azure_credential)

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
        return f"{self._container_client.url}/{self._blob_key(log_key, io_type)}"
