"""The coverage picture of a run as a Markdown metadata value (``coverage``), so that the
per-instrument status of an exchange-day partition is visible in the UI, where the exchange
profile's partition grid shows one square per exchange-day.

The figures come from :mod:`cb_storage_dagster.storage.coverage` (no Dagster there), the same
classification ``cb-storage coverage`` prints: complete, partial (fewer intervals than a day
has) and missing instruments per exchange x day. Like every run-wide figure, the value covers
the whole run and Dagster copies it onto each partition of the run.

Example:
    >>> import datetime as dt, pandas as pd
    >>> from cb_storage_dagster.storage.coverage import coverage_of_rows
    >>> slots = [PartitionSlot("binance", "BTC", dt.date(2024, 1, 2)), PartitionSlot("binance", "ETH", dt.date(2024, 1, 2))]
    >>> frame = pd.DataFrame({"exchange": ["binance"], "coin": ["BTC"],
    ...     "timestamp": pd.to_datetime(["2024-01-02 00:00"], utc=True)})
    >>> print(coverage_markdown(coverage_of_rows(frame, slots, per_day=1440)))
    **Coverage of this run**: 0 complete, 1 partial, 1 missing of 2 instrument-days (a complete day has 1440 intervals)
    <BLANKLINE>
    | exchange | date | complete | partial | missing | not complete |
    | --- | --- | --- | --- | --- | --- |
    | binance | 2024-01-02 | 0 | 1 | 1 | BTC (partial 1/1440), ETH (missing) |
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import dagster as dg

from cb_storage_dagster.domain.keys import PartitionSlot
from cb_storage_dagster.storage.coverage import CoverageReport, coverage_of_counts

__all__ = ["COVERAGE_ROWS", "coverage_markdown", "run_coverage_metadata"]

COVERAGE_ROWS = 200
"""Exchange-days listed at most (the totals in the heading always cover the whole run)."""
_NAMED = 20
"""Instruments named per exchange-day; the rest are counted."""


def coverage_markdown(report: CoverageReport) -> str:
    """The report as a heading with totals and one table row per exchange-day."""
    totals = report.totals()
    cadence = (
        f"a complete day has {report.per_day} intervals" if report.per_day else "any row makes a day complete"
    )
    lines = [
        f"**Coverage of this run**: {totals['complete']} complete, {totals['partial']} partial, "
        f"{totals['missing']} missing of {sum(totals.values())} instrument-days ({cadence})",
        "",
        "| exchange | date | complete | partial | missing | not complete |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for day in report.days[:COVERAGE_ROWS]:
        lines.append(
            f"| {day.exchange} | {day.date.isoformat()} | {len(day.complete)} | {len(day.partial)} | "
            f"{len(day.missing)} | {day.describe_gaps(report.per_day, _NAMED)} |"
        )
    if len(report.days) > COVERAGE_ROWS:
        lines.append(f"\n{len(report.days) - COVERAGE_ROWS} more exchange-days not listed.")
    return "\n".join(lines)


def run_coverage_metadata(
    counts: Mapping[tuple[str, str, dt.date], int], slots: Sequence[PartitionSlot], *, per_day: int | None
) -> dict[str, object]:
    """``{"coverage": <Markdown>}`` for a run's instrument-days from their interval counts
    (distinct minutes with ``per_day=1440``, rows with ``None``)."""
    report = coverage_of_counts(dict(counts), slots, per_day=per_day)
    return {"coverage": dg.MetadataValue.md(coverage_markdown(report))}
