"""A coverage heatmap as a PNG, written with ``zlib`` only (no imaging library needed).

One row per instrument (sorted, as in ``cb-storage coverage --grid``), one column per day
(oldest left); green complete, amber partial, red missing, white lines between cells.

Example:
    >>> import datetime as dt, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.png"
    >>> write_heatmap(path, [["complete", "missing"], ["partial", "complete"]])
    >>> path.read_bytes()[:8] == PNG_SIGNATURE
    True
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

__all__ = ["COLOURS", "PNG_SIGNATURE", "encode_png", "write_heatmap"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOURS: dict[str, tuple[int, int, int]] = {
    "complete": (46, 160, 67),
    "partial": (240, 173, 78),
    "missing": (217, 83, 79),
}
_GRID = (255, 255, 255)


def encode_png(pixels: Sequence[bytes], width: int) -> bytes:
    """An 8-bit RGB PNG of ``pixels`` (one ``bytes`` of ``3 * width`` per row)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, len(pixels), 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in pixels)  # filter type 0 on every scanline
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def write_heatmap(path: Path, states: Sequence[Sequence[str]], *, cell: int = 12) -> None:
    """Write ``states`` (rows of ``complete`` / ``partial`` / ``missing``) as a heatmap of
    ``cell`` x ``cell`` pixel squares with a one-pixel grid."""
    columns = max((len(row) for row in states), default=0)
    if not states or columns == 0:
        raise ValueError("A heatmap needs at least one instrument and one day.")
    pitch = cell + 1
    width = columns * pitch + 1
    grid_row = bytes(_GRID) * width
    pixels = [grid_row]
    for row in states:
        line = bytearray(_GRID)
        for state in row:
            line += bytes(COLOURS[state]) * cell + bytes(_GRID)
        line += bytes(_GRID) * (width - len(line) // 3)
        pixels.extend([bytes(line)] * cell)
        pixels.append(grid_row)
    Path(path).write_bytes(encode_png(pixels, width))
