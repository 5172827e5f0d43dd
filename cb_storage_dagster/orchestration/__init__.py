"""The market-data pipeline: what a Dagster user sees.

Assets (``trades``, ``order_book`` -> ``ohlcv_1m`` -> ``ohlcv_1d``), their checks, the
``market_data_job`` with the intraday and snapshot jobs, the daily, intraday and order-book
snapshot schedules, and (``instrument`` profile) the instruments sensor, built for one
partition profile by :func:`build_pipeline`; nothing is defined at module level. The
definitions module wires a pipeline into ``dg.Definitions`` together with the
``market_data_io_manager`` and ``market_data_source`` resources.

Example:
    >>> pipeline = build_pipeline("instrument")
    >>> [a.key.to_user_string() for a in pipeline.assets.all]
    ['trades', 'order_book', 'ohlcv_1m', 'ohlcv_1d']
"""

from cb_storage_dagster.orchestration.assets import MARKET_DATA_RETRY_POLICY
from cb_storage_dagster.orchestration.profiles import (
    MarketDataPipeline,
    backfill_policy_of,
    build_pipeline,
    configured_profile,
)
from cb_storage_dagster.orchestration.sensors import configured_instruments
from cb_storage_dagster.sources.base import MarketDataSource
from cb_storage_dagster.sources.synthetic import SyntheticMarketDataSource

__all__ = [
    "MARKET_DATA_RETRY_POLICY",
    "MarketDataPipeline",
    "MarketDataSource",
    "SyntheticMarketDataSource",
    "backfill_policy_of",
    "build_pipeline",
    "configured_instruments",
    "configured_profile",
]
