"""MarketDataIOManager: Dagster outputs and inputs as market-data tables.

It only translates Dagster contexts (asset key, partition keys, metadata, type annotation)
into storage calls; keys, paths, predicates and formats belong to the storage core. The
partition keys become a scope in :mod:`~cb_storage_dagster.orchestration.run_scope`; what a
write publishes is built in :mod:`~cb_storage_dagster.orchestration.output_metadata`.

Asset metadata it reads:
    ``data_type``: ``ohlcv`` | ``trades`` | ``order_book`` (default: inferred from the asset
    name, e.g. ``ohlcv_1m`` -> ``ohlcv``).
    ``format``: ``delta`` | ``parquet`` | ``json`` (default: the IO manager's ``default_format``).
    ``write_mode``: ``replace`` (default: a run's partitions hold exactly its rows) | ``merge``
    (upsert the rows by their natural key; Delta only). A run tag ``cb_storage/write_mode``
    overrides it for one run (the intraday and order-book snapshot schedules set it).
Input metadata (``dg.AssetIn(metadata=...)``):
    ``as_of_version``: read the upstream Delta table at that version (reproduce a past run).

Chunks (the ``exchange`` profile): an output of :class:`MarketDataChunks` is streamed into
its table in one commit, chunk by chunk, leaving its failed instrument-days out of the scope;
an input annotated ``MarketDataChunks`` is read lazily in blocks of ``chunk_instruments``
instruments x one day. Memory then follows the chunk size, not the run's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from cb_storage_dagster.domain.chunks import MarketDataChunks
from cb_storage_dagster.domain.keys import DataType
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.orchestration.failures import permanent_failures
from cb_storage_dagster.orchestration.frames import as_annotated, to_storable
from cb_storage_dagster.orchestration.output_metadata import (
    merge_metadata,
    output_metadata,
    publish_partition_row_counts,
)
from cb_storage_dagster.orchestration.resources import StorageBackendResource
from cb_storage_dagster.orchestration.run_scope import context_tags, repair_instruments, run_scope
from cb_storage_dagster.settings import PipelineSettings
from cb_storage_dagster.storage.manager import StorageManagerImpl


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
        >>> from cb_storage_dagster.orchestration.resources import LocalStorageResource
        >>> io_manager = MarketDataIOManager(storage=LocalStorageResource(root_path="data"))
        >>> io_manager.default_format, io_manager.delta_layout
        ('delta', 'instrument')
    """

    storage: StorageBackendResource
    default_format: str = "delta"
    max_commit_retries: int | None = None
    """delta-rs commit retries per attempt (``CB_STORAGE_MAX_COMMIT_RETRIES``; None: built-in)."""
    delta_layout: str = "instrument"
    """Delta layout of tables created from now on: ``instrument`` or ``exchange`` (thousands of
    instruments per exchange; see docs/LAYOUT.md). Existing tables keep theirs."""
    chunk_instruments: int | None = None
    """Instruments per chunk of a chunked input (None: ``CB_STORAGE_CHUNK_INSTRUMENTS``)."""
    checkpoint_interval: int | None = None
    """Commits between Delta checkpoints (``CB_STORAGE_CHECKPOINT_INTERVAL``; None: its default, 20)."""

    _manager: StorageManagerImpl | None = PrivateAttr(default=None)

    @property
    def manager(self) -> StorageManagerImpl:
        if self._manager is None:
            self._manager = StorageManagerImpl(
                self.storage.get_backend(), default_format=self.default_format,
                max_commit_retries=self.max_commit_retries,
                default_layout=self.delta_layout,  # type: ignore[arg-type]
                checkpoint_interval=self.checkpoint_interval,
            )
        return self._manager

    # -- outputs -------------------------------------------------------------------------
    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        try:
            with permanent_failures(*_run_of(context)):  # bad data fails once, never retried
                self._store_output(context, obj)
        finally:
            if isinstance(obj, MarketDataChunks):
                obj.close()  # its temporary file: downstream steps read the table, not it

    def _store_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            context.log.info("The asset returned None: nothing stored.")
            return
        metadata = context.definition_metadata or {}
        data_type = _data_type(metadata, context.asset_key)
        scope = run_scope(context)
        mode = _write_mode(context, metadata)
        result = self.manager.write_partitions(
            data_type, to_storable(obj), scope, format=metadata.get("format"), table=_table_name(context.asset_key),
            mode=mode,
        )
        if mode == "merge":
            context.add_output_metadata(merge_metadata(result, partitioned=context.has_asset_partitions))
            return
        context.add_output_metadata(output_metadata(result, partitioned=context.has_asset_partitions))
        chunks = obj if isinstance(obj, MarketDataChunks) else None
        if context.has_asset_partitions:
            if repair_instruments(context_tags(context)) is not None:
                # A repair run replaces a few instruments of each partition: its counts are
                # not the partitions' row counts, so none are published.
                context.add_output_metadata({"repaired_rows": result.row_count})
                return
            publish_partition_row_counts(context, result, failed=chunks.excluded if chunks else frozenset())

    # -- inputs --------------------------------------------------------------------------
    def load_input(self, context: dg.InputContext) -> Any:
        with permanent_failures(*_run_of(context)):
            return self._load(context)

    def _load(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        if upstream is None or upstream.asset_key is None:
            raise dg.Failure("MarketDataIOManager only loads asset inputs.")
        metadata = upstream.definition_metadata or {}
        data_type = _data_type(metadata, upstream.asset_key)
        table = _table_name(upstream.asset_key)
        scope = run_scope(context) if context.has_asset_partitions else None
        input_metadata = context.definition_metadata or {}
        version = input_metadata.get("as_of_version")
        if _wants_chunks(context):
            size = self.chunk_instruments or PipelineSettings.load().chunk_instruments
            context.log.info(f"Streaming {table!r} in chunks of {size} instruments x one day.")
            return self.manager.read_chunks(
                data_type, scope if scope is not None else WriteScope.everything(), table=table,
                chunk_instruments=size, as_of_version=int(version) if version is not None else None,
            )
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
        return as_annotated(data, getattr(context.dagster_type, "typing_type", None))


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



def _wants_chunks(context: dg.InputContext) -> bool:
    return getattr(context.dagster_type, "typing_type", None) is MarketDataChunks
