"""A DuckDB connection with the product's Delta tables registered as views (extra ``[query]``).

Example (with ``CB_STORAGE_*`` set as for ``make run``)::

    from cb_storage_dagster.query.duckdb import connect

    con = connect()                      # StorageConfig.load(); or connect(config / manager / backend)
    con.sql(
        "SELECT time_bucket(INTERVAL 1 HOUR, timestamp) AS hour, first(open ORDER BY timestamp) AS open, "
        "max(high) AS high, min(low) AS low, last(close ORDER BY timestamp) AS close, sum(volume) AS volume "
        "FROM ohlcv_1m WHERE exchange = 'binance' AND coin = 'BTC' AND date = DATE '2024-01-02' "
        "GROUP BY hour ORDER BY hour").fetchall()

Each Delta table under the storage root (``ohlcv_1m``, ``trades``, ...) becomes a view
``SELECT * FROM delta_scan('<table URL>')`` with every column the table stores (``exchange``,
``coin``, ``timestamp``, values, ``date`` and the partition column ``month``). Filters on
``exchange``/``coin``/``month`` prune partitions, on ``date``/``timestamp`` skip files by their
statistics. A view reads the table's latest version each time it is queried.

The ``delta`` extension is loaded from the ``duckdb-extension-delta`` wheel by path (a plain
``LOAD delta`` would try to download it), and for Azure the ``azure`` extension from
``duckdb-extension-azure``; extension auto-install stays off. Azure credentials come from the
same settings as the product's (:mod:`.azure_secret`).

Parquet/JSON tables (the other formats) are not registered: query their files with
``read_parquet`` / ``read_json``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cb_storage_dagster.domain.errors import ConfigurationError, NotFoundError
from cb_storage_dagster.storage.backends.azure.backend import AzureBlobBackend
from cb_storage_dagster.storage.maintenance.discovery import find_delta_tables

if TYPE_CHECKING:
    import duckdb

    from cb_storage_dagster.settings import StorageConfig
    from cb_storage_dagster.storage.interfaces import IStorageBackend
    from cb_storage_dagster.storage.manager import StorageManagerImpl

__all__ = ["connect", "extension_path", "register_tables", "view_name"]

_INSTALL_HINT = "install the optional extra: pip install 'cb-storage-dagster[query]'"


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ConfigurationError(f"SQL on the stored tables needs the Python package of {module!r}: "
                                 f"{_INSTALL_HINT}.") from error


def extension_path(name: str) -> Path:
    """The ``<name>.duckdb_extension`` file of the ``duckdb-extension-<name>`` wheel that matches
    the installed DuckDB.

    Raises:
        ConfigurationError: the wheel is missing or built for another DuckDB release.
    """
    duckdb = _require("duckdb")
    package = _require(f"duckdb_extension_{name}")
    folder = Path(package.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    found = sorted(folder.glob(f"{name}.duckdb_extension"))
    if not found:
        raise ConfigurationError(
            f"duckdb-extension-{name} has no build for DuckDB {duckdb.__version__} (expected {folder}): "
            f"install the versions pinned together in the extra: pip install 'cb-storage-dagster[query]'.")
    return found[0]


def view_name(table: str) -> str:
    """The view of a table: its name, with ``/`` (a table in a sub-folder) as ``__``.

    >>> view_name("ohlcv_1m"), view_name("archive/ohlcv")
    ('ohlcv_1m', 'archive__ohlcv')
    """
    name = table.replace("/", "__")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ConfigurationError(f"Table name {table!r} cannot be a SQL view name: use letters, digits and '_'.")
    return name


def _table_url(backend: IStorageBackend, table: str) -> str:
    if isinstance(backend, AzureBlobBackend):
        from cb_storage_dagster.query.azure_secret import azure_table_url

        return azure_table_url(backend, table)
    return backend.get_uri_for_identifier(table)


def register_tables(
    con: duckdb.DuckDBPyConnection, backend: IStorageBackend, tables: Sequence[str] | None = None
) -> list[str]:
    """Create one view per Delta table of ``backend`` on ``con`` (extensions already loaded);
    ``tables`` limits them. Returns the view names.

    Raises:
        NotFoundError: a table in ``tables`` is not a Delta table of this storage.
    """
    found = find_delta_tables(backend)
    if tables is not None:
        missing = sorted(set(tables) - set(found))
        if missing:
            raise NotFoundError(f"No Delta table {missing} in {backend.describe()}: the tables there are "
                                f"{found or 'none'}. Write the table first, or pick one of those.")
        found = [table for table in found if table in set(tables)]
    views = []
    for table in found:
        view = view_name(table)
        url = _table_url(backend, table).replace("'", "''")
        con.execute(f'CREATE OR REPLACE VIEW "{view}" AS SELECT * FROM delta_scan(\'{url}\')')
        views.append(view)
    return views


def connect(
    source: StorageConfig | StorageManagerImpl | IStorageBackend | None = None,
    *,
    tables: Sequence[str] | None = None,
    database: str = ":memory:",
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the Delta tables of ``source`` as views (see the module).

    ``source`` is a :class:`StorageConfig` (``None``: ``StorageConfig.load()``, the
    ``CB_STORAGE_*`` settings), a storage manager or a backend; Azure ones lend DuckDB their
    credential as a secret of this connection only (in memory, never persisted).

    Raises:
        ConfigurationError: the ``[query]`` extra is not installed, or bad settings.
        NotFoundError: a table in ``tables`` does not exist.
    """
    duckdb = _require("duckdb")
    _require("pytz")  # DuckDB needs it to hand out TIMESTAMP WITH TIME ZONE values
    backend = _backend_of(source)
    con = duckdb.connect(database, config={"autoinstall_known_extensions": False,
                                           "autoload_known_extensions": False})
    try:
        if isinstance(backend, AzureBlobBackend):
            from cb_storage_dagster.query.azure_secret import azure_secret_sql

            con.execute(f"LOAD '{extension_path('azure')}'")
            con.execute(azure_secret_sql(backend))
        con.execute(f"LOAD '{extension_path('delta')}'")
        con.execute("SET TimeZone = 'UTC'")
        register_tables(con, backend, tables)
    except BaseException:
        con.close()
        raise
    return con


def _backend_of(source: Any) -> IStorageBackend:
    if source is None:
        from cb_storage_dagster.settings import StorageConfig

        source = StorageConfig.load()
    if hasattr(source, "build_backend"):
        return source.build_backend()
    return getattr(source, "backend", source)
