"""Coverage of stored history: for each exchange x UTC day, which instruments of an expected
universe are complete, partial or missing. No Dagster here.

An instrument-day is **complete** when it holds every interval a day has (1,440 for
``ohlcv_1m``, 24 for ``ohlcv_1h``, 1 for ``ohlcv_1d``: the cadence comes from the table name,
see :func:`expected_per_day`), **partial** when it holds some, and **missing** when it holds
no row. A table without a cadence in its name (``trades``, ``order_book``) has no expected
count: any row makes the day complete. Intervals are counted as distinct timestamps floored to
the cadence, so duplicates never make a day look complete.

The same report serves ``cb-storage coverage`` (read from storage by :func:`measure_coverage`)
and the exchange profile's materializations (from the frame a run just produced, by
:func:`coverage_of_rows`; rendered as Markdown in ``orchestration/coverage_metadata.py``).

Example:
    >>> import datetime as dt, pyarrow as pa
    >>> day = dt.date(2024, 1, 2)
    >>> rows = pa.table({"exchange": ["binance"] * 2, "coin": ["BTC", "ETH"],
    ...     "timestamp": pa.array([dt.datetime(2024, 1, 2)] * 2, pa.timestamp("us", "UTC"))})
    >>> report = coverage_report(count_intervals(rows, 1), [("binance", "BTC"), ("binance", "SOL")],
    ...                          [day], table="ohlcv_1d", per_day=1)
    >>> report.days[0].complete, report.days[0].missing, report.has_gaps
    (['BTC'], ['SOL'], True)
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from cb_storage_dagster.domain.errors import NotFoundError, TimeRangeError
from cb_storage_dagster.domain.keys import DataType, PartitionSlot
from cb_storage_dagster.domain.scope import WriteScope

if TYPE_CHECKING:
    from cb_storage_dagster.storage.manager import StorageManagerImpl

__all__ = [
    "CoverageReport",
    "CoverageState",
    "ExchangeDayCoverage",
    "InstrumentDay",
    "count_intervals",
    "coverage_of_rows",
    "coverage_report",
    "data_type_of_table",
    "expected_per_day",
    "measure_coverage",
]

CoverageState = Literal["complete", "partial", "missing"]
SlotCounts = Mapping[tuple[str, str, dt.date], int]
"""Intervals stored per ``(exchange, coin, UTC day)``."""

_MINUTES_PER_DAY = 1440
_CADENCE = re.compile(r"_(\d+)(m|h|d)$")
_UNIT_MINUTES = {"m": 1, "h": 60, "d": _MINUTES_PER_DAY}


def expected_per_day(table: str) -> int | None:
    """Intervals a complete day holds, from a cadence suffix of the table name (``_1m``,
    ``_15m``, ``_1h``, ``_1d``); ``None`` when the name has none or it does not divide a day.

    >>> expected_per_day("ohlcv_1m"), expected_per_day("ohlcv_1h"), expected_per_day("trades")
    (1440, 24, None)
    """
    match = _CADENCE.search(table.rsplit("/", 1)[-1])
    if match is None:
        return None
    minutes = int(match.group(1)) * _UNIT_MINUTES[match.group(2)]
    if minutes == 0 or _MINUTES_PER_DAY % minutes:
        return None
    return _MINUTES_PER_DAY // minutes


def data_type_of_table(table: str) -> DataType:
    """The data type a table holds, from its name (``ohlcv_1m`` -> ``ohlcv``); a name that
    says none raises :class:`NotFoundError`.

    >>> data_type_of_table("ohlcv_1d").value
    'ohlcv'
    """
    name = table.rsplit("/", 1)[-1]
    for candidate in DataType:
        if name == candidate.value or name.startswith(f"{candidate.value}_"):
            return candidate
    raise NotFoundError(
        f"Cannot tell the data type of table {table!r} from its name: pass it explicitly "
        f"({', '.join(t.value for t in DataType)})."
    )


@dataclass(frozen=True)
class InstrumentDay:
    """One instrument of an exchange-day: its state and the intervals stored."""

    coin: str
    state: CoverageState
    intervals: int


@dataclass(frozen=True)
class ExchangeDayCoverage:
    """The expected instruments of one exchange-day, each complete, partial or missing."""

    exchange: str
    date: dt.date
    instruments: tuple[InstrumentDay, ...]

    def coins(self, state: CoverageState) -> list[str]:
        return [i.coin for i in self.instruments if i.state == state]

    @property
    def complete(self) -> list[str]:
        return self.coins("complete")

    @property
    def partial(self) -> list[str]:
        return self.coins("partial")

    @property
    def missing(self) -> list[str]:
        return self.coins("missing")

    def describe_gaps(self, per_day: int | None, limit: int) -> str:
        """The instruments not complete, at most ``limit`` named: ``'ETH (partial 700/1440), SOL (missing)'``."""
        named = [
            f"{i.coin} (partial {i.intervals}/{per_day})" if i.state == "partial" else f"{i.coin} (missing)"
            for i in self.instruments if i.state != "complete"
        ]
        more = len(named) - limit
        return ", ".join(named[:limit]) + (f", +{more} more" if more > 0 else "")


@dataclass(frozen=True)
class CoverageReport:
    """Coverage of ``table`` over exchange-days, against an expected universe.

    Example:
        >>> report = coverage_report({}, [("kraken", "BTC")], [dt.date(2024, 1, 2)], table="trades", per_day=None)
        >>> report.totals(), report.has_gaps
        ({'complete': 0, 'partial': 0, 'missing': 1}, True)
    """

    table: str
    per_day: int | None
    days: tuple[ExchangeDayCoverage, ...]

    @property
    def has_gaps(self) -> bool:
        return any(i.state != "complete" for day in self.days for i in day.instruments)

    def totals(self) -> dict[str, int]:
        counts = {"complete": 0, "partial": 0, "missing": 0}
        for day in self.days:
            for item in day.instruments:
                counts[item.state] += 1
        return counts

    @property
    def dates(self) -> list[dt.date]:
        return sorted({day.date for day in self.days})

    def states(self) -> dict[tuple[str, str], dict[dt.date, CoverageState]]:
        """``{(exchange, coin): {day: state}}``, instruments sorted (the heatmap's rows)."""
        grid: dict[tuple[str, str], dict[dt.date, CoverageState]] = defaultdict(dict)
        for day in self.days:
            for item in day.instruments:
                grid[(day.exchange, item.coin)][day.date] = item.state
        return dict(sorted(grid.items()))


def count_intervals(rows: pa.Table | Any, per_day: int | None) -> dict[tuple[str, str, dt.date], int]:
    """Distinct intervals (timestamps floored to the cadence; rows when ``per_day`` is None)
    per (exchange, coin, UTC day) of ``rows`` (Arrow or pandas with ``exchange``, ``coin``,
    ``timestamp``)."""
    if not isinstance(rows, pa.Table):
        rows = pa.Table.from_pandas(rows[["exchange", "coin", "timestamp"]], preserve_index=False, nthreads=1)
    if rows.num_rows == 0:
        return {}
    timestamps = rows.column("timestamp")
    if timestamps.type.tz is None:
        timestamps = pc.assume_timezone(timestamps, "UTC")
    keys = {
        "exchange": rows.column("exchange"),
        "coin": rows.column("coin"),
        "day": pc.cast(timestamps, pa.timestamp("us", "UTC")).cast(pa.date32()),
    }
    if per_day is None:
        table = pa.table(keys).group_by(list(keys)).aggregate([([], "count_all")])
        counted = table.column("count_all")
    else:
        bucket = pc.floor_temporal(timestamps, multiple=_MINUTES_PER_DAY // per_day, unit="minute")
        table = pa.table({**keys, "bucket": bucket}).group_by(list(keys)).aggregate([("bucket", "count_distinct")])
        counted = table.column("bucket_count_distinct")
    return {
        (e, c, d): int(n)
        for e, c, d, n in zip(
            table.column("exchange").to_pylist(), table.column("coin").to_pylist(),
            table.column("day").to_pylist(), counted.to_pylist(),
        )
    }


def coverage_report(
    counts: SlotCounts,
    universe: Iterable[tuple[str, str]],
    days: Iterable[dt.date],
    *,
    table: str,
    per_day: int | None,
) -> CoverageReport:
    """Every ``(exchange, coin)`` of ``universe`` on every day of ``days``, classified by
    ``counts``; exchange-days sorted by exchange, then day; coins sorted."""
    by_exchange: dict[str, set[str]] = defaultdict(set)
    for exchange, coin in universe:
        by_exchange[exchange].add(coin)
    wanted_days = sorted(set(days))
    report = []
    for exchange in sorted(by_exchange):
        for day in wanted_days:
            items = []
            for coin in sorted(by_exchange[exchange]):
                stored = int(counts.get((exchange, coin, day), 0))
                items.append(InstrumentDay(coin, _state(stored, per_day), stored))
            report.append(ExchangeDayCoverage(exchange, day, tuple(items)))
    return CoverageReport(table, per_day, tuple(report))


def coverage_of_rows(
    rows: pa.Table | Any, slots: Sequence[PartitionSlot], *, table: str = "", per_day: int | None = None
) -> CoverageReport:
    """The coverage of the instrument-days ``slots`` in a frame a run just produced;
    ``per_day`` defaults to :func:`expected_per_day` of ``table``."""
    per_day = expected_per_day(table) if per_day is None else per_day
    return coverage_of_counts(count_intervals(rows, per_day), slots, table=table, per_day=per_day)


def coverage_of_counts(
    counts: SlotCounts, slots: Sequence[PartitionSlot], *, table: str = "", per_day: int | None = None
) -> CoverageReport:
    """The coverage of the instrument-days ``slots`` from their interval ``counts`` (rows when
    ``per_day`` is None), e.g. counted chunk by chunk as a run's data passed."""
    report = coverage_report(
        counts, {(s.exchange, s.coin) for s in slots}, {s.date for s in slots}, table=table, per_day=per_day
    )
    wanted = {(s.exchange, s.coin, s.date) for s in slots}
    # A run need not cover the rectangle of its instruments x days: keep only its own slots.
    days = tuple(
        ExchangeDayCoverage(d.exchange, d.date, kept)
        for d in report.days
        if (kept := tuple(i for i in d.instruments if (d.exchange, i.coin, d.date) in wanted))
    )
    return CoverageReport(table, per_day, days)


def measure_coverage(
    manager: StorageManagerImpl,
    table: str,
    universe: Sequence[tuple[str, str]],
    first_day: dt.date,
    last_day: dt.date,
    *,
    data_type: DataType | str | None = None,
    per_day: int | None = None,
) -> CoverageReport:
    """Coverage of the stored ``table`` for ``universe`` on the days ``first_day`` to
    ``last_day`` (inclusive), in one pruned scan of the exchanges' days (only the key and
    timestamp columns are read). ``per_day`` defaults to :func:`expected_per_day`; a table
    that does not exist raises :class:`NotFoundError`."""
    if last_day < first_day:
        raise TimeRangeError(f"The last day {last_day} is before the first day {first_day}.")
    if manager.stored_format(table) is None:
        raise NotFoundError(f"No table {table!r} in {manager.backend.describe()}.")
    kind = DataType.parse(data_type) if data_type is not None else data_type_of_table(table)
    per_day = expected_per_day(table) if per_day is None else per_day
    days = [first_day + dt.timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    exchanges = sorted({exchange for exchange, _ in universe})
    scope = WriteScope.of_exchange_days([(e, d) for e in exchanges for d in days])
    rows = manager.read_partitions(kind, scope, table=table, columns=["exchange", "coin", "timestamp"])
    return coverage_report(count_intervals(rows, per_day), universe, days, table=table, per_day=per_day)


def _state(stored: int, per_day: int | None) -> CoverageState:
    if stored <= 0:
        return "missing"
    if per_day is None or stored >= per_day:
        return "complete"
    return "partial"
