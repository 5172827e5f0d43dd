"""Configuration is validated when the Dagster definitions load, naming the variable.

Every backend setting and credential fails at load (not at the first storage call inside
a run) with a :class:`ConfigurationError` that names the ``CB_STORAGE_*`` variable; a
``.env`` file works for Dagster as it does for ``StorageConfig``; the write settings reach
the IO manager's storage manager.
"""

import base64
import importlib
import os

import dagster as dg
import pytest

from cb_storage_dagster.storage import ConfigurationError

KEY = base64.b64encode(b"a-test-key-that-is-not-real-0123456789").decode()
AZURE = {
    "CB_STORAGE_BACKEND_TYPE": "azure",
    "CB_STORAGE_AZURE_CONTAINER_NAME": "market-data",
    "CB_STORAGE_AZURE_ACCOUNT_NAME": "acct",
}


@pytest.fixture
def load_definitions(monkeypatch, tmp_path):
    """``load(**env)``: the code location's ``defs`` under exactly that ``CB_STORAGE_*`` env
    (and the ``.env`` file, if a test writes one into the working directory)."""
    for name in list(os.environ):
        if name.startswith("CB_STORAGE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def load(**env: str) -> dg.Definitions:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        import cb_storage_dagster.definitions as module

        return importlib.reload(module).defs

    return load


@pytest.mark.parametrize(
    ("env", "variables"),
    [
        ({}, ["CB_STORAGE_AZURE_ACCOUNT_KEY", "CB_STORAGE_AZURE_SAS_TOKEN"]),  # no credential
        ({"CB_STORAGE_AZURE_ACCOUNT_KEY": KEY, "CB_STORAGE_AZURE_SAS_TOKEN": "sv=1&sig=abc"},
         ["2 Azure authentication methods", "CB_STORAGE_AZURE_ACCOUNT_KEY", "CB_STORAGE_AZURE_SAS_TOKEN"]),
        ({"CB_STORAGE_AZURE_ACCOUNT_KEY": "not base64!"}, ["CB_STORAGE_AZURE_ACCOUNT_KEY", "base64"]),
        ({"CB_STORAGE_AZURE_CONNECTION_STRING": "AccountName=acct;no-equals-sign"},
         ["CB_STORAGE_AZURE_CONNECTION_STRING", "malformed"]),
        ({"CB_STORAGE_AZURE_CONNECTION_STRING": f"AccountName=other;AccountKey={KEY}"},
         ["CB_STORAGE_AZURE_ACCOUNT_NAME", "CB_STORAGE_AZURE_CONNECTION_STRING", "differs"]),
        ({"CB_STORAGE_AZURE_TENANT_ID": "t", "CB_STORAGE_AZURE_CLIENT_ID": "c"},
         ["CB_STORAGE_AZURE_CLIENT_SECRET"]),
        ({"CB_STORAGE_AZURE_ACCOUNT_KEY": KEY, "CB_STORAGE_AZURE_ENDPOINT": "ftp://somewhere"},
         ["CB_STORAGE_AZURE_ENDPOINT"]),
        ({"CB_STORAGE_AZURE_ACCOUNT_KEY": KEY, "CB_STORAGE_AZURE_CONTAINER_NAME": "Bad_Name"},
         ["CB_STORAGE_AZURE_CONTAINER_NAME"]),
        ({"CB_STORAGE_AZURE_ACCOUNT_KEY": KEY, "CB_STORAGE_AZURE_ACCOUNT_NAME": "Not-Valid"},
         ["CB_STORAGE_AZURE_ACCOUNT_NAME"]),
        ({"CB_STORAGE_AZURE_ACCOUNT_KEY": KEY, "CB_STORAGE_AZURE_PREFIX": "../up"}, ["CB_STORAGE_AZURE_PREFIX"]),
        ({"CB_STORAGE_AZURE_ACCOUNT_KEY": KEY, "CB_STORAGE_AZURE_MAX_RETRIES": "-1"},
         ["CB_STORAGE_AZURE_MAX_RETRIES"]),
        ({"CB_STORAGE_AZURE_ACCOUNT_KEY": KEY, "CB_STORAGE_MAX_COMMIT_RETRIES": "lots"},
         ["CB_STORAGE_MAX_COMMIT_RETRIES"]),
    ],
    ids=["missing", "duplicate", "malformed-key", "malformed-connection-string", "conflicting-account",
         "incomplete-service-principal", "bad-endpoint", "bad-container", "bad-account", "bad-prefix",
         "negative-retries", "non-numeric-commit-retries"],
)  # fmt: skip
def test_a_bad_azure_setting_fails_when_the_definitions_load(load_definitions, env, variables):
    with pytest.raises(ConfigurationError) as raised:
        load_definitions(**{**AZURE, **env})
    for expected in variables:
        assert expected in str(raised.value)
    for value in env.values():
        if value in (KEY, "sv=1&sig=abc"):
            assert value not in str(raised.value)


def test_a_valid_configuration_builds_its_backend_without_touching_the_network(load_definitions):
    defs = load_definitions(**AZURE, CB_STORAGE_AZURE_ACCOUNT_KEY=KEY)
    backend = defs.resources["storage"].process_config_and_initialize().get_backend()  # as a run does
    assert backend.get_storage_options()["azure_storage_account_key"] == KEY


def test_a_secret_only_in_dot_env_reaches_the_backend_as_an_env_var(load_definitions, tmp_path, monkeypatch):
    (tmp_path / ".env").write_text(
        "\n".join(f"{name}={value}" for name, value in {**AZURE, "CB_STORAGE_AZURE_ACCOUNT_KEY": KEY}.items())
    )
    for name in [*AZURE, "CB_STORAGE_AZURE_ACCOUNT_KEY"]:  # restored (unset) after the test
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)

    defs = load_definitions()

    storage = defs.resources["storage"]
    assert storage.account_key == dg.EnvVar("CB_STORAGE_AZURE_ACCOUNT_KEY")  # the UI shows the name
    initialized = storage.process_config_and_initialize()  # what a run's step gets
    assert initialized.get_backend().get_storage_options()["azure_storage_account_key"] == KEY
    assert KEY not in repr(storage) + repr(initialized)


def test_the_environment_wins_over_dot_env(load_definitions, tmp_path):
    (tmp_path / ".env").write_text("CB_STORAGE_DEFAULT_FORMAT=json\n")
    defs = load_definitions(CB_STORAGE_LOCAL_ROOT_PATH=str(tmp_path / "data"), CB_STORAGE_DEFAULT_FORMAT="parquet")
    assert defs.resources["market_data_io_manager"].manager.default_format == "parquet"


def test_write_settings_reach_the_io_managers_storage_manager(load_definitions, tmp_path):
    defs = load_definitions(
        CB_STORAGE_LOCAL_ROOT_PATH=str(tmp_path / "data"), CB_STORAGE_MAX_COMMIT_RETRIES="7",
        CB_STORAGE_DEFAULT_FORMAT="parquet",
    )
    manager = defs.resources["market_data_io_manager"].manager
    assert manager.delta.retry_policy.rebase_retries == 7
    assert manager.default_format == "parquet"


def test_a_negative_commit_retry_budget_fails_at_load(load_definitions, tmp_path):
    with pytest.raises(ConfigurationError, match="CB_STORAGE_MAX_COMMIT_RETRIES"):
        load_definitions(CB_STORAGE_LOCAL_ROOT_PATH=str(tmp_path / "data"), CB_STORAGE_MAX_COMMIT_RETRIES="-2")
