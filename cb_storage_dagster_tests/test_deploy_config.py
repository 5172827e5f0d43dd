"""What a team applies from ``deploy/`` is valid before it reaches a cluster.

There is no Kubernetes cluster and no Azure subscription here, so the two container run
launchers cannot launch anything. What these tests do prove, and nothing more:

* ``deploy/dagster.yaml`` passes Dagster's own instance schema, and every class block in it
  (PostgreSQL storage, queued run coordinator, compute log manager, ``K8sRunLauncher``) passes
  that class's config schema, with its ``env:`` sources resolved;
* with ``deploy/aca-run-launcher.yaml`` swapped in, the instance schema still passes and
  dagster-azure's ``AcaRunLauncher`` is actually built from the block (its constructor makes no
  Azure call); ``K8sRunLauncher`` cannot be built without cluster credentials (tested too);
* ``deploy/helm/values.yaml`` uses only keys the Dagster chart documents
  (``deploy/helm/chart-keys.schema.json``; no ``helm`` binary is installable here) and sets the
  same limits and compute-log settings as ``deploy/dagster.yaml``;
* the Dockerfile's command starts a code server that serves ``cb_storage_dagster.definitions``.

The PostgreSQL storage and the compute log manager run for real in
``test_production_instance.py``.
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from dagster._config import process_config, resolve_to_config_type
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._serdes.config_class import ConfigurableClassData, class_from_code_pointer

from cb_storage_dagster_tests.support.dagster_dev import REPO_ROOT, free_port
from cb_storage_dagster_tests.support.servers import ServerProcess

DEPLOY = REPO_ROOT / "deploy"

# Placeholder values for every `env:` source of the deploy files: the schema check resolves
# them the way a pod would, without any real secret.
PLACEHOLDER_ENV = {
    "DAGSTER_PG_HOST": "postgres.example.internal",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "placeholder-password",
    "DAGSTER_PG_DB": "dagster",
    "CB_STORAGE_AZURE_ACCOUNT_NAME": "mystorageaccount",
    "DAGSTER_COMPUTE_LOGS_CONTAINER": "dagster-compute-logs",
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "dagster-instance",
    "DAGSTER_K8S_PG_PASSWORD_SECRET": "dagster-postgresql-secret",
    "DAGSTER_HOME": "/opt/dagster/dagster_home",
    "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000000",
    "DAGSTER_ACA_RESOURCE_GROUP": "rg-dagster",
    "DAGSTER_ACA_REGION": "westeurope",
    "DAGSTER_ACA_ENVIRONMENT_ID": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.App/managedEnvironments/env",
    "DAGSTER_ACA_IDENTITY_ID": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id",
}


@pytest.fixture
def deploy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PLACEHOLDER_ENV.items():
        monkeypatch.setenv(name, value)


def production_config() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "dagster.yaml").read_text())


def with_aca_launcher(config: dict[str, Any]) -> dict[str, Any]:
    """``deploy/dagster.yaml`` with its run_launcher block replaced as deploy/README.md says."""
    merged = copy.deepcopy(config)
    merged["run_launcher"] = yaml.safe_load((DEPLOY / "aca-run-launcher.yaml").read_text())["run_launcher"]
    return merged


def validate_instance(config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Dagster's own instance loader: the schema every `dagster` process applies at start."""
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    value, _custom_class = dagster_instance_config(str(tmp_path))
    return dict(value)


def class_data(config: dict[str, Any], tmp_path: Path, field: str) -> ConfigurableClassData:
    """The class block as the instance loads it (``InstanceRef``: legacy module names mapped)."""
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    return getattr(InstanceRef.from_dir(str(tmp_path)), field)


def validate_class_block(data: ConfigurableClassData) -> dict[str, Any]:
    """The class's own config schema, ``env:`` sources resolved (without building the class)."""
    klass = class_from_code_pointer(data.module_name, data.class_name)
    result = process_config(resolve_to_config_type(klass.config_type()), data.config_dict)  # type: ignore[attr-defined]
    if not result.success:
        raise DagsterInvalidConfigError(f"{data.class_name} config is invalid", result.errors, data.config_dict)
    return dict(result.value)


# -- deploy/dagster.yaml ----------------------------------------------------------------------------
def test_the_production_instance_yaml_passes_dagsters_instance_schema(tmp_path, deploy_env):
    value = validate_instance(production_config(), tmp_path)
    assert set(value) >= {"storage", "run_coordinator", "concurrency", "compute_logs", "run_launcher"}
    assert "postgres" in value["storage"]


@pytest.mark.parametrize(
    ("field", "expected_class"),
    [("run_coordinator_data", "QueuedRunCoordinator"),
     ("compute_logs_data", "EndpointAzureBlobComputeLogManager"),
     ("run_launcher_data", "K8sRunLauncher")],
)
def test_every_class_block_passes_its_own_config_schema(field, expected_class, tmp_path, deploy_env):
    data = class_data(production_config(), tmp_path, field)
    assert data.class_name == expected_class
    assert validate_class_block(data) is not None


def test_the_postgres_storage_block_passes_dagster_postgres_schema_and_reads_the_password_from_the_environment(deploy_env):
    from dagster_postgres import DagsterPostgresStorage

    config = production_config()["storage"]["postgres"]
    assert config["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}  # never a literal
    result = process_config(resolve_to_config_type(DagsterPostgresStorage.config_type()), config)
    assert result.success, result.errors
    assert result.value["postgres_db"]["password"] == PLACEHOLDER_ENV["DAGSTER_PG_PASSWORD"]


def test_a_misspelt_key_in_the_instance_yaml_is_refused(tmp_path, deploy_env):
    config = production_config()
    config["concurrency"]["pools"]["default_limt"] = config["concurrency"]["pools"].pop("default_limit")
    with pytest.raises(DagsterInvalidConfigError):
        validate_instance(config, tmp_path)


def test_a_misspelt_k8s_launcher_option_is_refused(tmp_path, deploy_env):
    config = production_config()
    config["run_launcher"]["config"]["job_namespce"] = config["run_launcher"]["config"].pop("job_namespace")
    with pytest.raises(DagsterInvalidConfigError):
        validate_class_block(class_data(config, tmp_path, "run_launcher_data"))


def test_the_k8s_launcher_is_not_built_here_because_it_needs_a_cluster(tmp_path, deploy_env):
    data = class_data(production_config(), tmp_path, "run_launcher_data")
    # The config is valid (above); building the launcher loads the in-cluster credentials,
    # which exist only inside a Kubernetes pod.
    with pytest.raises(Exception, match="(?i)service host/port is not set|kubernetes"):
        data.rehydrate()


@pytest.mark.filterwarnings("ignore::dagster.BetaWarning")  # AcaRunLauncher is marked beta upstream
def test_the_container_apps_alternative_passes_the_schema_and_builds_the_aca_launcher(tmp_path, deploy_env):
    from dagster_azure.container_apps import AcaRunLauncher

    config = with_aca_launcher(production_config())
    validate_instance(config, tmp_path)
    launcher = class_data(config, tmp_path, "run_launcher_data").rehydrate()
    assert isinstance(launcher, AcaRunLauncher)
    # The runs get the instance's and the tables' settings, not just the launcher's.
    assert {"DAGSTER_PG_PASSWORD", "CB_STORAGE_AZURE_ACCOUNT_NAME"} <= set(launcher.env_vars)


def test_the_deploy_files_contain_no_literal_secret():
    for path in [DEPLOY / "dagster.yaml", DEPLOY / "aca-run-launcher.yaml", DEPLOY / "helm" / "values.yaml"]:
        text = path.read_text()
        for name in ("password", "access_key_or_sas_token", "secret_credential", "client_secret", "account_key"):
            for line in text.splitlines():
                code = line.split("#", 1)[0]
                if f"{name}:" in code:
                    value = code.split(":", 1)[1].strip()
                    assert value == "" or value.startswith("{env:") or value.startswith("<"), (path, line)


# -- deploy/helm/values.yaml ----------------------------------------------------------------------
def helm_values() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def chart_schema() -> dict[str, Any]:
    return json.loads((DEPLOY / "helm" / "chart-keys.schema.json").read_text())


def test_the_helm_values_use_only_keys_the_dagster_chart_documents():
    jsonschema.Draft7Validator.check_schema(chart_schema())
    errors = [e.message for e in jsonschema.Draft7Validator(chart_schema()).iter_errors(helm_values())]
    assert errors == []


def test_a_misspelt_helm_key_is_refused():
    values = helm_values()
    values["runLauncher"]["config"]["k8sRunLauncher"]["envSecret"] = values["runLauncher"]["config"]["k8sRunLauncher"].pop("envSecrets")
    assert list(jsonschema.Draft7Validator(chart_schema()).iter_errors(values))


def test_the_helm_values_and_the_instance_yaml_set_the_same_limits_and_compute_logs():
    instance, values = production_config(), helm_values()
    pools, runs = instance["concurrency"]["pools"], instance["concurrency"]["runs"]
    assert values["concurrency"]["enabled"] is True
    assert values["concurrency"]["pools"] == {"defaultLimit": pools["default_limit"], "granularity": pools["granularity"]}
    assert values["concurrency"]["runs"] == {"maxConcurrentRuns": runs["max_concurrent_runs"]}
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == instance["run_coordinator"]["class"]
    assert values["dagsterDaemon"]["runRetries"]["maxRetries"] == instance["run_retries"]["max_retries"]

    chart_logs = values["computeLogManager"]["config"]["customComputeLogManager"]
    assert (chart_logs["module"], chart_logs["class"]) == (instance["compute_logs"]["module"], instance["compute_logs"]["class"])
    same = {"prefix", "upload_interval", "default_azure_credential"}
    assert {k: chart_logs["config"][k] for k in same} == {k: instance["compute_logs"]["config"][k] for k in same}


def test_the_helm_code_location_runs_the_same_definitions_module_as_the_dockerfile():
    deployment = helm_values()["dagster-user-deployments"]["deployments"][0]
    command = dockerfile_command()
    module = command[command.index("-m") + 1]
    assert deployment["codeServerArgs"] == ["-m", module]
    assert str(deployment["port"]) == command[command.index("-p") + 1]
    assert {"name": "cb-storage-azure"} in deployment["envSecrets"]


# -- deploy/Dockerfile ----------------------------------------------------------------------------
def dockerfile_command() -> list[str]:
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    cmd = [line for line in lines if line.startswith("CMD ")]
    assert len(cmd) == 1
    return json.loads(cmd[0][len("CMD "):])


@pytest.mark.slow
def test_the_dockerfile_command_starts_a_code_server_for_the_definitions(tmp_path):
    """The image's CMD, run here (no Docker): it serves the code location over gRPC."""
    command = dockerfile_command()
    port = free_port()
    command[command.index("-h") + 1] = "127.0.0.1"  # tests only listen on 127.0.0.1
    command[command.index("-p") + 1] = str(port)
    dagster = str(Path(sys.executable).parent / "dagster")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "CB_STORAGE_BACKEND_TYPE": "local",
           "CB_STORAGE_LOCAL_ROOT_PATH": str(tmp_path / "data")}
    server = ServerProcess([dagster, *command[1:]], name=shlex.join(command), log_path=tmp_path / "code-server.log",
                           cwd=tmp_path, env=env)
    server.start(healthy=lambda: grpc_health_check(dagster, port, env), timeout=120, interval=1)
    try:
        # What the webserver asks a code server first: the code location it serves.
        from dagster._grpc.client import DagsterGrpcClient

        response = DagsterGrpcClient(port=port, host="127.0.0.1").list_repositories()
        assert "cb_storage_dagster.definitions" in str(response)
    finally:
        stopped = server.stop()
    assert stopped is not None and not stopped.needed_sigkill, stopped  # it stops on SIGTERM


def grpc_health_check(dagster: str, port: int, env: dict[str, str]) -> bool:
    """True when the code server on 127.0.0.1:``port`` answers Dagster's gRPC health check."""
    check = subprocess.run([dagster, "api", "grpc-health-check", "-h", "127.0.0.1", "-p", str(port)],
                           capture_output=True, text=True, env=env, timeout=60)
    return check.returncode == 0
