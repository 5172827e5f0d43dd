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
    reader = _CompactReader(data, position)
    fields = reader.struct()
    kind, size = fields.get(1), fields.get(3)
    if not isinstance(kind, int) or not isinstance(size, int) or size < 0:
        raise PageHeaderError(f"no page header at byte {position}")
    body_field, encoding_field = _BODY.get(kind, (-1, -1))
    body = fields.get(body_field)
    if not isinstance(body, dict) or not isinstance(body.get(1), int) or not isinstance(body.get(encoding_field), int):
        raise PageHeaderError(f"page at byte {position}: type {kind} is not read here")
    if kind == DATA_PAGE_V2:
        return PageHeader(kind, reader.position, size, body[1], body[4], num_nulls=body.get(2),
                          levels_size=int(body.get(5, 0)) + int(body.get(6, 0)))
    return PageHeader(kind, reader.position, size, body[1], body[2], level_encoding=int(body.get(3, RLE)))


class _CompactReader:
    """Thrift's compact protocol, reading structs into ``{field id: value}`` (nested structs
    as dicts, lists and maps skipped as ``None``)."""

    def __init__(self, data: bytes | memoryview, position: int) -> None:
        self.data, self.position = data, position

    def byte(self) -> int:
        try:
            value = self.data[self.position]
        except IndexError:
            raise PageHeaderError("a page header runs past the end of the file") from None
        self.position += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise PageHeaderError("a varint of a page header is too long")

    def zigzag(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)

    def struct(self) -> dict[int, object]:
        fields: dict[int, object] = {}
        field_id = 0
        while True:
            header = self.byte()
            kind = header & 0x0F
            if kind == _STOP:
                return fields
            delta = header >> 4
            field_id = field_id + delta if delta else self.zigzag()
            fields[field_id] = self.value(kind)

    def value(self, kind: int) -> object:
        if kind in (_TRUE, _FALSE):
            return kind == _TRUE
        if kind == _BYTE:
            return self.byte()
        if kind in (_I16, _I32, _I64):
            return self.zigzag()
        if kind == _DOUBLE:
            self.position += 8
            return None
        if kind == _BINARY:
            length = self.varint()  # (read before the position it moves is added to)
            self.position += length
            return None
        if kind in (_LIST, _SET):
            header = self.byte()
            count = header >> 4 if header >> 4 != 15 else self.varint()
            for _ in range(count):
                self.element(header & 0x0F)
            return None
        if kind == _MAP:
            count = self.varint()
            if count:
                types = self.byte()
                for _ in range(count):
                    self.element(types >> 4)
                    self.element(types & 0x0F)
            return None
        if kind == _STRUCT:
            return self.struct()
        raise PageHeaderError(f"unknown Thrift type {kind} in a page header")

    def element(self, kind: int) -> None:
        """One element of a list or map (booleans there take a byte)."""
        if kind in (_TRUE, _FALSE):
            self.position += 1
        else:
            self.value(kind)


__all__ = ["DATA_PAGE", "DATA_PAGE_V2", "DICTIONARY_PAGE", "INDEX_PAGE", "PLAIN", "PLAIN_DICTIONARY", "RLE",
           "RLE_DICTIONARY", "PageHeader", "PageHeaderError", "read_page_header"]
