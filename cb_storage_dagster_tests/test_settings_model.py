"""settings/ declares every CB_STORAGE_* variable the package and the README mention, and a
bad value raises ConfigurationError naming the variable (never a secret)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from cb_storage_dagster.domain.errors import ConfigurationError
from cb_storage_dagster.settings import (
    AZURE_CREDENTIAL_SETTINGS,
    SETTINGS_MODELS,
    PipelineSettings,
    SourceSettings,
    StorageConfig,
)

ROOT = Path(__file__).resolve().parent.parent
VARIABLE = re.compile(r"CB_STORAGE_[A-Z_]+")


def declared() -> set[str]:
    return {variable for model in SETTINGS_MODELS for variable in model.variables().values()}


def mentioned() -> set[str]:
    texts = [path.read_text() for path in (ROOT / "cb_storage_dagster").rglob("*.py")]
    texts.append((ROOT / "README.md").read_text())
    return {name for text in texts for name in VARIABLE.findall(text)}


def test_every_mentioned_variable_is_a_field_of_a_settings_model():
    variables = declared()
    undeclared = sorted(
        name for name in mentioned()
        # ``CB_STORAGE_CCXT_*`` names a family: some variable must start with it
        if not (name in variables or (name.endswith("_") and any(v.startswith(name) for v in variables)))
    )
    assert undeclared == []


def test_each_variable_is_declared_by_one_model_only():
    names = [variable for model in SETTINGS_MODELS for variable in model.variables().values()]
    assert len(names) == len(set(names))


def test_the_azure_credentials_are_storage_config_fields():
    assert {f"CB_STORAGE_AZURE_{name.upper()}" for name in AZURE_CREDENTIAL_SETTINGS} <= declared()


def test_the_partitioning_values_are_the_partition_profiles():
    from cb_storage_dagster.orchestration.partitions import PartitionProfile

    allowed = set(get_args(PipelineSettings.model_fields["partitioning"].annotation))
    assert allowed == {profile.value for profile in PartitionProfile}


@pytest.mark.parametrize(
    ("model", "variable", "value"),
    [
        (StorageConfig, "CB_STORAGE_BACKEND_TYPE", "s3"),
        (StorageConfig, "CB_STORAGE_MAX_COMMIT_RETRIES", "-1"),
        (PipelineSettings, "CB_STORAGE_PARTITIONING", "coin"),
        (PipelineSettings, "CB_STORAGE_SCHEDULE_BATCH_SIZE", "0"),
        (PipelineSettings, "CB_STORAGE_FRESHNESS_DEADLINE", "25:00"),
        (PipelineSettings, "CB_STORAGE_FRESHNESS_DEADLINE", "00:00"),
        (SourceSettings, "CB_STORAGE_SOURCE", "kaggle"),
        (SourceSettings, "CB_STORAGE_CCXT_PAGE_LIMIT", "many"),
        (SourceSettings, "CB_STORAGE_CCXT_SYMBOLS", "kraken:BTC"),
    ],
)
def test_a_bad_value_names_the_variable(model, variable, value, tmp_path):
    environ = {"CB_STORAGE_LOCAL_ROOT_PATH": str(tmp_path), variable: value}
    with pytest.raises(ConfigurationError, match=variable):
        model.load(environ)


def test_a_bad_azure_setting_never_shows_the_secret():
    secret = "bm90LWEtcmVhbC1rZXk="
    environ = {"CB_STORAGE_BACKEND_TYPE": "azure", "CB_STORAGE_AZURE_CONTAINER_NAME": "market-data",
               "CB_STORAGE_AZURE_ACCOUNT_NAME": "acct", "CB_STORAGE_AZURE_ACCOUNT_KEY": secret,
               "CB_STORAGE_AZURE_SAS_TOKEN": "sv=1&sig=" + secret}
    with pytest.raises(ConfigurationError, match="CB_STORAGE_AZURE_ACCOUNT_KEY") as raised:
        StorageConfig.load(environ)
    assert secret not in str(raised.value)


def test_an_explicit_environ_ignores_the_process_environment(monkeypatch):
    monkeypatch.setenv("CB_STORAGE_SOURCE", "ccxt")
    assert SourceSettings.load().source == "ccxt"
    assert SourceSettings.load({}).source == "synthetic"
