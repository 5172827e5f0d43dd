"""MarketDataIOManager: Dagster outputs and inputs as market-data tables.

It only translates Dagster contexts (asset key, partition keys, metadata, type annotation)
into storage calls; keys, paths, predicates and formats belong to the storage core.

Asset metadata it reads:
    ``data_type``: ``ohlcv`` | ``trades`` | ``order_book`` (default: inferred from the asset
    name, e.g. ``ohlcv_1m`` -> ``ohlcv``).
    ``format``: ``delta`` | ``parquet`` | ``json`` (default: the IO manager's ``default_format``).
    ``write_mode``: ``replace`` (default: a run's partitions hold exactly its rows) | ``merge``
    (upsert the rows by their natural key; Delta only). A run tag ``cb_storage/write_mode``
    overrides it for one run (the intraday and order-book snapshot schedules set it).
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

from cb_storage_dagster.domain.keys import DataType, decode_instrument, parse_date
from cb_storage_dagster.domain.results import WriteResult
from cb_storage_dagster.orchestration.dagster_internals import add_partition_metadata
from cb_storage_dagster.orchestration.failures import storage_failures
from cb_storage_dagster.orchestration.partitions import (
    DATE_DIMENSION,
    EXCHANGE_DIMENSION,
    INSTRUMENT_DIMENSION,
    decode_exchange_day_key,
    decode_multi_key,
    is_exchange_day_key,
)
from cb_storage_dagster.orchestration.resources import StorageBackendResource
from cb_storage_dagster.storage.manager import StorageManagerImpl
from cb_storage_dagster.storage.sql import WriteScope


class MarketDataIOManager(dg.ConfigurableIOManager):
    """Stores asset outputs with :class:`StorageManagerImpl` and loads them back in one scan.

    * ``date`` x ``instrument`` multi-partitions: a run replaces exactly its exchange/coin/day
      partitions (one partition, or a whole range in ONE commit);
    * ``date`` x ``exchange`` multi-partitions (the exchange profile): every instrument of
      the run's exchange-days, in ONE commit per table;
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
    max_commit_retries: int | None = None
    """delta-rs commit retries per attempt (``CB_STORAGE_MAX_COMMIT_RETRIES``; None: built-in)."""
    delta_layout: str = "instrument"
    """Delta layout of tables created from now on: ``instrument`` or ``exchange`` (thousands of
    instruments per exchange; see docs/LAYOUT.md). Existing tables keep theirs."""

    _manager: StorageManagerImpl | None = PrivateAttr(default=None)

    @property
    def manager(self) -> StorageManagerImpl:
        if self._manager is None:
            self._manager = StorageManagerImpl(
                self.storage.get_backend(), default_format=self.default_format,
                max_commit_retries=self.max_commit_retries,
                default_layout=self.delta_layout,  # type: ignore[arg-type]
            )
        return self._manager

    # -- outputs -------------------------------------------------------------------------
    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        with storage_failures(*_run_of(context)):  # bad data fails once, never retried
            self._store_output(context, obj)

    def _store_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            context.log.info("The asset returned None: nothing stored.")
            return
        metadata = context.definition_metadata or {}
        data_type = _data_type(metadata, context.asset_key)
        scope = _scope(context)
        mode = _write_mode(context, metadata)
        result = self.manager.write_partitions(
            data_type, obj, scope, format=metadata.get("format"), table=_table_name(context.asset_key),
            mode=mode,
        )
        if mode == "merge":
            context.add_output_metadata(_merge_metadata(result, partitioned=context.has_asset_partitions))
            return
        context.add_output_metadata(_output_metadata(result, partitioned=context.has_asset_partitions))
        if context.has_asset_partitions:
            _publish_partition_row_counts(context, result)

    # -- inputs --------------------------------------------------------------------------
    def load_input(self, context: dg.InputContext) -> Any:
        with storage_failures(*_run_of(context)):
            return self._load(context)

    def _load(self, context: dg.InputContext) -> Any:
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


def _run_of(context: dg.OutputContext | dg.InputContext) -> tuple[dg.DagsterInstance | None, str | None]:
    """The instance and run id of a context built by a run (``(None, None)`` for one built by hand)."""
    try:
        step_context = context.step_context
    except dg.DagsterInvariantViolationError:
        return None, None
    return step_context.instance, step_context.run_id


WRITE_MODE_TAG = "cb_storage/write_mode"
"""Run tag that makes every output of the run merge (``merge``) or replace (``replace``)."""


def _write_mode(context: dg.OutputContext, metadata: Mapping[str, Any]) -> str:
    """The run tag ``cb_storage/write_mode`` if set, else the asset's ``write_mode``."""
    mode = metadata.get("write_mode", "replace")
    try:
        tags: Mapping[str, str] = context.step_context.run_tags
    except dg.DagsterInvariantViolationError:  # a bare build_output_context() has no run
        tags = {}
    mode = tags.get(WRITE_MODE_TAG, mode)
    return str(getattr(mode, "value", mode))


def _merge_metadata(result: WriteResult, *, partitioned: bool) -> dict[str, Any]:
    """A merge upserts into partitions that may hold more rows: publish what it did, not a
    row count of the partition it does not know."""
    metadata = {
        k: v for k, v in _output_metadata(result, partitioned=partitioned).items()
        if k not in ("dagster/row_count", "run_row_count", "rows_per_partition")
    }
    metadata.update({
        "write_mode": "merge",
        "rows_merged": result.row_count,
        "rows_inserted": result.rows_inserted or 0,
        "rows_updated": result.rows_updated or 0,
        "rows_merged_per_partition": dg.MetadataValue.json(result.rows_per_partition),
    })
    return metadata


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
        if names == {DATE_DIMENSION, EXCHANGE_DIMENSION}:  # the exchange profile
            return WriteScope.of_exchange_days(decode_exchange_day_key(key) for key in keys)
        if names != {DATE_DIMENSION, INSTRUMENT_DIMENSION}:
            raise dg.Failure(
                f"MarketDataIOManager needs multi-partitions named {DATE_DIMENSION!r} and "
                f"{INSTRUMENT_DIMENSION!r} (or {EXCHANGE_DIMENSION!r}), got {sorted(names)}."
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


def _output_metadata(result: WriteResult, *, partitioned: bool) -> dict[str, Any]:
    """Metadata of the whole output; Dagster copies it onto every partition's materialization.

    So ``dagster/row_count`` (which the UI shows as "the partition's row count") is only
    published here for an unpartitioned output. A partitioned output reports the run's total
    as ``run_row_count`` and each partition's own count through
    :func:`_publish_partition_row_counts`.
    """
    metadata: dict[str, Any] = {
        "dagster/uri": dg.MetadataValue.path(result.uri),
        "format": result.format,
        "run_row_count" if partitioned else "dagster/row_count": result.row_count,
        "partitions_written": len(result.rows_per_partition),
        "rows_per_partition": dg.MetadataValue.json(result.rows_per_partition),
    }
    if result.version is not None:
        metadata["table_version"] = result.version
    if result.schema is not None:
        metadata["dagster/column_schema"] = _table_schema(result.schema)
    return metadata


def _publish_partition_row_counts(context: dg.OutputContext, result: WriteResult) -> None:
    """Give each Dagster partition of the output its own ``dagster/row_count``.

    An IO manager reaches the step's partition-scoped asset metadata through
    ``OutputContext.step_context`` (see :func:`add_partition_metadata`). Without a step context
    (an output context built by hand) nothing is published rather than a wrong figure:
    ``run_row_count`` and ``rows_per_partition`` remain.
    """
    try:
        step_context = context.step_context
    except dg.DagsterInvariantViolationError:
        context.log.debug("No step context: per-partition row counts are not published.")
        return
    counts = _rows_by_partition_key(context, result.rows_per_partition)
    add_partition_metadata(
        step_context, context.asset_key, {key: {"dagster/row_count": rows} for key, rows in counts.items()}
    )


def _rows_by_partition_key(
    context: dg.OutputContext, rows_per_slot: Mapping[str, int]
) -> dict[str, int]:
    """Rows written per Dagster partition key, from the writer's ``exchange/coin/date`` counts.

    A ``date|instrument`` key is one slot; a ``date|exchange`` key sums every coin of that
    exchange-day; a daily key sums every instrument of that day; an instrument key sums every
    day of that instrument.
    """
    partitions_def = context.asset_partitions_def
    keys: Sequence[str] = context.asset_partition_keys
    slots = [(slot.split("/"), rows) for slot, rows in rows_per_slot.items()]
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        if keys and is_exchange_day_key(keys[0]):
            exchange_days = {key: decode_exchange_day_key(key) for key in keys}
            totals: dict[tuple[str, str], int] = {}
            for parts, rows in slots:
                totals[(parts[0], parts[2])] = totals.get((parts[0], parts[2]), 0) + rows
            return {key: totals.get((e, d.isoformat()), 0) for key, (e, d) in exchange_days.items()}
        return {key: rows_per_slot.get(str(decode_multi_key(key)), 0) for key in keys}
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        days = {key: _day_of(key, partitions_def).isoformat() for key in keys}
        return {key: sum(rows for parts, rows in slots if parts[2] == day) for key, day in days.items()}
    instruments = {key: list(decode_instrument(key)) for key in keys}
    return {
        key: sum(rows for parts, rows in slots if parts[:2] == instrument)
        for key, instrument in instruments.items()
    }


def _table_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in schema if f.name != "month"]
    )


def _wants_arrow(context: dg.InputContext) -> bool:
    typing_type = getattr(context.dagster_type, "typing_type", None)
    return typing_type is pa.Table
