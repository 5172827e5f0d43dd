"""Time arguments, checked once: aware UTC instants, ``[start, end)`` ranges, their days.

Every time a caller passes reaches storage as an aware UTC ``datetime``; naive ones are
refused (:class:`~cb_storage_dagster.domain.errors.TimeRangeError`) instead of guessed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cb_storage_dagster.domain.errors import TimeRangeError


def utc(value: dt.datetime, what: str) -> dt.datetime:
    """An aware ``value`` in UTC; a naive one raises :class:`TimeRangeError`."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise TimeRangeError(
            f"{what} {value!r} has no time zone; pass an aware datetime, e.g. "
            "datetime(2024, 1, 2, tzinfo=timezone.utc)."
        )
    return value.astimezone(dt.timezone.utc)


def utc_instant(value: Any, what: str) -> dt.datetime:
    """Accept aware datetimes, pandas Timestamps and ISO strings with an offset; return UTC.

    >>> utc_instant("2024-01-02T01:00:00+01:00", "start_time")
    datetime.datetime(2024, 1, 2, 0, 0, tzinfo=datetime.timezone.utc)
    """
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise TimeRangeError(f"{what} {value!r} is not an ISO timestamp.") from None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return utc(value, what)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    raise TimeRangeError(f"{what} must be a timezone-aware datetime, got {type(value).__name__}.")


def time_range(start_time: Any, end_time: Any) -> tuple[dt.datetime, dt.datetime]:
    """``[start_time, end_time)`` in UTC; an end before the start raises :class:`TimeRangeError`."""
    start = utc_instant(start_time, "start_time")
    end = utc_instant(end_time, "end_time")
    if end < start:
        raise TimeRangeError(f"end_time {end.isoformat()} is before start_time {start.isoformat()}.")
    return start, end


def days_in_range(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    """UTC days touched by ``[start, end)``.

    >>> UTC = dt.timezone.utc
    >>> days_in_range(dt.datetime(2024, 1, 2, 12, tzinfo=UTC), dt.datetime(2024, 1, 3, tzinfo=UTC))
    [datetime.date(2024, 1, 2)]
    """
    if end <= start:
        return []
    last = (end - dt.timedelta(microseconds=1)).date()
    day, out = start.date(), []
    while day <= last:
        out.append(day)
        day += dt.timedelta(days=1)
    return out
