"""cb-storage-dagster: crypto market-data storage (Delta Lake, Parquet, JSON) for Dagster.

The storage core (:mod:`cb_storage_dagster.domain`, :mod:`cb_storage_dagster.storage`,
:mod:`cb_storage_dagster.settings`) has no Dagster import; the sources live in
:mod:`cb_storage_dagster.sources`, the Dagster assets, IO manager and resources in
:mod:`cb_storage_dagster.orchestration`, and the definitions in :mod:`cb_storage_dagster.definitions`. The public names are re-exported here.
"""

from cb_storage_dagster.storage.delta.backpressure import configure_delta_allocator

configure_delta_allocator()  # before delta-rs loads: its allocator reads the setting once

from cb_storage_dagster import storage as _storage  # noqa: E402

__version__ = "0.1.0"
__all__ = list(_storage.__all__)


def __getattr__(name: str):  # lazy: keeps the Azure SDK out of plain imports
    if name in __all__:
        return getattr(_storage, name)
    raise AttributeError(name)
