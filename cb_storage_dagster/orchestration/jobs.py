"""Jobs of the market-data pipeline."""

import dagster as dg

from cb_storage_dagster.orchestration.assets import ASSETS

__all__ = ["JOBS", "market_data_job"]

market_data_job = dg.define_asset_job(  # partitioned like its assets (date x instrument)
    name="market_data_job",
    selection=dg.AssetSelection.assets(*ASSETS),
    description=(
        "Fetches trades and order books of instrument-days and builds their 1-minute and "
        "daily candles; the asset checks of these assets run in the same run."
    ),
)
"""Materializes ``trades``, ``order_book``, ``ohlcv_1m`` and ``ohlcv_1d`` with their checks."""

JOBS = [market_data_job]
