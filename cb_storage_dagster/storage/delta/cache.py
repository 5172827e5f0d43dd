"""A small thread-safe bounded cache (least recently used goes first).

The Delta reader keeps two kinds of facts that never change once computed: a table
version's add actions (keyed by URI, table id and version) and what a data file holds
(keyed by the file's path: Delta data files are never rewritten in place). Both live in a
:class:`BoundedCache`, so memory stays bounded however many versions and files a
long-running process sees.

>>> cache = BoundedCache[str, int](max_entries=2)
>>> cache.put("a", 1); cache.put("b", 2); cache.put("c", 3)
>>> cache.get("a") is None, cache.get("c")
(True, 3)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """At most ``max_entries`` values and, with ``weigh``, at most ``max_weight`` of their
    summed weights (``weigh(value)``, e.g. estimated bytes, taken once when the value is put);
    a lookup makes its entry the most recently used.

    >>> sized = BoundedCache[str, bytes](max_entries=10, weigh=len, max_weight=5)
    >>> sized.put("a", b"abc"); sized.put("b", b"de"); sized.put("c", b"f")
    >>> sized.get("a") is None, len(sized), sized.weight
    (True, 2, 3)
    """

    def __init__(self, *, max_entries: int, weigh: Callable[[V], int] | None = None,
                 max_weight: int | None = None) -> None:
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._weights: dict[K, int] = {}
        self._max_entries = max_entries
        self._weigh = weigh
        self._max_weight = max_weight
        self._lock = threading.Lock()
        self.weight = 0
        """The summed weights of the cached values (0 without ``weigh``)."""

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The value of ``key``, or ``None`` if it is not (or no longer) cached."""
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def get_many(self, keys: Iterable[K]) -> tuple[list[V], list[int]]:
        """The cached values among ``keys`` (in order) and the positions of those missing."""
        found: list[V] = []
        missing: list[int] = []
        with self._lock:
            for position, key in enumerate(keys):
                value = self._entries.get(key)
                if value is None:
                    missing.append(position)
                else:
                    self._entries.move_to_end(key)
                    found.append(value)
        return found, missing

    def values(self) -> list[V]:
        """The cached values, least recently used first (a snapshot; no entry is touched)."""
        with self._lock:
            return list(self._entries.values())

    def put(self, key: K, value: V) -> None:
        """Cache ``value`` under ``key``, evicting the least recently used beyond the bound."""
        weight = self._weigh(value) if self._weigh is not None else 0
        with self._lock:
            self.weight += weight - self._weights.pop(key, 0)
            self._entries[key] = value
            self._entries.move_to_end(key)
            if weight:
                self._weights[key] = weight
            while len(self._entries) > 1 and (len(self._entries) > self._max_entries or (
                    self._max_weight is not None and self.weight > self._max_weight)):
                evicted, _ = self._entries.popitem(last=False)
                self.weight -= self._weights.pop(evicted, 0)


__all__ = ["BoundedCache"]
