"""``EndpointAzureBlobComputeLogManager``: dagster-azure's blob compute log manager on an
explicit endpoint (Azurite here), with an account key or a container SAS.

The full path (a run's steps captured, uploaded, served by the webserver) is proven in
``test_production_instance.py``; these tests pin the credential choices on their own.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
import yaml
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas
from dagster._core.storage.compute_log_manager import ComputeIOType
from dagster._serdes.config_class import ConfigurableClassData

from cb_storage_dagster.orchestration.compute_logs import EndpointAzureBlobComputeLogManager

pytestmark = pytest.mark.azure


@pytest.fixture
def container(azurite) -> str:
    name = f"logs-{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(name)
    return name


def manager_from_yaml(azurite, container: str, tmp_path, **credential: object) -> EndpointAzureBlobComputeLogManager:
    """Built the way the instance builds it: the dagster.yaml block, rehydrated."""
    config = {"storage_account": azurite.account_name, "container": container, "endpoint": azurite.blob_endpoint,
              "local_dir": str(tmp_path / "staging"), "prefix": "compute-logs", **credential}
    built = ConfigurableClassData("cb_storage_dagster.orchestration.compute_logs", "EndpointAzureBlobComputeLogManager",
                                  yaml.safe_dump(config)).rehydrate()
    assert isinstance(built, EndpointAzureBlobComputeLogManager)
    return built


def upload_and_read_back(manager: EndpointAzureBlobComputeLogManager, text: str) -> bytes:
    log_key = ["run-1", "compute_logs", "step-a"]
    local = Path(manager.local_manager.get_captured_local_path(log_key, "err"))
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(text)
    manager.upload_to_cloud_storage(log_key, ComputeIOType.STDERR)
    assert manager.cloud_storage_has_logs(log_key, ComputeIOType.STDERR)
    return manager.get_log_data_for_type(log_key, ComputeIOType.STDERR, offset=0, max_bytes=None)[0] or b""


def blob_names(azurite, container: str) -> list[str]:
    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    return [blob.name for blob in client.list_blobs()]


def test_with_the_account_key_logs_are_uploaded_to_the_endpoint_and_read_back(azurite, container, tmp_path):
    manager = manager_from_yaml(azurite, container, tmp_path, access_key_or_sas_token=azurite.account_key)
    assert upload_and_read_back(manager, "step stderr\n") == b"step stderr\n"
    assert blob_names(azurite, container) == ["compute-logs/storage/run-1/compute_logs/step-a.err"]
    # What the UI shows as the log's location is the endpoint's URL, never a credential.
    path = manager.display_path_for_type(["run-1", "compute_logs", "step-a"], ComputeIOType.STDERR)
    assert path.startswith(azurite.blob_endpoint) and azurite.account_key not in path


def test_with_a_container_sas_logs_are_uploaded(azurite, container, tmp_path):
    sas = generate_container_sas(
        azurite.account_name, container, account_key=azurite.account_key,
        permission=ContainerSasPermissions(read=True, write=True, create=True, list=True),
        expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1),
    )
    manager = manager_from_yaml(azurite, container, tmp_path, access_key_or_sas_token=sas)
    assert upload_and_read_back(manager, "with sas\n") == b"with sas\n"


def test_a_wrong_key_fails_the_upload_instead_of_writing_elsewhere(azurite, container, tmp_path):
    import base64

    wrong = base64.b64encode(b"not-the-key-" + uuid.uuid4().bytes).decode()
    manager = manager_from_yaml(azurite, container, tmp_path, access_key_or_sas_token=wrong)
    with pytest.raises(Exception, match="(?i)authoriz|signature|403"):
        upload_and_read_back(manager, "x")
    assert blob_names(azurite, container) == []
