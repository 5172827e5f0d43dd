"""The Dagster code location: ``dagster dev -w workspace.yaml`` loads ``defs`` from here.

Storage is configured by the ``CB_STORAGE_*`` environment (local disk by default, Azure with
``CB_STORAGE_BACKEND_TYPE=azure``); ``CB_STORAGE_PARTITIONING`` picks the partition profile
(``instrument``, the default, or ``exchange`` for large universes); market data comes from the
deterministic synthetic source by default, so the product runs with no network, or from real
exchanges through ccxt with ``CB_STORAGE_SOURCE=ccxt`` (see
:mod:`cb_storage_dagster.sources.selection`).
"""

from __future__ import annotations

import dagster as dg

from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
from cb_storage_dagster.orchestration.maintenance import MAINTENANCE_JOBS, MAINTENANCE_SCHEDULES
from cb_storage_dagster.orchestration.partitions import PartitionProfile
from cb_storage_dagster.orchestration.profiles import build_pipeline, configured_profile
from cb_storage_dagster.orchestration.resources import adopt_dotenv, storage_resource_from_env
from cb_storage_dagster.settings import StorageConfig
from cb_storage_dagster.sources.selection import market_data_source_from_env


def build_definitions() -> dg.Definitions:
    """Definitions wired to the storage backend the environment describes."""
    adopt_dotenv()  # a `.env` works for Dagster as for StorageConfig (secrets as EnvVar)
    config = StorageConfig.load()  # every backend setting validated here, naming the variable
    storage = storage_resource_from_env(config)
    profile = configured_profile()
    pipeline = build_pipeline(profile)
    # An explicit CB_STORAGE_DELTA_LAYOUT wins; otherwise the exchange profile's tables get the
    # exchange layout (one file per exchange-day instead of one per instrument-day).
    layout = config.delta_layout or ("exchange" if profile is PartitionProfile.EXCHANGE else "instrument")
    return dg.Definitions(
        assets=pipeline.assets.all,
        asset_checks=pipeline.checks.all,
        jobs=[*pipeline.jobs, *MAINTENANCE_JOBS],
        schedules=[*pipeline.schedules, *MAINTENANCE_SCHEDULES],
        sensors=pipeline.sensors,
        resources={
            "storage": storage,
            "market_data_io_manager": MarketDataIOManager(
                storage=storage, default_format=config.default_format,
                max_commit_retries=config.max_commit_retries, delta_layout=layout,
                checkpoint_interval=config.checkpoint_interval,
            ),
            "market_data_source": market_data_source_from_env(),
        },
    )


defs = build_definitions()
