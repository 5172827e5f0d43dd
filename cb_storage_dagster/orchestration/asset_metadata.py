"""What a market-data asset reports about its run's frame, per instrument-day.

The counts cover the whole run; the UI table lists at most :data:`METADATA_TABLE_ROWS`
instrument-days.

Example:
    >>> import datetime as dt, pandas as pd
    >>> slots = [PartitionSlot("binance", "BTC", dt.date(2024, 1, 2))]
    >>> per_instrument_metadata(pd.DataFrame(columns=["exchange", "coin", "timestamp"]), slots)["without_rows"]
    ['binance/BTC/2024-01-02']
"""

from collections.abc import Sequence

import dagster as dg
import pandas as pd

from cb_storage_dagster.domain.chunks import InstrumentFailure
from cb_storage_dagster.domain.keys import PartitionSlot
from cb_storage_dagster.orchestration.coverage_metadata import run_coverage_metadata
from cb_storage_dagster.orchestration.quality import MINUTES_PER_DAY, Key, instrument_day_counts

__all__ = [
    "FAILED_INSTRUMENTS",
    "METADATA_TABLE_ROWS",
    "failure_metadata",
    "metadata_of_counts",
    "per_instrument_metadata",
]

METADATA_TABLE_ROWS = 2000
"""Per-instrument metadata tables list at most this many instrument-days (one exchange-day
of a 2,000-instrument exchange); the counts above them always cover the whole run."""


def metadata_of_counts(
    rows: dict[Key, int], minutes: dict[Key, int], slots: Sequence[PartitionSlot], *, gaps: bool
) -> dict[str, object]:
    """The output metadata of a run from its :func:`~.quality.instrument_day_counts`: its
    instrument-days, those without rows, and a table of rows (and, with ``gaps``, minutes
    without a candle) per instrument-day, and the ``coverage`` Markdown (complete / partial /
    missing instruments per exchange-day; with ``gaps`` a complete day has all 1440 candles)."""
    columns = [
        dg.TableColumn("instrument", "string"),
        dg.TableColumn("date", "string"),
        dg.TableColumn("rows", "int"),
    ]
    if gaps:
        columns.append(dg.TableColumn("gap_minutes", "int"))
    records = []
    for slot in slots[:METADATA_TABLE_ROWS]:
        key = (slot.exchange, slot.coin, slot.date)
        record: dict[str, str | int] = {
            "instrument": f"{slot.exchange}:{slot.coin}",
            "date": slot.date.isoformat(),
            "rows": int(rows.get(key, 0)),
        }
        if gaps:
            record["gap_minutes"] = MINUTES_PER_DAY - int(minutes.get(key, 0))
        records.append(dg.TableRecord(record))
    empty = [s for s in slots if not rows.get((s.exchange, s.coin, s.date))]
    return {
        "instrument_days": len(slots),
        "instrument_days_without_rows": len(empty),
        "without_rows": [str(s) for s in empty[:20]],
        "rows_per_instrument_day": dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns)),
        **run_coverage_metadata(minutes if gaps else rows, slots, per_day=MINUTES_PER_DAY if gaps else None),
    }


def per_instrument_metadata(
    frame: pd.DataFrame, slots: Sequence[PartitionSlot], *, gaps: bool = False
) -> dict[str, object]:
    """:func:`metadata_of_counts` of one frame holding the whole run."""
    rows, minutes = instrument_day_counts(frame, gaps=gaps)
    return metadata_of_counts(rows, minutes, slots, gaps=gaps)


FAILED_INSTRUMENTS = "failed_instruments"
"""Output metadata key: the instrument-days a run left out (read by the ``instruments_stored`` check)."""


def failure_metadata(failures: Sequence[InstrumentFailure]) -> dict[str, object]:
    """What a run reports about the instrument-days it left out (at most
    :data:`METADATA_TABLE_ROWS` listed; the count covers them all)."""
    return {
        "failed_instrument_count": len(failures),
        FAILED_INSTRUMENTS: dg.MetadataValue.json([f.as_record() for f in failures[:METADATA_TABLE_ROWS]]),
    }
