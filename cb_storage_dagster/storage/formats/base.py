"""The contract each storage format (Delta, Parquet, JSON) implements."""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ..errors import UnsupportedWriteModeError
from ..interfaces import IStorageBackend
from ..keys import DataType
from ..predicates import WriteScope, filters_expression, time_range_expression
from ..results import WriteResult
from ..schemas import DATE_COLUMN

FORMATS = ("delta", "parquet", "json")


@dataclass(frozen=True)
class ReadRequest:
    """What to read: partitions to prune to, then row filters and a projection.

    ``scope`` selects exchange/coin/day partitions (``None``: every partition);
    ``filters`` (validated ``(column, op, value)`` tuples, ANDed) and ``time_range``
    (``start <= timestamp < end``, UTC) select rows; ``columns`` projects. Readers turn
    the row selection into a pyarrow expression (:attr:`row_filter`) or, for delta-rs'
    DataFusion reader, into SQL through :mod:`~cb_storage_dagster.storage.predicates`.
    """

    data_type: DataType
    scope: WriteScope | None
    filters: tuple[tuple[str, str, Any], ...] = ()
    time_range: tuple[dt.datetime, dt.datetime] | None = None
    columns: list[str] | None = None
    as_of_version: int | None = None
    as_of_timestamp: dt.datetime | None = None

    @property
    def row_filter(self) -> ds.Expression | None:
        """``filters`` and ``time_range`` as one pyarrow expression (pushed down to statistics)."""
        expr = filters_expression(self.filters)
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


def rows_per_partition(data: pa.Table, scope: WriteScope) -> dict[str, int]:
    """Row counts per written ``exchange/coin/date`` (cleared slots count 0)."""
    counts: Counter[str] = Counter()
    if data.num_rows:
        keys = pc.binary_join_element_wise(
            data.column("exchange"), data.column("coin"),
            pc.cast(data.column(DATE_COLUMN), pa.string()), "/",
        )
        counts.update(dict(zip(*_value_counts(keys))))
    for slot in scope.slots:
        counts.setdefault(str(slot), 0)
    return dict(sorted(counts.items()))


def _value_counts(values: pa.ChunkedArray) -> tuple[list[str], list[int]]:
    vc = pc.value_counts(values)
    return vc.field("values").to_pylist(), vc.field("counts").to_pylist()
