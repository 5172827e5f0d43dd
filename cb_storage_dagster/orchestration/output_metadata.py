"""What a write publishes in Dagster: the output metadata, and each partition's own row count.

Metadata tells the truth per partition or is not published: Dagster copies an output's
metadata onto the materialization of every partition of the run, so run-wide figures carry
run-wide names (``run_row_count``) and ``dagster/row_count`` is set per partition.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pyarrow as pa

from cb_storage_dagster.domain.keys import PartitionSlot
from cb_storage_dagster.domain.results import WriteResult
from cb_storage_dagster.domain.schemas import MONTH_COLUMN
from cb_storage_dagster.orchestration.dagster_internals import add_partition_metadata
from cb_storage_dagster.orchestration.run_scope import rows_by_partition_key

__all__ = ["ROWS_PER_PARTITION_LISTED", "merge_metadata", "output_metadata", "publish_partition_row_counts"]

ROWS_PER_PARTITION_LISTED = 2000
"""``rows_per_partition`` lists at most this many exchange/coin/days (a run of 31 exchange-days
x 2,000 instruments has 62,000, and Dagster copies the output metadata onto each partition's
materialization); ``partitions_written`` and each partition's ``dagster/row_count`` stay exact."""


def output_metadata(result: WriteResult, *, partitioned: bool) -> dict[str, Any]:
    """Metadata of the whole output; Dagster copies it onto every partition's materialization.

    So ``dagster/row_count`` (which the UI shows as "the partition's row count") is only
    published here for an unpartitioned output. A partitioned output reports the run's total
    as ``run_row_count`` and each partition's own count through
    :func:`publish_partition_row_counts`.
    """
    metadata: dict[str, Any] = {
        "dagster/uri": dg.MetadataValue.path(result.uri),
        "format": result.format,
        "run_row_count" if partitioned else "dagster/row_count": result.row_count,
        "partitions_written": len(result.rows_per_partition),
        "rows_per_partition": dg.MetadataValue.json(_listed(result.rows_per_partition)),
    }
    if len(result.rows_per_partition) > ROWS_PER_PARTITION_LISTED:
        metadata["rows_per_partition_listed"] = ROWS_PER_PARTITION_LISTED
    if result.version is not None:
        metadata["table_version"] = result.version
    if result.schema is not None:
        metadata["dagster/column_schema"] = _table_schema(result.schema)
    return metadata


def merge_metadata(result: WriteResult, *, partitioned: bool) -> dict[str, Any]:
    """A merge upserts into partitions that may hold more rows: publish what it did, not a
    row count of the partition it does not know."""
    metadata = {
        k: v for k, v in output_metadata(result, partitioned=partitioned).items()
        if k not in ("dagster/row_count", "run_row_count", "rows_per_partition")
    }
    metadata.update({
        "write_mode": "merge",
        "rows_merged": result.row_count,
        "rows_inserted": result.rows_inserted or 0,
        "rows_updated": result.rows_updated or 0,
        "rows_merged_per_partition": dg.MetadataValue.json(_listed(result.rows_per_partition)),
    })
    return metadata


def publish_partition_row_counts(
    context: dg.OutputContext, result: WriteResult, *, failed: frozenset[PartitionSlot] = frozenset()
) -> None:
    """Give each Dagster partition of the output its own ``dagster/row_count``.

    A partition holding a ``failed`` instrument-day (left as stored, see
    :meth:`WriteScope.excluding`) gets none: the write does not know how many rows it kept.

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
    counts = rows_by_partition_key(context, result.rows_per_partition)
    if failed:
        partial = rows_by_partition_key(context, {str(slot): 1 for slot in failed})
        counts = {key: rows for key, rows in counts.items() if not partial.get(key)}
    add_partition_metadata(
        step_context, context.asset_key, {key: {"dagster/row_count": rows} for key, rows in counts.items()}
    )


def _listed(rows_per_partition: dict[str, int]) -> dict[str, int]:
    return dict(list(rows_per_partition.items())[:ROWS_PER_PARTITION_LISTED])


def _table_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in schema if f.name != MONTH_COLUMN]
    )
