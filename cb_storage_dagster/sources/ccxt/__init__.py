"""Real exchanges through ccxt: exchange-independent parts in plain Python, one Dagster adapter.

* :mod:`.symbols`: instrument keys (``binance:BTC``) to exchange symbols (``BTC/USDT``);
* :mod:`.paging`: a UTC day's candles and trades fetched page by page, de-duplicated at page edges;
* :mod:`.day`: a whole UTC day of one instrument as canonical frames, impossible days refused;
* :mod:`.client`: the one module that speaks ccxt, with the ccxt-specific half of retrying
  (which ccxt failures are transient, the ``Retry-After`` hint) on top of the project's one
  backoff loop (:mod:`cb_storage_dagster.retry`);
* :mod:`.source`: the Dagster resource
  :class:`~cb_storage_dagster.sources.ccxt.source.CcxtMarketDataSource`, a thin adapter over these.

What a source raises (``SourceError`` and its subclasses, each saying whether trying again may
help) lives with the project's other errors in :mod:`cb_storage_dagster.domain.errors`.
"""
