"""Small data files on an object store, fetched whole in one request and kept in memory.

A data file read through its footer costs two round trips the first time (the footer, then
the needed column chunks) and one on every later read. A small file (one instrument's day:
~80 KB; an exchange-day of a few instruments) is cheaper fetched whole: one request with no
footer round trip first, and then it is kept, bounded by total size (least recently used
out), so a warm read of it costs no request at all. Delta data files never change once
written, so the kept bytes are never stale: a rewritten day is a new file with a new path.
Only reads of a table's latest version use them: a read of a past version fetches, so that a
version whose files a vacuum removed fails here as it does in any other process.

Large files (above :data:`WHOLE_FILE_MAX_BYTES`, e.g. an exchange-day of thousands of
instruments, of which a read wants one) keep the ranged reads of their needed row groups.

>>> cache = SmallFiles(max_bytes=10)
>>> cache.get_or_fetch(("t", "a", 6), lambda: pa.py_buffer(b"abcdef")).to_pybytes()
b'abcdef'
>>> cache.get_or_fetch(("t", "b", 6), lambda: pa.py_buffer(b"ghijkl")).size, cache.held_bytes
(6, 6)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import pyarrow as pa

__all__ = ["SMALL_FILES_CACHE_BYTES", "WHOLE_FILE_MAX_BYTES", "SmallFiles"]

WHOLE_FILE_MAX_BYTES = 2 << 20
"""Remote data files up to this size (2 MiB, ~30 one-instrument days of 1-minute candles) are
fetched whole: at object-store bandwidths that costs about what one round trip costs."""
SMALL_FILES_CACHE_BYTES = 128 << 20
"""Bytes of small remote files kept per process (128 MiB: ~1,600 one-instrument days)."""

FileKey = tuple[str, str, int]


class SmallFiles:
    """Whole bytes of small remote files, bounded by their total size. Thread-safe; two
    threads missing the same file may both fetch it (the bytes are identical)."""

    def __init__(self, *, max_bytes: int = SMALL_FILES_CACHE_BYTES) -> None:
        self._buffers: OrderedDict[FileKey, pa.Buffer] = OrderedDict()
        self._max_bytes = max_bytes
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held_bytes(self) -> int:
        return self._held

    @staticmethod
    def fetched_whole(size: int) -> bool:
        """Whether a remote file of ``size`` bytes is fetched whole (and kept)."""
        return size <= WHOLE_FILE_MAX_BYTES

    def get_or_fetch(self, key: FileKey, fetch: Callable[[], pa.Buffer]) -> pa.Buffer:
        """The bytes of file ``key``, kept or fetched by ``fetch`` (then kept)."""
        with self._lock:
            buffer = self._buffers.get(key)
            if buffer is not None:
                self._buffers.move_to_end(key)
                return buffer
        buffer = fetch()
        if buffer.size > self._max_bytes:
            return buffer
        with self._lock:
            if key not in self._buffers:
                self._buffers[key] = buffer
                self._held += buffer.size
            while self._held > self._max_bytes:
                _, evicted = self._buffers.popitem(last=False)
                self._held -= evicted.size
        return buffer
