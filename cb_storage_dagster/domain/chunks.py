"""Market data in chunks: what a large run produces and consumes instead of one frame.

A run of the ``exchange`` profile covers exchange-days of thousands of instruments; holding
them in one frame makes its memory grow with instruments x days. :class:`MarketDataChunks`
is a *re-iterable* sequence of Arrow tables (one per block of instruments x one day): each
iteration calls its ``open`` function again, so a writer that must redo a commit, or a
downstream asset that reads it after the writer did, sees the same chunks, and at most one
chunk (plus what its consumer keeps) is in memory at a time.

It also carries what the run learned while producing the chunks: the instrument-days it
was meant to cover (``slots``) and the ones that failed (``failures``), which a write leaves
out of its scope so that their stored rows stay as they are.

Example:
    >>> import pyarrow as pa
    >>> chunks = MarketDataChunks.of([pa.table({"x": [1, 2]}), pa.table({"x": [3]})])
    >>> [t.num_rows for t in chunks], [t.num_rows for t in chunks]  # iterable more than once
    ([2, 1], [2, 1])
    >>> chunks.map(lambda t: t.filter(pa.compute.greater(t["x"], 1))).to_table().column("x").to_pylist()
    [2, 3]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pyarrow as pa

from cb_storage_dagster.domain.keys import PartitionSlot

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["InstrumentFailure", "MarketDataChunks", "instrument_blocks"]


@dataclass(frozen=True)
class InstrumentFailure:
    """An instrument-day a run left out: its fetch failed for good, or its rows were refused.

    ``message`` is the error's own text after secret redaction (the caller's job), cut short.

    >>> InstrumentFailure("binance", "XX", dt.date(2024, 1, 2), "SourceRequestError", "unknown symbol").slot
    PartitionSlot(exchange='binance', coin='XX', date=datetime.date(2024, 1, 2))
    """

    exchange: str
    coin: str
    date: dt.date
    error_type: str
    message: str

    @property
    def slot(self) -> PartitionSlot:
        return PartitionSlot(self.exchange, self.coin, self.date)

    @property
    def instrument(self) -> str:
        return f"{self.exchange}:{self.coin}"

    def as_record(self) -> dict[str, str]:
        return {"instrument": self.instrument, "date": self.date.isoformat(),
                "error_type": self.error_type, "message": self.message}


@dataclass(frozen=True)
class MarketDataChunks:
    """A re-iterable sequence of Arrow tables of one data type (see the module docstring).

    Args:
        open: returns a fresh iterator over the chunks each time it is called.
        slots: the instrument-days the chunks are meant to cover (empty: not known).
        failures: instrument-days left out, with why; a write excludes them from its scope.
        release: frees what backs the chunks (a temporary file) once their consumer is done;
            iterating afterwards is an error. ``None``: nothing to free.
        project: given column names, an ``open`` that reads only those columns (chunks read
            from a table: :func:`~cb_storage_dagster.storage.chunked.read_chunks`); ``None``:
            :meth:`select` projects each chunk after it is made.
    """

    open: Callable[[], Iterator[pa.Table]]
    slots: tuple[PartitionSlot, ...] = ()
    failures: tuple[InstrumentFailure, ...] = field(default=())
    release: Callable[[], None] | None = None
    project: Callable[[tuple[str, ...]], Callable[[], Iterator[pa.Table]]] | None = None

    @classmethod
    def of(cls, tables: Iterable[pa.Table | pd.DataFrame], slots: Sequence[PartitionSlot] = ()) -> MarketDataChunks:
        """Chunks held in memory already (tests, small runs): frames become Arrow tables."""
        held = tuple(t if isinstance(t, pa.Table) else pa.Table.from_pandas(t, preserve_index=False) for t in tables)
        return cls(lambda: iter(held), tuple(slots))

    def __iter__(self) -> Iterator[pa.Table]:
        return self.open()

    @property
    def excluded(self) -> frozenset[PartitionSlot]:
        """The failed instrument-days: a write neither replaces nor accepts them."""
        return frozenset(f.slot for f in self.failures)

    def close(self) -> None:
        """Free what backs the chunks (see ``release``)."""
        if self.release is not None:
            self.release()

    def map(self, transform: Callable[[pa.Table], pa.Table | pd.DataFrame]) -> MarketDataChunks:
        """These chunks through ``transform``, lazily (one chunk at a time, on each iteration);
        slots and failures carry over."""
        source = self.open

        def opened() -> Iterator[pa.Table]:
            for chunk in source():
                out = transform(chunk)
                yield out if isinstance(out, pa.Table) else pa.Table.from_pandas(out, preserve_index=False)

        return replace(self, open=opened, release=None, project=None)

    def select(self, columns: Sequence[str]) -> MarketDataChunks:
        """These chunks with only ``columns``, in that order: chunks read from a table read only
        those columns (a check that needs three columns of a day of trades does not decode the
        others), other chunks are projected one at a time. A missing column raises ``KeyError``
        when the chunks are iterated.

        >>> chunks = MarketDataChunks.of([pa.table({"x": [1], "y": ["a"]})])
        >>> chunks.select(["y"]).to_table().column_names
        ['y']
        """
        wanted = tuple(columns)
        if self.project is not None:
            return replace(self, open=self.project(wanted), release=None, project=None)

        def projected(chunk: pa.Table) -> pa.Table:
            missing = [c for c in wanted if c not in chunk.column_names]
            if missing:
                raise KeyError(f"Chunks have no column(s) {missing}; they have {chunk.column_names}.")
            return chunk.select(list(wanted))

        return self.map(projected)

    def to_table(self) -> pa.Table:
        """All chunks in one table: for small data only, memory grows with the run."""
        tables = [t for t in self if t.num_rows]
        if not tables:
            return next(iter(self), pa.table({}))
        return pa.concat_tables(tables, promote_options="default")


def instrument_blocks(coins: Sequence[str], size: int) -> list[list[str]]:
    """``coins`` cut into blocks of at most ``size`` (the chunk bound), in their order.

    >>> instrument_blocks(["A", "B", "C"], 2)
    [['A', 'B'], ['C']]
    """
    if size < 1:
        raise ValueError(f"A chunk holds at least one instrument, got {size}.")
    return [list(coins[i:i + size]) for i in range(0, len(coins), size)]
