"""The Dagster code location: ``dagster dev -w workspace.yaml`` loads ``defs`` from here.

Storage is configured by the ``CB_STORAGE_*`` environment (local disk by default, Azure with
``CB_STORAGE_BACKEND_TYPE=azure``); ``CB_STORAGE_PARTITIONING`` picks the partition profile
(``instrument``, the default, or ``exchange`` for large universes); market data comes from
the deterministic synthetic source, so the product runs with no network.
"""

from __future__ import annotations

import dagster as dg

from cb_storage_dagster.adapters.io_manager import MarketDataIOManager
from cb_storage_dagster.adapters.resources import storage_resource_from_env
from cb_storage_dagster.pipeline import SyntheticMarketDataSource
from cb_storage_dagster.pipeline.maintenance import MAINTENANCE_JOBS, MAINTENANCE_SCHEDULES
from cb_storage_dagster.pipeline.profiles import build_pipeline, configured_profile
from cb_storage_dagster.storage.config import StorageConfig


def build_definitions() -> dg.Definitions:
    """Definitions wired to the storage backend the environment describes."""
    config = StorageConfig.load()
    storage = storage_resource_from_env()
    pipeline = build_pipeline(configured_profile())
    return dg.Definitions(
        assets=pipeline.assets.all,
        asset_checks=pipeline.checks.all,
        jobs=[*pipeline.jobs, *MAINTENANCE_JOBS],
        schedules=[*pipeline.schedules, *MAINTENANCE_SCHEDULES],
        sensors=pipeline.sensors,
        resources={
            "storage": storage,
            "market_data_io_manager": MarketDataIOManager(storage=storage, default_format=config.default_format),
            "market_data_source": SyntheticMarketDataSource(),
        },
    )


defs = build_definitions()
