"""The results of the market-data asset checks: the measures of :mod:`.quality` summed over a
run's frame, or over its chunks one at a time, as ``dg.AssetCheckResult`` with violation counts
and the first offending rows (:mod:`.checks` defines the checks that return them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import dagster as dg
import pandas as pd

from cb_storage_dagster.domain.chunks import MarketDataChunks
from cb_storage_dagster.domain.keys import PartitionSlot
from cb_storage_dagster.orchestration.quality import instrument_day_counts, violation_counts

__all__ = ["every_partition_result", "rules_result"]

_SAMPLE_ROWS = 5


def _offending_rows_table(frame: pd.DataFrame, masks: Mapping[str, pd.Series]) -> str:
    """A Markdown table of the first offending rows, with the rules each one breaks."""
    offending = pd.Series(False, index=frame.index)
    for mask in masks.values():
        offending |= mask
    sample = frame.loc[offending].head(_SAMPLE_ROWS)
    broken = [
        ", ".join(name for name, mask in masks.items() if mask.loc[index])
        for index in sample.index
    ]
    columns = ["broken_rules", *(str(c) for c in sample.columns)]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for rules, (_, row) in zip(broken, sample.iterrows(), strict=True):
        lines.append("| " + " | ".join([rules, *(str(v) for v in row.tolist())]) + " |")
    return "\n".join(lines)


def _frames(data: pd.DataFrame | MarketDataChunks) -> Iterator[pd.DataFrame]:
    """The frame of a run, or each chunk of a chunked run as a frame (one at a time)."""
    if isinstance(data, MarketDataChunks):
        for chunk in data:
            yield chunk.to_pandas()
    else:
        yield data


def rules_result(
    data: pd.DataFrame | MarketDataChunks, masks_of: Callable[[pd.DataFrame], Mapping[str, pd.Series]]
) -> dg.AssetCheckResult:
    counts: dict[str, int] = {}
    rows = 0
    sample: str | None = None
    for frame in _frames(data):
        masks = masks_of(frame)
        for name, n in violation_counts(masks).items():
            counts[name] = counts.get(name, 0) + n
        rows += len(frame)
        if sample is None and any(violation_counts(masks).values()):
            sample = _offending_rows_table(frame, masks)  # the first offending rows of the run
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
    # Counted in Arrow, chunk by chunk (no pandas frame: a day of 2,000 instruments took 8 s).
    for chunk in (data if isinstance(data, MarketDataChunks) else [data]):
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
