"""Run tags that turn a market-data run into an intraday merge or an order-book snapshot.

A run of the market-data assets normally replaces whole UTC days. The intraday schedule tags
its runs with a time window (only the source's rows inside it are fetched) and the
order-book snapshot schedule with the instant of the snapshot; both also set the IO
manager's ``cb_storage/write_mode=merge`` tag, so each run upserts into the day instead of
replacing it. Only this module writes or reads these tags.

Example:
    >>> import datetime as dt
    >>> end = dt.datetime(2024, 1, 2, 12, 15, tzinfo=dt.UTC)
    >>> tags = window_tags(end - dt.timedelta(minutes=30), end)
    >>> run_window(tags) == (end - dt.timedelta(minutes=30), end)
    True
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from cb_storage_dagster.orchestration.io_manager import WRITE_MODE_TAG

__all__ = [
    "SNAPSHOT_AT_TAG",
    "WINDOW_END_TAG",
    "WINDOW_START_TAG",
    "WRITE_MODE_TAG",
    "run_window",
    "snapshot_instant",
    "snapshot_tags",
    "window_tags",
]

WINDOW_START_TAG = "cb_storage/window_start"
WINDOW_END_TAG = "cb_storage/window_end"
SNAPSHOT_AT_TAG = "cb_storage/snapshot_at"


def _iso(moment: dt.datetime) -> str:
    return _utc(moment, "moment").isoformat()


def _utc(moment: dt.datetime, what: str) -> dt.datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} {moment!r} has no time zone; use an aware UTC datetime.")
    return moment.astimezone(dt.UTC)


def _parse(value: str, tag: str) -> dt.datetime:
    try:
        return _utc(dt.datetime.fromisoformat(value), f"Run tag {tag}")
    except ValueError:
        raise ValueError(
            f"Run tag {tag}={value!r} is not an ISO timestamp with a UTC offset "
            "(e.g. 2024-01-02T12:15:00+00:00)."
        ) from None


def window_tags(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    """Tags of an intraday run that merges the source's rows with ``start <= timestamp < end``."""
    if not _utc(start, "start") < _utc(end, "end"):
        raise ValueError(f"An intraday window needs start < end, got {start} .. {end}.")
    return {WRITE_MODE_TAG: "merge", WINDOW_START_TAG: _iso(start), WINDOW_END_TAG: _iso(end)}


def run_window(tags: Mapping[str, str]) -> tuple[dt.datetime, dt.datetime] | None:
    """The intraday window of a run, or ``None`` for a run that replaces whole days."""
    if WINDOW_START_TAG not in tags and WINDOW_END_TAG not in tags:
        return None
    if WINDOW_START_TAG not in tags or WINDOW_END_TAG not in tags:
        raise ValueError(f"An intraday run needs both {WINDOW_START_TAG} and {WINDOW_END_TAG}.")
    return _parse(tags[WINDOW_START_TAG], WINDOW_START_TAG), _parse(tags[WINDOW_END_TAG], WINDOW_END_TAG)


def snapshot_tags(at: dt.datetime) -> dict[str, str]:
    """Tags of a run that merges one order-book snapshot per instrument, stamped ``at``."""
    return {WRITE_MODE_TAG: "merge", SNAPSHOT_AT_TAG: _iso(at)}


def snapshot_instant(tags: Mapping[str, str]) -> dt.datetime | None:
    """The instant of an order-book snapshot run, or ``None`` for any other run."""
    value = tags.get(SNAPSHOT_AT_TAG)
    return None if value is None else _parse(value, SNAPSHOT_AT_TAG)
