"""Exchange-independent parts of a real market-data source, in plain Python (no Dagster).

* :mod:`.symbols`: instrument keys (``binance:BTC``) to exchange symbols (``BTC/USDT``);
* :mod:`.paging`: a UTC day's candles and trades fetched page by page, de-duplicated at page edges;
* :mod:`.retry`: transient failures retried with backoff within a bounded budget;
* :mod:`.errors`: what a source raises, each error saying whether trying again may help;
* :mod:`.ccxt_client`: the one module that speaks ccxt.

The Dagster resource :class:`cb_storage_dagster.sources.ccxt.source.CcxtMarketDataSource` is a
thin adapter over these.
"""
