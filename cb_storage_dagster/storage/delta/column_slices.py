"""Rows of a memory-mapped data file's row group taken by position, without decoding the
row group: where each column's values lie in the file, found once from its page headers.

pyarrow decodes whole row groups. A read of one instrument from an exchange-day file needs
1,440 rows of a 64 Ki-row group: decoding the group costs ~45x the rows kept, in each of the
30 files of a month. The product's files are uncompressed (:mod:`.writer_settings`), with
one data page per column chunk, so the values of rows ``[first, end)`` of a plain column are
bytes ``[8 * first, 8 * end)`` of its page (a view of the mapping, no copy), and those of a
dictionary-encoded column are its dictionary's values at indices decoded from the runs
that hold those rows only (:mod:`.hybrid_rle`).

A column chunk is read so only when that is exact: uncompressed; flat; without nulls (its
statistics say so); one dictionary page at most and one data page (version 1 or 2); values
plain or dictionary indices; a fixed-width type (a string column only as the ``coin`` a read
cuts by, :meth:`RowGroupSlices.coin_run`). :meth:`RowGroupSlices.of` gives ``None`` for a
column it cannot read so, and the caller decodes that file with pyarrow.

>>> import pyarrow as pa, pyarrow.parquet as pq
>>> sink = pa.BufferOutputStream()
>>> table = pa.table({"coin": ["BTC", "BTC", "ETH"], "close": [1.5, 2.5, 3.5]})
>>> pq.write_table(table, sink, compression="NONE", use_dictionary=["coin"])
>>> data = sink.getvalue()
>>> group = RowGroupSlices.of(data, pq.ParquetFile(pa.BufferReader(data)).metadata, 0)
>>> group.coin_run("ETH"), group.coin_run("SOL"), group.columns["close"].take(0, 2).tolist()
((2, 3), (0, 0), [1.5, 2.5])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cb_storage_dagster.storage.delta.hybrid_rle import HybridRuns
from cb_storage_dagster.storage.delta.page_headers import (
    DATA_PAGE,
    DATA_PAGE_V2,
    DICTIONARY_PAGE,
    PLAIN,
    PLAIN_DICTIONARY,
    RLE,
    RLE_DICTIONARY,
    PageHeader,
    PageHeaderError,
    read_page_header,
)

_NUMPY_TYPES = {"INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"), "FLOAT": np.dtype("<f4"), "DOUBLE": np.dtype("<f8")}
"""Physical types read by position, as numpy types."""


def _fixed_width(arrow_type: pa.DataType, physical_type: str) -> np.dtype | None:
    """The numpy type of ``arrow_type`` values stored as ``physical_type``, where the two lay
    out values alike (Arrow's fixed-width buffer is the Parquet plain encoding)."""
    dtype = _NUMPY_TYPES.get(physical_type)
    if dtype is None:
        return None
    same_width = pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or \
        pa.types.is_timestamp(arrow_type) or pa.types.is_date32(arrow_type)
    return dtype if same_width and arrow_type.bit_width == dtype.itemsize * 8 else None


@dataclass(frozen=True)
class PlainValues:
    """A column chunk of plain values: all of them, a view of the file's bytes."""

    values: np.ndarray
    fixed_width = True
    """Values of a fixed-width type (always: plain strings are not read by position)."""

    def take(self, first: int, end: int) -> np.ndarray:
        """Values of rows ``[first, end)`` (a view)."""
        return self.values[first:end]


@dataclass(frozen=True)
class DictionaryValues:
    """A dictionary-encoded column chunk: its dictionary and the runs of its indices."""

    dictionary: np.ndarray
    indices: HybridRuns

    @property
    def fixed_width(self) -> bool:
        """Whether the values are of a fixed-width type (else strings, as Python objects)."""
        return self.dictionary.dtype != object

    def take(self, first: int, end: int) -> np.ndarray:
        """Values of rows ``[first, end)``."""
        return self.indices.take(first, end, self.dictionary)


ColumnValues = PlainValues | DictionaryValues


@dataclass
class RowGroupSlices:
    """The columns of one row group that can be read by position (:class:`PlainValues`,
    :class:`DictionaryValues`; ``None``: decode with pyarrow), and where each coin's run of
    rows is (worked out at the first :meth:`coin_run`)."""

    rows: int
    columns: dict[str, ColumnValues | None]
    _coin_runs: dict[str, tuple[int, int] | None] | None = field(default=None, repr=False)
    _readable: dict[tuple[str, ...], tuple[ColumnValues, ...] | None] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, data: pa.Buffer, metadata: pq.FileMetaData, group: int,
           arrow_schema: pa.Schema | None = None) -> RowGroupSlices:
        """The row group ``group`` of the file whose bytes are ``data`` and footer ``metadata``."""
        arrow_schema = arrow_schema if arrow_schema is not None else metadata.schema.to_arrow_schema()
        row_group = metadata.row_group(group)
        octets, header_bytes = np.frombuffer(data, np.uint8), memoryview(data).cast("B")
        columns: dict[str, ColumnValues | None] = {}
        for j in range(row_group.num_columns):
            descr = metadata.schema.column(j)
            name = descr.path
            if name not in arrow_schema.names or descr.max_repetition_level or descr.max_definition_level > 1:
                columns[name] = None
                continue
            try:
                columns[name] = _chunk_values(octets, header_bytes, row_group.column(j), row_group.num_rows,
                                              arrow_schema.field(name).type, nullable=descr.max_definition_level == 1)
            except (PageHeaderError, ValueError, IndexError):  # bytes not as the footer says: pyarrow decodes
                columns[name] = None
        return cls(row_group.num_rows, columns)

    def readable(self, names: tuple[str, ...]) -> tuple[ColumnValues, ...] | None:
        """Columns ``names``, if each can be read by position as fixed-width values (kept per
        set of names: a read asks for the same ones in every group)."""
        found = self._readable.get(names, False)
        if found is False:
            columns = tuple(self.columns.get(name) for name in names)
            usable = all(column is not None and column.fixed_width for column in columns)
            found = self._readable.setdefault(names, columns if usable else None)  # type: ignore[arg-type]
        return found  # type: ignore[return-value]

    def coin_run(self, coin: str) -> tuple[int, int] | None:
        """Rows ``[first, end)`` of ``coin`` (``(0, 0)``: none), or ``None`` where the group's
        ``coin`` column cannot be read by position or holds the coin in more than one run."""
        if self._coin_runs is None:
            self._coin_runs = _runs(self.columns.get("coin"), self.rows)
        if self._coin_runs is None:
            return None
        return self._coin_runs.get(coin, (0, 0))


def _runs(column: ColumnValues | None, rows: int) -> dict[str, tuple[int, int] | None] | None:
    """Per distinct value of a string column, its rows if they form one run."""
    if not isinstance(column, DictionaryValues) or column.dictionary.dtype != object:
        return None
    if not rows:
        return {}
    indices = column.indices.take(0, rows)
    bounds = np.flatnonzero(indices[1:] != indices[:-1]) + 1
    starts, ends = np.concatenate([[0], bounds]), np.concatenate([bounds, [rows]])
    found: dict[str, tuple[int, int] | None] = {}
    for code, start, end in zip(indices[starts].tolist(), starts.tolist(), ends.tolist()):
        value = column.dictionary[code]
        found[value] = None if value in found else (start, end)
    return found


def _chunk_values(octets: np.ndarray, header_bytes: memoryview, chunk: pq.ColumnChunkMetaData, rows: int,
                  arrow_type: pa.DataType, *, nullable: bool) -> ColumnValues | None:
    """A column chunk read by position, or ``None`` (see the module docstring)."""
    stats = chunk.statistics
    if chunk.compression != "UNCOMPRESSED" or \
            (nullable and (stats is None or not stats.has_null_count or stats.null_count != 0)):
        return None
    position = chunk.data_page_offset
    if chunk.has_dictionary_page and chunk.dictionary_page_offset:
        position = min(position, chunk.dictionary_page_offset)
    end = position + chunk.total_compressed_size
    dictionary_page = data_page = None
    while position < end:
        header = read_page_header(header_bytes, position)
        if header.kind == DICTIONARY_PAGE and dictionary_page is None and data_page is None:
            dictionary_page = header
        elif header.kind in (DATA_PAGE, DATA_PAGE_V2) and data_page is None:
            data_page = header
        else:
            return None  # a second data page, an index page: pyarrow decodes
        position = header.end
    if data_page is None or position != end or data_page.num_values != rows or data_page.num_nulls:
        return None
    start = _values_start(octets, data_page, nullable=nullable)
    if start is None:
        return None
    if data_page.encoding == PLAIN:
        dtype = _fixed_width(arrow_type, chunk.physical_type)
        if dtype is None or data_page.end - start != rows * dtype.itemsize or dictionary_page is not None:
            return None
        return PlainValues(np.frombuffer(octets, dtype, rows, start))
    if data_page.encoding not in (RLE_DICTIONARY, PLAIN_DICTIONARY) or dictionary_page is None or start >= data_page.end:
        return None
    dictionary = _dictionary(octets, dictionary_page, arrow_type, chunk.physical_type)
    if dictionary is None:
        return None
    runs = HybridRuns.parse(octets, start + 1, data_page.end, bit_width=int(octets[start]), count=rows)
    return DictionaryValues(dictionary, runs)


def _values_start(octets: np.ndarray, page: PageHeader, *, nullable: bool) -> int | None:
    """Where a data page's values start, after its levels (which say nothing: no nulls)."""
    if page.kind == DATA_PAGE_V2:
        return page.offset + page.levels_size
    if not nullable:
        return page.offset
    if page.level_encoding != RLE or page.size < 4:
        return None
    return page.offset + 4 + int(octets[page.offset:page.offset + 4].view("<u4")[0])


def _dictionary(octets: np.ndarray, page: PageHeader, arrow_type: pa.DataType, physical_type: str) -> np.ndarray | None:
    """A dictionary page's values: fixed width as a view, strings as an object array."""
    if page.encoding not in (PLAIN, PLAIN_DICTIONARY):
        return None
    dtype = _fixed_width(arrow_type, physical_type)
    if dtype is not None:
        return np.frombuffer(octets, dtype, page.num_values, page.offset) if page.size == page.num_values * dtype.itemsize else None
    if physical_type != "BYTE_ARRAY" or not (pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)):
        return None
    values, position = [], page.offset
    for _ in range(page.num_values):
        length = int(octets[position:position + 4].view("<u4")[0])
        values.append(octets[position + 4:position + 4 + length].tobytes().decode())
        position += 4 + length
    return np.array(values, dtype=object) if position == page.end else None


__all__ = ["ColumnValues", "DictionaryValues", "PlainValues", "RowGroupSlices"]
