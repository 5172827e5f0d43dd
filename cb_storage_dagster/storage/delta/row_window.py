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
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

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
    filter beyond the caller's own filters. ``coins``: for a read of several instruments
    (of one exchange, or a ``coin in [...]`` filter), their coins, sorted: row groups that
    hold none of them are skipped, the read's filter selects the rows. ``each_coin_exact``:
    the scope is those coins of ``exchange``, each over the same consecutive days, so that
    each coin's window (:meth:`for_coin`) is exact.
    """

    exchange: str | None = None
    coin: str | None = None
    start_us: int | None = None
    end_us: int | None = None
    first_day: dt.date | None = None
    last_day: dt.date | None = None
    exact: bool = False
    coins: tuple[str, ...] | None = None
    each_coin_exact: bool = False

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
        if scope is None or scope.whole_table:
            return cls(None, None, start, end)
        sole = scope.sole_instrument
        if sole is not None and scope.slots:
            return cls._over(sole[0], sole[1], {slot.date for slot in scope.slots}, start, end, scope)
        exchanges = {day.exchange for day in scope.days}
        if scope.days and not scope.slots and not scope.instruments and len(exchanges) == 1 and None not in exchanges:
            return cls._over(exchanges.pop(), None, {day.date for day in scope.days}, start, end, scope)
        pairs = {(slot.exchange, slot.coin) for slot in scope.slots} | set(scope.instruments)
        if not scope.days and len({exchange for exchange, _ in pairs}) == 1:
            coins = tuple(sorted(coin for _, coin in pairs))
            if not scope.instruments and scope.slots:
                each = cls._over(next(iter(pairs))[0], None, {slot.date for slot in scope.slots}, start, end, scope)
                if each.exact and len(scope.slots) == len(coins) * ((each.last_day - each.first_day).days + 1):
                    return replace(each, exact=False, coins=coins, each_coin_exact=True)
            return cls(None, None, start, end, coins=coins)
        return cls(None, None, start, end)

    def for_coin(self, coin: str) -> RowWindow:
        """The window of one of :attr:`coins`: exact where this window is exact (every coin of
        its exchange over consecutive days) or :attr:`each_coin_exact`.

        >>> import datetime as dt
        >>> from cb_storage_dagster.domain.scope import WriteScope
        >>> from cb_storage_dagster.domain.keys import PartitionSlot
        >>> days = [dt.date(1970, 1, 1), dt.date(1970, 1, 2)]
        >>> scope = WriteScope.of_slots(PartitionSlot("binance", c, d) for c in ("BTC", "ETH") for d in days)
        >>> window = RowWindow.of(scope, None)
        >>> window.coins, window.exact, window.for_coin("ETH").coin, window.for_coin("ETH").exact
        (('BTC', 'ETH'), False, 'ETH', True)
        """
        return replace(self, coin=coin, coins=None, exact=self.exact or self.each_coin_exact, each_coin_exact=False)

    def within_filters(self, filters: Iterable[tuple[str, str, Any]]) -> RowWindow:
        """The window narrowed by the read's filters (ANDed): ``coin = x`` or ``coin in [...]``
        bound the coins.

        >>> RowWindow().within_filters([("coin", "in", ["ETH", "BTC"])]).coins
        ('BTC', 'ETH')
        """
        coins = None if self.coins is None else set(self.coins)
        for column, op, value in filters:
            if column == "coin" and op in ("=", "in"):
                named = {value} if op == "=" else set(value)
                coins = named if coins is None else coins & named
        if coins is None or self.coin is not None:
            return self
        return replace(self, coins=tuple(sorted(coins)))

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
