"""Every ``CB_STORAGE_*`` environment variable, declared once, in three pydantic-settings models.

=======================  ==========================================================================
model                    variables
=======================  ==========================================================================
:class:`StorageConfig`   the storage backend: ``BACKEND_TYPE``, ``DEFAULT_FORMAT``, ``LOCAL_ROOT_PATH``,
                         ``MAX_COMMIT_RETRIES``, ``DELTA_LAYOUT``, ``CHECKPOINT_INTERVAL``, ``AZURE_*``
:class:`PipelineSettings`  the Dagster pipeline: ``PARTITIONING``, ``INSTRUMENTS``,
                         ``INSTRUMENTS_FILE``, ``SCHEDULE_BATCH_SIZE``, ``CHUNK_INSTRUMENTS``,
                         ``BACKFILL_SINGLE_RUN``, ``FRESHNESS_DEADLINE``
:class:`SourceSettings`  the market-data source: ``SOURCE``, ``CCXT_*``
=======================  ==========================================================================

Each is read from the environment and a ``.env`` file by its ``load()``, which raises
:class:`~cb_storage_dagster.domain.errors.ConfigurationError` naming the variable (never a
secret value). They are separate so that each consumer validates what it uses: a ccxt
setting never fails the instruments sensor. The nine Azure credential settings are declared
once, as :class:`AzureCredentials`, and become fields of :class:`StorageConfig` and of the
Dagster resource through :func:`azure_credential_fields`.

One module per model (``storage``, ``pipeline``, ``source``) on one base (``base``: prefix,
``.env``, ``load()``), and the Azure credential fields (``azure``); import them from here.
No Dagster import: this package is part of the storage core.

Example:
    >>> PipelineSettings.load({"CB_STORAGE_SCHEDULE_BATCH_SIZE": "20"}).schedule_batch_size
    20
    >>> PipelineSettings.load({"CB_STORAGE_SCHEDULE_BATCH_SIZE": "x"})
    Traceback (most recent call last):
    ...
    cb_storage_dagster.domain.errors.ConfigurationError: Invalid pipeline configuration: CB_STORAGE_SCHEDULE_BATCH_SIZE='x' must be a positive integer (instruments per daily run).
"""

from __future__ import annotations

from cb_storage_dagster.settings.azure import (
    AZURE_CREDENTIAL_SETTINGS,
    AZURE_SECRET_SETTINGS,
    AZURE_VARIABLES,
    AzureCredentials,
    azure_credential_fields,
)
from cb_storage_dagster.settings.base import ENV_PREFIX, CbStorageSettings, parse_pairs
from cb_storage_dagster.settings.pipeline import PipelineSettings
from cb_storage_dagster.settings.source import SourceSettings
from cb_storage_dagster.settings.storage import DEFAULT_CHECKPOINT_INTERVAL, StorageConfig

__all__ = [
    "AZURE_CREDENTIAL_SETTINGS",
    "AZURE_SECRET_SETTINGS",
    "AZURE_VARIABLES",
    "DEFAULT_CHECKPOINT_INTERVAL",
    "ENV_PREFIX",
    "SETTINGS_MODELS",
    "AzureCredentials",
    "CbStorageSettings",
    "PipelineSettings",
    "SourceSettings",
    "StorageConfig",
    "azure_credential_fields",
    "parse_pairs",
]

SETTINGS_MODELS: tuple[type[CbStorageSettings], ...] = (StorageConfig, PipelineSettings, SourceSettings)
"""Every settings model; together they declare every ``CB_STORAGE_*`` variable."""
