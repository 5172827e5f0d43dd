"""How the product's writers encode the Parquet data files of a Delta table: one place for the
codec, the row-group size and the column encodings of every file the product writes (day
writes, merges, compaction).

Data files are written without compression (:data:`DATA_FILE_CODEC`). Measured with pyarrow 26
on one instrument-month of 1-minute candles (43,200 rows, 4 Ki-row groups, prices rounded to
a 0.1 tick as exchanges quote them): decoding the whole file took 0.33 ms uncompressed, 1.04
ms with LZ4, 2.6 ms with Snappy and 2.9 ms with zstd, for files of 2.15, 1.42, 1.39 and 1.04
MB. With the synthetic benchmark data (unrounded random floats, which no codec compresses)
Snappy still doubled the decode (0.36 -> 0.78 ms) for 4% less space. A read of one instrument
is mostly decoding, so the product trades ~1.5x the bytes of realistic data for reads 3-8x
cheaper to decode. LZ4_RAW would halve the space cost, but Spark before 3.5 cannot read it.

Floating-point and timestamp columns (prices, volumes, times) are written without a
dictionary. delta-rs' writer
dictionary-encodes every column by default, and falls back to plain values only once a
column chunk's dictionary passes 1 MiB: a 16 Ki-row group of candles keeps a dictionary of
~16 Ki distinct prices per column and decodes through it. Measured on an exchange-day file
of 500 coins (pyarrow 26, one 16 Ki-row group of the 7 stored columns decoded from memory):
0.195 ms with every column dictionary-encoded, 0.093 ms with prices and volumes plain, and
the file 6% smaller (36 -> 34 MB). Strings and dates keep their dictionaries.

Timestamps are plain since session 14: a read of one instrument then takes its rows' times
by position from the page (:mod:`.column_slices`) instead of decoding bit-packed dictionary
indices (~50 us for 1,440 rows of an exchange-day file, in each of 30 files of a month). An
instrument-day file is smaller so (its 1,440 distinct minutes need a dictionary as large as
the values, plus the indices); an exchange-day file, whose 1,440 minutes repeat for each
coin, is ~14% larger.

>>> import pyarrow as pa
>>> plain_columns(pa.schema([("coin", pa.string()), ("timestamp", pa.timestamp("us", "UTC")),
...                          ("close", pa.float64()), ("volume", pa.float32()), ("date", pa.date32())]))
['timestamp', 'close', 'volume']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import pyarrow as pa

if TYPE_CHECKING:
    from deltalake import WriterProperties

Codec = Literal["UNCOMPRESSED", "SNAPPY", "ZSTD"]
DATA_FILE_CODEC: Codec = "UNCOMPRESSED"
"""The codec of every data file the product writes (see the module docstring)."""


def plain_columns(schema: pa.Schema) -> list[str]:
    """The columns of ``schema`` written as plain values (no dictionary): floating point
    and timestamps."""
    return [field.name for field in schema if pa.types.is_floating(field.type) or pa.types.is_timestamp(field.type)]


def writer_properties(
    schema: pa.Schema, *, compression: Codec = DATA_FILE_CODEC, max_row_group_size: int | None = None
) -> WriterProperties:
    """delta-rs writer properties for data of ``schema``: ``compression``, at most
    ``max_row_group_size`` rows per row group (``None``: delta-rs' default) and then as many
    per data page, floating-point columns without a dictionary (:func:`plain_columns`).

    One data page per column chunk is what lets a read take rows by position
    (:mod:`.column_slices`); delta-rs' writer starts a new page every 20,000 rows by default,
    and at 1 MiB of values (64 Ki rows of 8-byte values are 512 KiB).

    >>> import pyarrow as pa
    >>> writer_properties(pa.schema([("close", pa.float64())]), max_row_group_size=65536).data_page_row_count_limit
    65536
    """
    from deltalake import ColumnProperties, WriterProperties

    plain = {name: ColumnProperties(dictionary_enabled=False) for name in plain_columns(schema)}
    return WriterProperties(compression=compression, max_row_group_size=max_row_group_size,
                            data_page_row_count_limit=max_row_group_size, column_properties=plain or None)


__all__ = ["DATA_FILE_CODEC", "Codec", "plain_columns", "writer_properties"]
