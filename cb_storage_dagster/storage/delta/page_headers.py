"""The page headers of a Parquet column chunk, read from the file's bytes: what
:mod:`.column_slices` needs to find a chunk's values without decoding the chunk.

A page header is a Thrift struct in the compact protocol (``PageHeader`` of the Parquet
format's ``parquet.thrift``). pyarrow parses them but does not expose them, so this module
reads the few fields a reader of plain and dictionary pages needs, and skips the others
(statistics, CRCs, fields of later format versions) by their Thrift types.

>>> import pyarrow as pa, pyarrow.parquet as pq
>>> sink = pa.BufferOutputStream()
>>> pq.write_table(pa.table({"close": [1.5, 2.5]}), sink, use_dictionary=False, compression="NONE")
>>> data = sink.getvalue().to_pybytes()
>>> header = read_page_header(data, 4)
>>> header.kind == DATA_PAGE, header.num_values, header.encoding == PLAIN, header.size  # 6 bytes of levels, 16 of values
(True, 2, True, 22)
"""

from __future__ import annotations

from dataclasses import dataclass

DATA_PAGE, INDEX_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = 0, 1, 2, 3
"""Page types (``PageType``)."""
PLAIN, PLAIN_DICTIONARY, RLE, RLE_DICTIONARY = 0, 2, 3, 8
"""The encodings (``Encoding``) :mod:`.column_slices` reads."""

_BODY = {DATA_PAGE: (5, 2), DICTIONARY_PAGE: (7, 2), DATA_PAGE_V2: (8, 4)}
"""Per page type: the header's field holding its own header, and that one's encoding field."""
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)


class PageHeaderError(ValueError):
    """Bytes that are not a page header this module reads (the caller decodes otherwise)."""


@dataclass(frozen=True)
class PageHeader:
    """One page's header: ``kind`` (a page type), the page's ``size`` in bytes after the
    header, where the page starts (``offset``: just after the header), its ``num_values``
    (nulls included), ``num_nulls`` (``None``: not in a version-1 header), the values'
    ``encoding`` and, for a version-2 page, the bytes of its levels (``levels_size``)."""

    kind: int
    offset: int
    size: int
    num_values: int
    encoding: int
    num_nulls: int | None = None
    levels_size: int = 0
    level_encoding: int = RLE
    """The encoding of a version-1 data page's definition levels."""

    @property
    def end(self) -> int:
        """The first byte after the page."""
        return self.offset + self.size


def read_page_header(data: bytes | memoryview, position: int) -> PageHeader:
    """The header of the page at ``position`` of ``data`` (a file's bytes)."""
    try:
        fields, end = _struct(data, position)
    except IndexError:
        raise PageHeaderError("a page header runs past the end of the file") from None
    except RecursionError:
        raise PageHeaderError(f"the page header at byte {position} nests too deep") from None
    kind, size = fields.get(1), fields.get(3)
    if not isinstance(kind, int) or not isinstance(size, int) or size < 0:
        raise PageHeaderError(f"no page header at byte {position}")
    body_field, encoding_field = _BODY.get(kind, (-1, -1))
    body = fields.get(body_field)
    if not isinstance(body, dict) or not isinstance(body.get(1), int) or not isinstance(body.get(encoding_field), int):
        raise PageHeaderError(f"page at byte {position}: type {kind} is not read here")
    if kind == DATA_PAGE_V2:
        return PageHeader(kind, end, size, body[1], body[4], num_nulls=body.get(2),
                          levels_size=int(body.get(5, 0)) + int(body.get(6, 0)))
    return PageHeader(kind, end, size, body[1], body[2], level_encoding=int(body.get(3, RLE)))


def _varint(data: bytes | memoryview, position: int) -> tuple[int, int]:
    """The unsigned LEB128 integer at ``position`` and the position after it."""
    byte = data[position]
    if byte < 0x80:  # (most fields of a page header fit in one byte)
        return byte, position + 1
    value, shift = byte & 0x7F, 7
    while True:
        position += 1
        byte = data[position]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position + 1
        shift += 7
        if shift > 63:
            raise PageHeaderError("a varint of a page header is too long")


def _struct(data: bytes | memoryview, position: int) -> tuple[dict[int, object], int]:
    """Thrift's compact protocol: the struct at ``position`` as ``{field id: value}`` (nested
    structs as dicts; binaries, doubles, lists and maps skipped as ``None``), and the position
    after it. Written as one loop with the integers read inline: a page header is parsed for
    every column of every row group a read first touches."""
    fields: dict[int, object] = {}
    field_id = 0
    while True:
        header = data[position]
        position += 1
        kind = header & 0x0F
        if kind == _STOP:
            return fields, position
        delta = header >> 4
        if delta:
            field_id += delta
        else:
            raw, position = _varint(data, position)
            field_id = (raw >> 1) ^ -(raw & 1)
        if kind in (_I32, _I64, _I16):
            raw, position = _varint(data, position)
            fields[field_id] = (raw >> 1) ^ -(raw & 1)
        elif kind == _STRUCT:
            fields[field_id], position = _struct(data, position)
        elif kind == _BINARY:
            length, position = _varint(data, position)
            position += length
        else:
            fields[field_id], position = _other(data, position, kind)


def _other(data: bytes | memoryview, position: int, kind: int) -> tuple[object, int]:
    """A value of a type page headers seldom hold (booleans, bytes, doubles, lists, maps)."""
    if kind in (_TRUE, _FALSE):
        return kind == _TRUE, position
    if kind == _BYTE:
        return data[position], position + 1
    if kind == _DOUBLE:
        return None, position + 8
    if kind in (_LIST, _SET):
        header = data[position]
        position += 1
        count = header >> 4
        if count == 15:
            count, position = _varint(data, position)
        for _ in range(count):
            position = _element(data, position, header & 0x0F)
        return None, position
    if kind == _MAP:
        count, position = _varint(data, position)
        if count:
            types = data[position]
            position += 1
            for _ in range(count):
                position = _element(data, position, types >> 4)
                position = _element(data, position, types & 0x0F)
        return None, position
    raise PageHeaderError(f"unknown Thrift type {kind} in a page header")


def _element(data: bytes | memoryview, position: int, kind: int) -> int:
    """The position after one element of a list or map (booleans there take a byte)."""
    if kind in (_TRUE, _FALSE):
        return position + 1
    if kind in (_I32, _I64, _I16):
        return _varint(data, position)[1]
    if kind == _STRUCT:
        return _struct(data, position)[1]
    if kind == _BINARY:
        length, position = _varint(data, position)
        return position + length
    return _other(data, position, kind)[1]


__all__ = ["DATA_PAGE", "DATA_PAGE_V2", "DICTIONARY_PAGE", "INDEX_PAGE", "PLAIN", "PLAIN_DICTIONARY", "RLE",
           "RLE_DICTIONARY", "PageHeader", "PageHeaderError", "read_page_header"]
