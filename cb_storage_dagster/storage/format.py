"""The contract each storage format (Delta, Parquet, JSON) implements."""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from cb_storage_dagster.domain.errors import UnsupportedWriteModeError
from cb_storage_dagster.domain.keys import DataType
from cb_storage_dagster.domain.results import WriteResult
from cb_storage_dagster.domain.schemas import DATE_COLUMN
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.storage.interfaces import IStorageBackend
from cb_storage_dagster.storage.sql import filters_expression, time_range_expression

FORMATS = ("delta", "parquet", "json")


@dataclass(frozen=True)
class ReadRequest:
    """What to read: partitions to prune to, then row filters and a projection.

    ``scope`` selects exchange/coin/day partitions (``None``: every partition);
    ``filters`` (validated ``(column, op, value)`` tuples, ANDed) and ``time_range``
    (``start <= timestamp < end``, UTC) select rows; ``columns`` projects. Readers turn
    the row selection into a pyarrow expression (:attr:`row_filter`) or, for delta-rs'
    DataFusion reader, into SQL through :mod:`~cb_storage_dagster.storage.sql`.
    """

    data_type: DataType
    scope: WriteScope | None
    filters: tuple[tuple[str, str, Any], ...] = ()
    time_range: tuple[dt.datetime, dt.datetime] | None = None
    columns: list[str] | None = None
    as_of_version: int | None = None
    as_of_timestamp: dt.datetime | None = None
    started_at: float | None = None
    """When the read began (``time.monotonic()``): what the store learnt of the table since
    then (a listing of its log) serves the read without asking again."""

    @cached_property
    def filters_expression(self) -> ds.Expression | None:
        """``filters`` alone as one pyarrow expression (built once per request)."""
        return filters_expression(self.filters)

    @cached_property
    def row_filter(self) -> ds.Expression | None:
        """``filters`` and ``time_range`` as one pyarrow expression (pushed down to statistics)."""
        expr = self.filters_expression
        if self.time_range is not None:
            range_expr = time_range_expression(*self.time_range)
            expr = range_expr if expr is None else range_expr & expr
        return expr


class FormatStore(ABC):
    """Reads and writes one format through a backend."""

    name: str

    def __init__(self, backend: IStorageBackend) -> None:
        self.backend = backend

    @abstractmethod
    def write(self, table: str, data_type: DataType, data: pa.Table, scope: WriteScope) -> WriteResult:
        """Replace exactly ``scope`` with ``data`` (already normalized and checked)."""

    def merge(
        self,
        table: str,
        data_type: DataType,
        data: pa.Table,
        scope: WriteScope,
        key_columns: tuple[str, ...],
    ) -> WriteResult:
        """Upsert ``data`` into ``scope`` by ``key_columns`` in one atomic commit.

        Only formats with an atomic read-modify-write (Delta) implement it. A Parquet/JSON
        merge would read the day object, upsert and write it back: two concurrent merges
        of the same day would each write back their own upsert and silently drop the
        other's rows, so those formats refuse instead.
        """
        raise UnsupportedWriteModeError(
            f"Table {table!r} is stored as {self.name}, which cannot merge: a merge of a "
            f"{self.name} day object is a read-modify-write that a concurrent merge of the "
            "same day could silently undo. Nothing was written. Store the table as Delta to "
            "merge, or replace whole days (mode='replace') with every row of the day."
        )

    @abstractmethod
    def read(self, table: str, request: ReadRequest) -> pa.Table:
        """Rows of ``table`` matching ``request``; an absent table reads as no rows."""

    @abstractmethod
    def instruments(self, table: str) -> list[tuple[str, str]]:
        """``(exchange, coin)`` pairs that have data, from metadata (no data scan)."""

    @abstractmethod
    def list_dates(self, table: str, exchange: str, coin: str) -> list[dt.date]:
        """UTC days with data for one instrument."""


_PARTITION_KEY = ["exchange", "coin", DATE_COLUMN]
_MAX_RUNS = 4096
"""Above this many runs of equal partition keys, rows are counted by grouping instead."""


def rows_per_partition(data: pa.Table, scope: WriteScope) -> dict[str, int]:
    """Row counts per written ``exchange/coin/date`` (cleared slots count 0).

    Writers pass rows sorted by instrument and time, where each partition is one run of
    equal keys: the runs are found with one vectorized pass over adjacent rows (no hash
    grouping, whose thread-pool start-up dominated small writes). Counts are summed per
    key, so rows in any order are still counted right; many runs fall back to grouping.
    """
    counts: dict[str, int] = {}
    for exchange, coin, day, rows in _partition_counts(data):
        key = f"{exchange}/{coin}/{day.isoformat()}"
        counts[key] = counts.get(key, 0) + rows
    for slot in scope.slots:
        counts.setdefault(str(slot), 0)
    return dict(sorted(counts.items()))


def _partition_counts(data: pa.Table) -> Iterator[tuple[str, str, dt.date, int]]:
    n = data.num_rows
    if n == 0:
        return iter(())
    keys = data.select(_PARTITION_KEY)
    breaks: pa.Array | None = None
    if not any(column.null_count for column in keys.columns):
        changed: pa.ChunkedArray | None = None  # row i+1 starts a new run
        for column in keys.columns:
            differs = pc.not_equal(column.slice(1), column.slice(0, n - 1))
            changed = differs if changed is None else pc.or_(changed, differs)
        breaks = pc.indices_nonzero(changed)
    if breaks is None or len(breaks) >= _MAX_RUNS:
        grouped = keys.group_by(_PARTITION_KEY).aggregate([([], "count_all")])
        return zip(*(c.to_pylist() for c in grouped.columns))
    starts = [0] + [i + 1 for i in breaks.to_pylist()]
    firsts = keys.take(pa.array(starts, pa.int64()))
    sizes = [end - start for start, end in zip(starts, starts[1:] + [n])]
    return zip(*(c.to_pylist() for c in firsts.columns), sizes)
