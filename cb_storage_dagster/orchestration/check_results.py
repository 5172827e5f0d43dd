"""The results of the market-data asset checks: the measures of :mod:`.quality` summed over a
run's frame, or over its chunks one at a time, as ``dg.AssetCheckResult`` with violation counts
and the first offending rows (:mod:`.checks` defines the checks that return them)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from cb_storage_dagster.domain.chunks import MarketDataChunks
from cb_storage_dagster.domain.keys import DataType, PartitionSlot
from cb_storage_dagster.orchestration.quality import (
    instrument_day_counts,
    rule_columns,
    table_violation_masks,
    violation_counts,
)

__all__ = ["every_partition_result", "rules_result"]

_SAMPLE_ROWS = 5
KEY_COLUMNS = ["exchange", "coin", "timestamp"]
"""What the per-instrument-day counts read."""


def _offending_rows_table(table: pa.Table, masks: Mapping[str, np.ndarray]) -> str:
    """A Markdown table of the first offending rows, with the rules each one breaks."""
    offending = np.zeros(table.num_rows, dtype=bool)
    for mask in masks.values():
        offending |= mask
    positions = np.flatnonzero(offending)[:_SAMPLE_ROWS]
    sample = table.take(pa.array(positions, pa.int64())).to_pandas()
    broken = [", ".join(name for name, mask in masks.items() if mask[position]) for position in positions]
    columns = ["broken_rules", *(str(c) for c in sample.columns)]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for rules, (_, row) in zip(broken, sample.iterrows(), strict=True):
        lines.append("| " + " | ".join([rules, *(str(v) for v in row.tolist())]) + " |")
    return "\n".join(lines)


def _tables(data: pd.DataFrame | MarketDataChunks, columns: list[str]) -> Iterator[pa.Table]:
    """The run's rows as Arrow tables of ``columns``: each chunk of a chunked run (read with
    only those columns, one at a time), or the run's frame."""
    if isinstance(data, MarketDataChunks):
        yield from data.select(columns)
    elif len(data):
        yield pa.Table.from_pandas(data[columns], preserve_index=False, nthreads=1)  # KeyError names a missing column


def rules_result(
    data: pd.DataFrame | MarketDataChunks,
    data_type: DataType,
    slots: Sequence[PartitionSlot],
    *,
    interval: str | None = None,
) -> dg.AssetCheckResult:
    """Rows of the run breaking each row rule of ``data_type`` (:mod:`.quality`), rows outside
    ``slots`` and (with ``interval``) off its boundaries, counted in Arrow chunk by chunk,
    with the run's first offending rows."""
    counts = dict.fromkeys(table_violation_masks(None, data_type, slots, interval=interval), 0)
    rows = 0
    sample: str | None = None
    for table in _tables(data, rule_columns(data_type, slots, interval=interval)):
        masks = table_violation_masks(table, data_type, slots, interval=interval)
        found = violation_counts(masks)
        for name, n in found.items():
            counts[name] += n
        rows += table.num_rows
        if sample is None and any(found.values()):
            sample = _offending_rows_table(table, masks)  # the first offending rows of the run
    broken = {name: n for name, n in counts.items() if n}
    metadata: dict[str, object] = {"rows_checked": rows, **counts}
    if broken and sample is not None:
        metadata["first_offending_rows"] = dg.MetadataValue.md(sample)
    return dg.AssetCheckResult(
        passed=not broken,
        metadata=metadata,
        description=(
            "; ".join(f"{n} row(s) {name.replace('_', ' ')}" for name, n in broken.items())
            if broken
            else f"All {rows} rows pass."
        ),
    )


def every_partition_result(
    data: pd.DataFrame | MarketDataChunks, slots: list[PartitionSlot]
) -> dg.AssetCheckResult:
    rows = dict.fromkeys(sorted(set(slots)), 0)
    # Counted in Arrow, chunk by chunk, reading only the key columns (no pandas frame: a day
    # of 2,000 instruments took 8 s).
    for chunk in (data.select(KEY_COLUMNS) if isinstance(data, MarketDataChunks) else [data]):
        for (exchange, coin, day), n in instrument_day_counts(chunk, gaps=False)[0].items():
            slot = PartitionSlot(exchange, coin, day)
            if slot in rows:
                rows[slot] += n
    empty = [str(slot) for slot, n in rows.items() if n == 0]
    return dg.AssetCheckResult(
        passed=not empty,
        metadata={
            "partitions_checked": len(rows),
            "partitions_without_rows": len(empty),
            "empty_partitions": empty[:20],
            "min_rows_per_partition": min(rows.values(), default=0),
        },
        description=(
            f"No rows for {len(empty)} of {len(rows)} partition(s): {', '.join(empty[:5])}"
            if empty
            else f"All {len(rows)} partition(s) have rows."
        ),
    )
