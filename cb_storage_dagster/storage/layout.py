"""Delta table layouts: how a table is partitioned, chosen once when it is created.

Two layouts, one set of predicates (both keep ``exchange``, ``coin``, ``month`` and ``date``
as columns, so every replace/delete predicate of :mod:`.sql` works on either):

* ``"instrument"`` (the default): partition columns ``exchange / coin / month``. One folder
  per instrument-month; a day of one instrument is one small file. Best for a handful to a
  few hundred instruments.
* ``"exchange"`` (large universes): partition columns ``exchange / month``; ``coin`` is a data
  column. An exchange-day of every instrument is **one file** sorted by coin and timestamp,
  written with small row groups so that the per-file and per-row-group ``coin`` min/max
  statistics prune reads of one instrument. Weekly compaction rewrites a month sorted by
  ``coin, timestamp`` (files then hold disjoint coin ranges).

A table keeps the layout it was created with: :func:`layout_of` reads it back from the
table's partition columns.

>>> partition_columns("exchange")
('exchange', 'month')
>>> layout_of(["exchange", "coin", "month"])
'instrument'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

from cb_storage_dagster.domain.errors import ConfigurationError, LayoutMismatchError
from cb_storage_dagster.domain.schemas import MONTH_COLUMN

Layout = Literal["instrument", "exchange"]
LAYOUTS: tuple[str, ...] = get_args(Layout)
DEFAULT_LAYOUT: Layout = "instrument"

_PARTITIONS: dict[str, tuple[str, ...]] = {
    "instrument": ("exchange", "coin", MONTH_COLUMN),
    "exchange": ("exchange", MONTH_COLUMN),
}

EXCHANGE_LAYOUT_ROW_GROUP_ROWS = 64 * 1024
"""Rows per Parquet row group (and per data page: :func:`.delta.writer_settings.writer_properties`)
in the exchange-day files the writers make: ~45 instruments of one day of 1-minute candles,
instead of the writer's default of ~1M rows, so that the groups' coin statistics lead a read
of one instrument to the one or two groups that hold it. Its rows are then taken by position
from the groups' single uncompressed pages (:mod:`.delta.positional_read`), so larger groups
cost a warm read nothing, while a new process parses footers and indexes row groups in
proportion to their number. Measured (session 19) on 2,000 instruments x 30 exchange-days,
one instrument x 30 days in a new process, medians of 6: 95 ms with 16 Ki-row groups (~150
per file, 122 KB footers), 65 ms with 64 Ki (34 per file, 32 KB), 73 ms with 128 Ki (its 1 MiB
pages cost more to map than the footers save); warm reads equal. Session 12 chose 16 Ki when
reads decoded whole groups (64 Ki then cost 15.5 against 10.4 ms on a compacted file)."""


def parse_layout(value: str | None) -> Layout | None:
    """``value`` as a layout name (``None`` stays ``None``).

    Raises:
        ConfigurationError: an unknown name.
    """
    if value is None:
        return None
    name = str(value).strip().lower()
    if name not in LAYOUTS:
        raise ConfigurationError(
            f"Unknown Delta layout {value!r}; use one of: {', '.join(LAYOUTS)} "
            "('exchange' for thousands of instruments per exchange)."
        )
    return name  # type: ignore[return-value]


def partition_columns(layout: Layout) -> tuple[str, ...]:
    """The partition columns a new table of ``layout`` is created with."""
    return _PARTITIONS[layout]


def layout_of(columns: Sequence[str]) -> Layout | None:
    """The layout of a table partitioned by ``columns`` (``None``: a layout of neither kind,
    e.g. a table created by another tool)."""
    found = tuple(columns)
    for name, expected in _PARTITIONS.items():
        if found == expected:
            return name  # type: ignore[return-value]
    return None


def check_layout(table: str, columns: Sequence[str], requested: Layout | None) -> None:
    """An explicitly ``requested`` layout must be that of ``table``, partitioned by ``columns``: a
    table never changes layout. ``None`` asks for nothing."""
    if requested is None:
        return
    if layout_of(columns) != requested:
        raise LayoutMismatchError(
            f"Delta table {table!r} is partitioned by {list(columns)} "
            f"({layout_of(columns) or 'a layout of its own'}), not in the {requested!r} layout, "
            "and a table keeps the layout it was created with. Nothing was written. Drop the "
            "layout argument to write in the table's layout, or write to another table name."
        )


def sort_columns(layout: Layout | None) -> list[str]:
    """Columns that compaction sorts a partition by: time within an instrument-month, or
    coin then time within an exchange-month (tight per-file coin ranges)."""
    return ["coin", "timestamp"] if layout == "exchange" else ["timestamp"]


__all__ = [
    "DEFAULT_LAYOUT",
    "EXCHANGE_LAYOUT_ROW_GROUP_ROWS",
    "LAYOUTS",
    "Layout",
    "check_layout",
    "layout_of",
    "parse_layout",
    "partition_columns",
    "sort_columns",
]
