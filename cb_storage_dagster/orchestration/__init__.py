"""The market-data pipeline: what a Dagster user sees.

Assets (``trades``, ``order_book`` -> ``ohlcv_1m`` -> ``ohlcv_1d``), their checks, the
``market_data_job``, the daily schedule and the instruments sensor, for each partition
profile (:func:`build_pipeline`; the module-level names are the default ``instrument``
profile). The definitions module
wires these lists into ``dg.Definitions`` together with the ``market_data_io_manager`` and
``market_data_source`` resources.
"""

from cb_storage_dagster.orchestration.assets import (
    ASSETS,
    MARKET_DATA_BACKFILL_POLICY,
    MARKET_DATA_PARTITIONS,
    MARKET_DATA_RETRY_POLICY,
    ohlcv_1d,
    ohlcv_1m,
    order_book,
    trades,
)
from cb_storage_dagster.orchestration.checks import ASSET_CHECKS
from cb_storage_dagster.orchestration.jobs import JOBS, market_data_job
from cb_storage_dagster.orchestration.profiles import MarketDataPipeline, build_pipeline, configured_profile
from cb_storage_dagster.orchestration.schedules import SCHEDULES, daily_market_data_schedule
from cb_storage_dagster.orchestration.sensors import (
    SENSORS,
    configured_instruments,
    instruments_sensor,
)
from cb_storage_dagster.sources.base import MarketDataSource
from cb_storage_dagster.sources.synthetic import SyntheticMarketDataSource

__all__ = [
    "ASSETS",
    "ASSET_CHECKS",
    "JOBS",
    "MARKET_DATA_BACKFILL_POLICY",
    "MARKET_DATA_PARTITIONS",
    "MARKET_DATA_RETRY_POLICY",
    "MarketDataPipeline",
    "SCHEDULES",
    "SENSORS",
    "MarketDataSource",
    "SyntheticMarketDataSource",
    "build_pipeline",
    "configured_instruments",
    "configured_profile",
    "daily_market_data_schedule",
    "instruments_sensor",
    "market_data_job",
    "ohlcv_1d",
    "ohlcv_1m",
    "order_book",
    "trades",
]
