"""Parquet's RLE / bit-packed hybrid encoding (the indices of a dictionary-encoded page):
its runs found once, then any range of its values decoded without the values before it.

A dictionary page's indices are a sequence of runs, each either one value repeated
(``RLE``) or values packed ``bit_width`` bits each in groups of eight. Knowing where each
run starts (:meth:`HybridRuns.parse`, once per page), the values ``[first, end)`` are
decoded from the runs they fall in only (:meth:`HybridRuns.take`): a read of one
instrument's 1,440 rows out of a 64 Ki-row page decodes 1,440 indices, not 64 Ki.

>>> import numpy as np
>>> # an RLE run of 3 x value 5, then 8 bit-packed values 0..7 of 3 bits each
>>> data = np.frombuffer(bytes([3 << 1, 5, (1 << 1) | 1, 0b10001000, 0b11000110, 0b11111010]), np.uint8)
>>> runs = HybridRuns.parse(data, 0, len(data), bit_width=3, count=11)
>>> runs.take(0, 11).tolist(), runs.take(2, 6).tolist()
([5, 5, 5, 0, 1, 2, 3, 4, 5, 6, 7], [5, 0, 1, 2])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cb_storage_dagster.storage.delta.page_headers import PageHeaderError


@dataclass(frozen=True)
class HybridRuns:
    """The runs of ``count`` values of ``bit_width`` bits in ``data`` (a file's bytes):
    per run, the index of its first value (``starts``, with ``count`` appended), whether it
    is one repeated value (``repeated``) and that value or, for packed runs, the byte where
    its packed values start (``payload``)."""

    data: np.ndarray
    bit_width: int
    count: int
    starts: np.ndarray
    repeated: np.ndarray
    payload: np.ndarray

    @classmethod
    def parse(cls, data: np.ndarray, start: int, end: int, *, bit_width: int, count: int) -> HybridRuns:
        """The runs of the ``count`` values encoded in ``data[start:end]``."""
        if not 0 <= bit_width <= 32:
            raise PageHeaderError(f"bit width {bit_width} of dictionary indices is not read here")
        value_bytes = (bit_width + 7) // 8
        starts, repeated, payload = [], [], []
        position, produced = start, 0
        while produced < count:
            header, position = _varint(data, position, end)
            starts.append(produced)
            if header & 1:  # groups of 8 packed values
                groups = header >> 1
                repeated.append(False)
                payload.append(position)
                position += groups * bit_width
                produced += groups * 8
            else:
                repeated.append(True)
                payload.append(int.from_bytes(data[position:position + value_bytes].tobytes(), "little"))
                position += value_bytes
                produced += header >> 1
            if position > end or (header >> 1) == 0:
                raise PageHeaderError("dictionary indices run past their page")
        return cls(data, bit_width, count, np.array([*starts, count], np.int64), np.array(repeated, bool),
                   np.array(payload, np.int64))

    def take(self, first: int, end: int, dictionary: np.ndarray | None = None) -> np.ndarray:
        """Values ``[first, end)`` as an array of int64, or, given their ``dictionary``, the
        dictionary's values they index (repeated values are looked up once per run)."""
        end = min(end, self.count)
        if end <= first:
            return np.empty(0, np.int64) if dictionary is None else dictionary[:0]
        low = int(np.searchsorted(self.starts, first, "right")) - 1
        high = int(np.searchsorted(self.starts, end, "left"))
        if high - low == 1 and self.repeated[low]:  # one run of repeats: a day's date
            code = self.payload[low]
            return np.full(end - first, code if dictionary is None else dictionary[code],
                           np.int64 if dictionary is None else dictionary.dtype)
        if bool(self.repeated[low:high].all()):  # runs of repeats only (dates, coins): one np.repeat
            bounds = self.starts[low:high + 1].copy()  # (the runs' starts, cut to [first, end))
            bounds[0], bounds[-1] = first, end
            codes = self.payload[low:high]
            return np.repeat(codes if dictionary is None else dictionary[codes], np.diff(bounds))
        dtype = np.dtype(np.int64) if dictionary is None else dictionary.dtype
        pieces = []
        for run in range(low, high):
            run_start, run_end = int(self.starts[run]), int(self.starts[run + 1])
            start, stop = max(first, run_start), min(end, run_end)
            if self.repeated[run]:
                code = self.payload[run]
                pieces.append(np.full(stop - start, code if dictionary is None else dictionary[code], dtype))
            else:
                codes = self._unpacked(int(self.payload[run]), start - run_start, stop - run_start)
                pieces.append(codes if dictionary is None else dictionary[codes])
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def _unpacked(self, byte: int, first: int, end: int) -> np.ndarray:
        """Values ``[first, end)`` of the packed run whose bytes start at ``byte``."""
        width = self.bit_width
        if width == 0:
            return np.zeros(end - first, np.int64)
        low_bit, high_bit = first * width, end * width
        chunk = self.data[byte + low_bit // 8:byte + (high_bit + 7) // 8]
        bits = np.unpackbits(chunk, bitorder="little")[low_bit % 8:low_bit % 8 + high_bit - low_bit]
        return bits.reshape(end - first, width).astype(np.int64) @ (np.int64(1) << np.arange(width, dtype=np.int64))


def _varint(data: np.ndarray, position: int, end: int) -> tuple[int, int]:
    """The unsigned LEB128 integer at ``position`` and the position after it."""
    shift = value = 0
    while position < end and shift < 64:
        byte = int(data[position])
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
    raise PageHeaderError("a run header of dictionary indices runs past its page")


__all__ = ["HybridRuns"]
