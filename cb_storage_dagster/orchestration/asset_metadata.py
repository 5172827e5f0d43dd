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
from collections.abc import Mapping, Sequence

import dagster as dg
import pandas as pd

from cb_storage_dagster.domain.chunks import InstrumentFailure
from cb_storage_dagster.domain.keys import PartitionSlot

__all__ = ["FAILED_INSTRUMENTS", "METADATA_TABLE_ROWS", "failure_metadata", "per_instrument_metadata", "per_instrument_metadata_of_counts"]

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
    """The output metadata of a run's frame: its instrument-days, those without rows, and a
    table of rows (and, with ``gaps``, minutes without a candle) per instrument-day."""
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
    }


def per_instrument_metadata_of_counts(
    rows_per_slot: Mapping[str, int], slots: Sequence[PartitionSlot]
) -> dict[str, object]:
    """:func:`per_instrument_metadata` of a chunked output, from the writer's exact
    ``exchange/coin/date`` row counts (the asset never held the whole run to count them)."""
    empty = [s for s in slots if not rows_per_slot.get(str(s))]
    records = [
        dg.TableRecord({"instrument": f"{s.exchange}:{s.coin}", "date": s.date.isoformat(),
                        "rows": int(rows_per_slot.get(str(s), 0))})
        for s in slots[:METADATA_TABLE_ROWS]
    ]
    schema = dg.TableSchema(columns=[dg.TableColumn("instrument", "string"), dg.TableColumn("date", "string"),
                                     dg.TableColumn("rows", "int")])
    return {
        "instrument_days": len(slots),
        "instrument_days_without_rows": len(empty),
        "without_rows": [str(s) for s in empty[:20]],
        "rows_per_instrument_day": dg.MetadataValue.table(records, schema=schema),
    }


FAILED_INSTRUMENTS = "failed_instruments"
"""Output metadata key: the instrument-days a run left out (read by the ``instruments_stored`` check)."""


def failure_metadata(failures: Sequence[InstrumentFailure]) -> dict[str, object]:
    """What a run reports about the instrument-days it left out (at most
    :data:`METADATA_TABLE_ROWS` listed; the count covers them all)."""
    return {
        "failed_instrument_count": len(failures),
        FAILED_INSTRUMENTS: dg.MetadataValue.json([f.as_record() for f in failures[:METADATA_TABLE_ROWS]]),
    }
