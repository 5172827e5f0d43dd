"""A UTC day's candles and trades, fetched page by page and de-duplicated at page edges.

Exchanges answer at most a few hundred or thousand rows per request, and some bound the time
window of one request too (Binance: one hour of aggregated trades). These functions drive a
``fetch(since_ms, until_ms, limit)`` callable (``until_ms`` inclusive; an exchange that has no
upper bound may ignore it) until the day ``[start_ms, end_ms)`` is covered, and keep each
candle timestamp and each trade id once: consecutive pages overlap where a page ends inside a
millisecond (several trades share it) or where the exchange's ``since`` is coarser than a
millisecond (Kraken takes seconds).

Example:
    >>> rows = [[t * 60_000, 1.0, 1.0, 1.0, 1.0, 2.0] for t in range(10)]
    >>> def fetch(since, until, limit):  # an exchange with 4 candles per page
    ...     return [r for r in rows if since <= r[0] <= until][:4]
    >>> [r[0] // 60_000 for r in page_candles(fetch, 0, 6 * 60_000, limit=4)]
    [0, 1, 2, 3, 4, 5]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cb_storage_dagster.domain.errors import SourceRequestError

__all__ = ["PageStats", "page_candles", "page_trades"]

Candle = Sequence[Any]
"""``[open_ms, open, high, low, close, volume]`` as ccxt returns it."""

Trade = dict[str, Any]
"""A ccxt trade structure; paging reads only ``id`` and ``timestamp`` (ms)."""

FetchPage = Callable[[int, int, int], Sequence[Any]]

MAX_PAGES = 10_000
"""A day never needs this many pages; more means the exchange ignores ``since`` (a loop)."""


@dataclass
class PageStats:
    """Requests made and rows dropped as duplicates by one paging call (``pages`` feeds the
    :data:`MAX_PAGES` guard; pass one in to read them)."""

    pages: int = 0
    duplicates: int = 0


def page_candles(
    fetch: FetchPage,
    start_ms: int,
    end_ms: int,
    *,
    limit: int,
    timeframe_ms: int = 60_000,
    stats: PageStats | None = None,
) -> list[Candle]:
    """Every candle opening in ``[start_ms, end_ms)``, sorted, one per timestamp.

    The next page starts one timeframe after the last candle received; paging stops at the
    end of the day or at a page with nothing new (the exchange has no later candle yet, e.g.
    today, or stopped listing the instrument).
    """
    stats = stats if stats is not None else PageStats()
    by_time: dict[int, Candle] = {}
    cursor = start_ms
    while cursor < end_ms:
        page = _fetch(fetch, cursor, end_ms - 1, limit, stats)
        latest = max((int(row[0]) for row in page if int(row[0]) >= cursor), default=None)
        for row in page:
            ts = int(row[0])
            if start_ms <= ts < end_ms:
                if ts in by_time:
                    stats.duplicates += 1
                else:
                    by_time[ts] = row
        if latest is None:
            break
        cursor = latest + timeframe_ms
    return [by_time[ts] for ts in sorted(by_time)]


def page_trades(
    fetch: FetchPage,
    start_ms: int,
    end_ms: int,
    *,
    limit: int,
    window_ms: int | None = None,
    stats: PageStats | None = None,
) -> list[Trade]:
    """Every trade with ``start_ms <= timestamp < end_ms``, sorted by time then id, each id once.

    With ``window_ms`` (an exchange that bounds one request's time window) each request asks
    for at most that window; a page shorter than ``limit`` completes its window. A full page
    continues from its last trade's millisecond, whose trades come again and are dropped by id.
    Without ``window_ms`` the next request starts at the last trade's time, until a page
    reaches past the day or brings nothing new (ccxt drops trades before ``since`` from a page,
    so a short page alone does not prove the end).

    ``limit`` must not exceed what the exchange answers per request, or a capped page would
    look complete.
    """
    stats = stats if stats is not None else PageStats()
    by_id: dict[str, Trade] = {}
    cursor = start_ms
    while cursor < end_ms:
        until = min(cursor + window_ms, end_ms) - 1 if window_ms else end_ms - 1
        page = _fetch(fetch, cursor, until, limit, stats)
        new = 0
        for trade in page:
            ts, trade_id = int(trade["timestamp"]), str(trade["id"])
            if not start_ms <= ts < end_ms:
                continue
            if trade_id in by_id:
                stats.duplicates += 1
            else:
                by_id[trade_id] = trade
                new += 1
        latest = max((int(t["timestamp"]) for t in page), default=None)
        full = len(page) >= limit
        if window_ms and not full:
            cursor = until + 1  # the window is complete
            continue
        if latest is None or (not window_ms and latest >= end_ms):
            break  # nothing more, or past the day
        if new == 0:
            if not window_ms and not full:
                break  # nothing new: the exchange has no later trade (yet)
            raise SourceRequestError(
                f"More than {limit} trades share the time {cursor} ms; the exchange cannot be paged "
                "past it by time. Raise the page limit for this exchange."
            )
        cursor = max(latest, cursor)
    return sorted(by_id.values(), key=lambda t: (int(t["timestamp"]), _id_key(str(t["id"]))))


def _fetch(fetch: FetchPage, since: int, until: int, limit: int, stats: PageStats) -> Sequence[Any]:
    stats.pages += 1
    if stats.pages > MAX_PAGES:
        raise SourceRequestError(
            f"Paging made {MAX_PAGES} requests without finishing the day; the exchange seems to ignore 'since'."
        )
    return fetch(since, until, limit)


def _id_key(trade_id: str) -> tuple[int, int | str]:
    """Numeric ids sort as numbers (``"9" < "10"``), others as text."""
    return (0, int(trade_id)) if trade_id.isdigit() else (1, trade_id)
