"""A thread-safe LRU bounded by bytes, for caches of values derived from immutable files.

Caches bounded by entry count grow with history: a table's metadata file grows with its snapshot
count, so 1,024 files of a long-lived table cost ever more memory. Every cache in Iceshelf is
bounded by an estimate of its entries' sizes instead (``CacheSettings`` gives the budgets).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ByteLRU(Generic[K, V]):
    """The most recently used values whose ``size_of`` sum stays within ``max_bytes``.

    A value larger than the whole budget is not kept. Two threads may both compute a missing value:
    values are derived from immutable inputs, so either result is right.
    """

    def __init__(self, max_bytes: int, size_of: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._values: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:
        """The charged size of what is kept."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: K) -> V | None:
        with self._lock:
            hit = self._values.get(key)
            if hit is None:
                return None
            self._values.move_to_end(key)
            return hit[0]

    def put(self, key: K, value: V) -> V:
        size = self._size_of(value)
        with self._lock:
            self._drop(key)
            if size <= self.max_bytes:
                self._values[key] = (value, size)
                self._bytes += size
                while self._bytes > self.max_bytes:
                    self._drop(next(iter(self._values)))
        return value

    def get_or_compute(self, key: K, compute: Callable[[], V]) -> V:
        hit = self.get(key)
        return hit if hit is not None else self.put(key, compute())

    def pop(self, key: K) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: K) -> None:
        gone = self._values.pop(key, None)
        if gone is not None:
            self._bytes -= gone[1]
