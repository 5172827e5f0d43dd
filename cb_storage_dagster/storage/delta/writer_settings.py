"""How the product's writers encode the Parquet data files of a Delta table: one place for the
codec, the row-group sizes of compacted months and the column encodings of every file the
product writes (day writes, merges, compaction; the day files' row-group size is the layout's,
:data:`.layout.EXCHANGE_LAYOUT_ROW_GROUP_ROWS`).

Floating-point columns (prices, volumes) are written without a dictionary. delta-rs' writer
dictionary-encodes every column by default, and falls back to plain values only once a
column chunk's dictionary passes 1 MiB: a 16 Ki-row group of candles keeps a dictionary of
~16 Ki distinct prices per column and decodes through it. Measured on an exchange-day file
of 500 coins (pyarrow 26, one 16 Ki-row group of the 7 stored columns decoded from memory):
0.195 ms with every column dictionary-encoded, 0.093 ms with prices and volumes plain, and
the file 6% smaller (36 -> 34 MB). Strings, dates and timestamps keep their dictionaries
(an exchange-day holds 1,440 distinct minutes: the timestamp column is 4x smaller with one).

>>> import pyarrow as pa
>>> plain_columns(pa.schema([("coin", pa.string()), ("close", pa.float64()), ("volume", pa.float32())]))
['close', 'volume']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import pyarrow as pa

if TYPE_CHECKING:
    from deltalake import WriterProperties

Codec = Literal["UNCOMPRESSED", "SNAPPY", "ZSTD"]

COMPACTED_ROW_GROUP_ROWS = 4 * 1024
"""Rows per row group of a rewritten exchange-month (~3 days of one coin's candles, not a
month or 16 Ki rows). Measured 500 x 20, 16 Ki -> 4 Ki: one instrument x 1 day 5.0 -> 3.6 ms,
every instrument x 1 day 448 -> 377 ms; new process 21 -> 27 ms (footer 4x). 2 Ki (session
12): every instrument x 1 day 137-152 -> 122-124 ms, but 20 days of one 1.97 -> 2.15 ms and a
new process's 20-day read 17.6 -> 25.0 ms: kept at 4 Ki."""
INSTRUMENT_COMPACTED_ROW_GROUP_ROWS = 2 * 1024
"""Rows per row group of a rewritten instrument-month (~1.4 days of candles). Measured 500 x
20 (session 12), 4 Ki -> 2 Ki: every instrument x 1 day 210-242 -> 137-173 ms (a day decoded
from 1-2 groups of each of 500 files), one instrument x 1 day 0.84 -> 0.78 ms, x 20 days 1.52
-> 1.55 ms, a new process's 20-day read 11.2 -> 9.8 ms; 1 Ki: 20 days 1.94-2.05 ms."""


def plain_columns(schema: pa.Schema) -> list[str]:
    """The columns of ``schema`` written as plain values (no dictionary): floating point."""
    return [field.name for field in schema if pa.types.is_floating(field.type)]


def writer_properties(
    schema: pa.Schema, *, compression: Codec = "SNAPPY", max_row_group_size: int | None = None
) -> WriterProperties:
    """delta-rs writer properties for data of ``schema``: ``compression``, at most
    ``max_row_group_size`` rows per row group (``None``: delta-rs' default), floating-point
    columns without a dictionary (:func:`plain_columns`)."""
    from deltalake import ColumnProperties, WriterProperties

    plain = {name: ColumnProperties(dictionary_enabled=False) for name in plain_columns(schema)}
    return WriterProperties(compression=compression, max_row_group_size=max_row_group_size,
                            column_properties=plain or None)


__all__ = ["COMPACTED_ROW_GROUP_ROWS", "INSTRUMENT_COMPACTED_ROW_GROUP_ROWS", "Codec", "plain_columns", "writer_properties"]
