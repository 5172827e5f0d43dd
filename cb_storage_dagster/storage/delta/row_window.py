"""Where a read's rows can be, from its scope and time range: what lets a reader skip row
groups and cut a sorted file by position instead of evaluating a filter row by row
(:mod:`.row_groups`).

>>> import datetime as dt
>>> from cb_storage_dagster.domain.scope import WriteScope
>>> from cb_storage_dagster.domain.keys import MarketDataKey
>>> key = MarketDataKey(data_type="ohlcv", exchange="binance", coin="BTC")
>>> scope = WriteScope.of_slots([key.partition(dt.date(1970, 1, 1)), key.partition(dt.date(1970, 1, 2))])
>>> window = RowWindow.of(scope, None)
>>> window.coin, window.start_us, window.end_us, window.exact
('BTC', 0, 172800000000, True)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cb_storage_dagster.domain.scope import WriteScope

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _micros(instant: dt.datetime) -> int:
    return (instant - _EPOCH) // dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class RowWindow:
    """Where a read's rows can be: one instrument (``None``: any) and ``start_us <= timestamp
    < end_us`` in microseconds since the epoch (``None``: unbounded).

    ``exact``: the window is exactly what the read's scope and time range select (one
    instrument, or every instrument of one exchange, over consecutive days); a file whose
    rows were cut to it, and whose ``date`` values lie in those days, then needs no row
    filter beyond the caller's own filters.
    """

    exchange: str | None = None
    coin: str | None = None
    start_us: int | None = None
    end_us: int | None = None
    first_day: dt.date | None = None
    last_day: dt.date | None = None
    exact: bool = False

    @classmethod
    def of(cls, scope: WriteScope | None, time_range: tuple[dt.datetime, dt.datetime] | None) -> RowWindow:
        """The window of a read of ``scope`` and ``time_range``.

        >>> import datetime as dt
        >>> RowWindow.of(None, None).exact
        False
        """
        start = end = None
        if time_range is not None:
            start, end = _micros(time_range[0]), _micros(time_range[1])
        if scope is None or scope.whole_table or scope.instruments:
            return cls(None, None, start, end)
        sole = scope.sole_instrument
        if sole is not None and scope.slots:
            return cls._over(sole[0], sole[1], {slot.date for slot in scope.slots}, start, end, scope)
        exchanges = {day.exchange for day in scope.days}
        if scope.days and not scope.slots and len(exchanges) == 1 and None not in exchanges:
            return cls._over(exchanges.pop(), None, {day.date for day in scope.days}, start, end, scope)
        return cls(None, None, start, end)

    @classmethod
    def _over(cls, exchange: str | None, coin: str | None, dates: set[dt.date], start: int | None,
              end: int | None, scope: WriteScope) -> RowWindow:
        days = sorted(dates)
        day_start = _micros(dt.datetime.combine(days[0], dt.time(), dt.timezone.utc))
        day_end = _micros(dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time(), dt.timezone.utc))
        consecutive = (days[-1] - days[0]).days + 1 == len(days) and not scope.excluded
        return cls(exchange, coin, day_start if start is None else max(start, day_start),
                   day_end if end is None else min(end, day_end), days[0], days[-1], consecutive)


__all__ = ["RowWindow"]
