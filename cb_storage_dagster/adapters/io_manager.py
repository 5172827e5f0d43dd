"""MarketDataIOManager: Dagster outputs and inputs as market-data tables.

It only translates Dagster contexts (asset key, partition keys, metadata, type annotation)
into storage calls; keys, paths, predicates and formats belong to the storage core.

Asset metadata it reads:
    ``data_type``: ``ohlcv`` | ``trades`` | ``order_book`` (default: inferred from the asset
    name, e.g. ``ohlcv_1m`` -> ``ohlcv``).
    ``format``: ``delta`` | ``parquet`` | ``json`` (default: the IO manager's ``default_format``).
Input metadata (``dg.AssetIn(metadata=...)``):
    ``as_of_version``: read the upstream Delta table at that version (reproduce a past run).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import pyarrow as pa
from pydantic import PrivateAttr

from cb_storage_dagster.storage.keys import DataType, parse_date
from cb_storage_dagster.storage.manager import StorageManagerImpl
from cb_storage_dagster.storage.predicates import WriteScope
from cb_storage_dagster.storage.results import WriteResult

from .partitions import DATE_DIMENSION, INSTRUMENT_DIMENSION, decode_instrument, decode_multi_key
from .resources import StorageBackendResource


class MarketDataIOManager(dg.ConfigurableIOManager):
    """Stores asset outputs with :class:`StorageManagerImpl` and loads them back in one scan.

    * ``date`` x ``instrument`` multi-partitions: a run replaces exactly its exchange/coin/day
      partitions (one partition, or a whole range in ONE commit);
    * daily-only partitions: the run's days for every instrument (exchange/coin from the data);
    * instrument-only partitions (static or dynamic ``<exchange>:<coin>`` keys): every day of
      the run's instruments;
    * unpartitioned assets: the whole table.

    Rows outside the run's partitions are refused before anything is written; a partition
    for which the asset returned no rows ends up empty. Each asset has its own table, named
    after its full asset key (``ohlcv_1m``, ``prefix/ohlcv_1m``).

    Example:
        >>> defs = dg.Definitions(  # doctest: +SKIP
        ...     assets=[ohlcv_1m],
        ...     resources={"market_data_io_manager": MarketDataIOManager(
        ...         storage=LocalStorageResource(root_path="data"))})
    """

    storage: StorageBackendResource
    default_format: str = "delta"
    delta_layout: str = "instrument"
    """Delta layout of tables created from now on: ``instrument`` or ``exchange`` (thousands of
    instruments per exchange; see docs/LAYOUT.md). Existing tables keep theirs."""

    _manager: StorageManagerImpl | None = PrivateAttr(default=None)

    @property
    def manager(self) -> StorageManagerImpl:
        if self._manager is None:
            self._manager = StorageManagerImpl(
                self.storage.get_backend(), default_format=self.default_format,
                default_layout=self.delta_layout,  # type: ignore[arg-type]
            )
        return self._manager

    # -- outputs -------------------------------------------------------------------------
    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            context.log.info("The asset returned None: nothing stored.")
            return
        metadata = context.definition_metadata or {}
        data_type = _data_type(metadata, context.asset_key)
        scope = _scope(context)
        result = self.manager.write_partitions(
            data_type, obj, scope, format=metadata.get("format"), table=_table_name(context.asset_key),
        )
        context.add_output_metadata(_output_metadata(result))

    # -- inputs --------------------------------------------------------------------------
    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        if upstream is None or upstream.asset_key is None:
            raise dg.Failure("MarketDataIOManager only loads asset inputs.")
        metadata = upstream.definition_metadata or {}
        data_type = _data_type(metadata, upstream.asset_key)
        table = _table_name(upstream.asset_key)
        scope = _scope(context) if context.has_asset_partitions else None
        input_metadata = context.definition_metadata or {}
        version = input_metadata.get("as_of_version")
        data = self.manager.read_partitions(
            data_type, scope, table=table,
            as_of_version=int(version) if version is not None else None,
        )
        read_version = (
            version if version is not None
            else self.manager.table_version(data_type, table=table, refresh=False)
        )
        info: dict[str, Any] = {"rows_loaded": data.num_rows}
        if read_version is not None:
            info["table_version"] = int(read_version)
        if not context.has_asset_partitions or len(context.asset_partition_keys) == 1:
            context.add_input_metadata(info)  # an observation in the UI
        else:  # Dagster attaches input observations to one partition only
            context.log.info(f"Loaded {table!r} for {len(context.asset_partition_keys)} partitions: {info}")
        if _wants_arrow(context):
            return data
        return data.to_pandas()


def _table_name(asset_key: dg.AssetKey) -> str:
    return "/".join(asset_key.path)


def _data_type(metadata: Mapping[str, Any], asset_key: dg.AssetKey) -> DataType:
    declared = metadata.get("data_type")
    if declared is not None:
        return DataType.parse(getattr(declared, "value", declared))
    name = asset_key.path[-1]
    for candidate in DataType:
        if name == candidate.value or name.startswith(f"{candidate.value}_"):
            return candidate
    raise dg.Failure(
        f"Cannot tell the data type of asset {asset_key.to_user_string()!r}: add "
        "metadata={'data_type': 'ohlcv' | 'trades' | 'order_book'} to the asset."
    )


def _scope(context: dg.OutputContext | dg.InputContext) -> WriteScope:
    """The exchange/coin/day partitions a run (or an input) covers."""
    if not context.has_asset_partitions:
        return WriteScope.everything()
    keys: Sequence[str] = context.asset_partition_keys
    partitions_def = context.asset_partitions_def
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        names = {d.name for d in partitions_def.partitions_defs}
        if names != {DATE_DIMENSION, INSTRUMENT_DIMENSION}:
            raise dg.Failure(
                f"MarketDataIOManager needs multi-partitions named {DATE_DIMENSION!r} and "
                f"{INSTRUMENT_DIMENSION!r}, got {sorted(names)}."
            )
        return WriteScope.of_slots(decode_multi_key(key) for key in keys)
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return WriteScope.of_days(_day_of(key, partitions_def) for key in keys)
    return WriteScope.of_instruments(decode_instrument(key) for key in keys)


def _day_of(key: str, partitions_def: dg.TimeWindowPartitionsDefinition) -> dt.date:
    window = partitions_def.time_window_for_partition_key(key)
    if window.end - window.start != dt.timedelta(days=1):
        raise dg.Failure("MarketDataIOManager supports daily time partitions only.")
    return parse_date(window.start.date())


def _output_metadata(result: WriteResult) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "dagster/uri": dg.MetadataValue.path(result.uri),
        "format": result.format,
        "dagster/row_count": result.row_count,
        "partitions_written": len(result.rows_per_partition),
        "rows_per_partition": dg.MetadataValue.json(result.rows_per_partition),
    }
    if result.version is not None:
        metadata["table_version"] = result.version
    if result.schema is not None:
        metadata["dagster/column_schema"] = _table_schema(result.schema)
    return metadata


def _table_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in schema if f.name != "month"]
    )


def _wants_arrow(context: dg.InputContext) -> bool:
    typing_type = getattr(context.dagster_type, "typing_type", None)
    return typing_type is pa.Table
