"""SQL on the stored history, read by engines other than the product (optional extra ``[query]``).

:func:`cb_storage_dagster.query.duckdb.connect` opens a DuckDB connection in which every Delta
table of the product's storage (local disk, Azure or Azurite, with the same ``CB_STORAGE_*``
settings and credentials as :class:`~cb_storage_dagster.settings.StorageConfig`) is a view:

>>> from cb_storage_dagster.query.duckdb import connect      # doctest: +SKIP
>>> con = connect()                                         # doctest: +SKIP
>>> con.sql("SELECT coin, count(*) FROM ohlcv_1m GROUP BY coin").fetchall()   # doctest: +SKIP

Nothing here writes: the engines only read the tables the storage API wrote. No Dagster import.
"""
