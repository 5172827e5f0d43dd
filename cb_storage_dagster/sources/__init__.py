"""Market-data sources (Dagster resources): where the pipeline's raw data comes from.

* :mod:`.base`: :class:`~cb_storage_dagster.sources.base.MarketDataSource`, the interface (one
  instrument and one UTC day per call, canonical columns);
* :mod:`.synthetic`: the deterministic synthetic source, the default (no network);
* :mod:`.ccxt`: real exchanges through ccxt;
* :mod:`.selection`: which source the definitions use, chosen by ``CB_STORAGE_SOURCE``.
"""
