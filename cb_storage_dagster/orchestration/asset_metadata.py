"""What a market-data asset reports about its run's frame, per instrument-day.

The counts cover the whole run; the UI table lists at most :data:`METADATA_TABLE_ROWS`
instrument-days.

Example:
    >>> import datetime as dt, pandas as pd
    >>> slots = [PartitionSlot("binance", "BTC", dt.date(2024, 1, 2))]
    >>> per_instrument_metadata(pd.DataFrame(columns=["exchange", "coin", "timestamp"]), slots)["without_rows"]
    ['binance/BTC/2024-01-02']
"""

import datetime as dt
from collections.abc import Sequence

import dagster as dg
import pandas as pd

from cb_storage_dagster.domain.keys import PartitionSlot
from cb_storage_dagster.orchestration.coverage_metadata import run_coverage_metadata

__all__ = ["METADATA_TABLE_ROWS", "per_instrument_metadata"]

_MINUTES_PER_DAY = 1440
METADATA_TABLE_ROWS = 2000
"""Per-instrument metadata tables list at most this many instrument-days (one exchange-day
of a 2,000-instrument exchange); the counts above them always cover the whole run."""


def _rows_table(frame: pd.DataFrame, slots: Sequence[PartitionSlot], *, gaps: bool) -> dg.MetadataValue:
    """A UI table: one row per instrument-day of the run with its rows (and gap minutes)."""
    if frame.empty:
        rows: dict[tuple[str, str, dt.date], int] = {}
        minutes: dict[tuple[str, str, dt.date], int] = {}
    else:
        timestamps = pd.to_datetime(frame["timestamp"], utc=True)
        keys = [frame["exchange"], frame["coin"], timestamps.dt.date]
        rows = frame.groupby(keys).size().to_dict()
        minutes = timestamps.dt.floor("min").groupby(keys).nunique().to_dict() if gaps else {}
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
            record["gap_minutes"] = _MINUTES_PER_DAY - int(minutes.get(key, 0))
        records.append(dg.TableRecord(record))
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))


def per_instrument_metadata(
    frame: pd.DataFrame, slots: Sequence[PartitionSlot], *, gaps: bool = False
) -> dict[str, object]:
    """The output metadata of a run's frame: its instrument-days, those without rows, a
    table of rows (and, with ``gaps``, minutes without a candle) per instrument-day, and the
    ``coverage`` Markdown (complete / partial / missing instruments per exchange-day; with
    ``gaps`` a complete day has all 1440 one-minute candles)."""
    if frame.empty:
        filled: set[tuple[str, str, dt.date]] = set()
    else:
        # de-duplicate in pandas first: millions of rows, a few thousand instrument-days
        present = pd.DataFrame({
            "exchange": frame["exchange"], "coin": frame["coin"],
            "day": pd.to_datetime(frame["timestamp"], utc=True).dt.date,
        }).drop_duplicates()
        filled = set(zip(present["exchange"], present["coin"], present["day"], strict=True))
    empty = [s for s in slots if (s.exchange, s.coin, s.date) not in filled]
    return {
        "instrument_days": len(slots),
        "instrument_days_without_rows": len(empty),
        "without_rows": [str(s) for s in empty[:20]],
        "rows_per_instrument_day": _rows_table(frame, slots, gaps=gaps),
        **run_coverage_metadata(frame, slots, per_day=_MINUTES_PER_DAY if gaps else None),
    }
