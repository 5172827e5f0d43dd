"""String columns built from bytes with numpy, for sources that make millions of rows at once.

An exchange-day of 2,000 instruments is 5.76 M trades: casting dictionary arrays to strings
and joining a prefix to a padded number per row cost the synthetic source ~1.5 s of its ~5 s.
These build the Arrow ``large_string`` buffers (offsets and bytes) directly, in the shape
pandas' Arrow-backed ``str`` dtype holds them, so no row becomes a Python object.

Example:
    >>> repeated_strings(["BTC", "ETH"], 2).to_pylist()
    ['BTC', 'BTC', 'ETH', 'ETH']
    >>> numbered_strings(["b-BTC-", "b-ETH-"], 2, width=3).to_pylist()
    ['b-BTC-001', 'b-BTC-002', 'b-ETH-001', 'b-ETH-002']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

__all__ = ["numbered_strings", "repeated_strings"]


def _from_parts(lengths: np.ndarray, data: np.ndarray | bytes) -> pa.LargeStringArray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.LargeStringArray.from_buffers(len(lengths), pa.py_buffer(offsets), pa.py_buffer(data))


def repeated_strings(values: Sequence[str], count: int) -> pa.LargeStringArray:
    """Each of ``values`` ``count`` times, in order."""
    encoded = [value.encode() for value in values]
    lengths = np.repeat(np.array([len(e) for e in encoded], dtype=np.int64), count)
    return _from_parts(lengths, b"".join(e * count for e in encoded))


def numbered_strings(prefixes: Sequence[str], count: int, *, width: int) -> pa.LargeStringArray:
    """For each prefix, ``prefix + n`` for n = 1..``count``, zero-padded to ``width`` digits
    (more digits where ``count`` needs them)."""
    width = max(width, len(str(count)))
    numbers = np.arange(1, count + 1, dtype=np.int64)
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = ((numbers[:, None] // powers) % 10 + ord("0")).astype(np.uint8)  # (count, width)
    blocks = []
    lengths = np.empty(len(prefixes) * count, dtype=np.int64)
    for index, prefix in enumerate(prefixes):
        head = np.frombuffer(prefix.encode(), dtype=np.uint8)
        block = np.empty((count, len(head) + width), dtype=np.uint8)
        block[:, : len(head)] = head
        block[:, len(head):] = digits
        blocks.append(block.reshape(-1))
        lengths[index * count:(index + 1) * count] = len(head) + width
    data = np.concatenate(blocks) if blocks else np.empty(0, dtype=np.uint8)
    return _from_parts(lengths, data)
