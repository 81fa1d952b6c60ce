"""Query timeouts on one watchdog thread.

A ``threading.Timer`` per query would start an OS thread per query, and ``Thread.start`` waits until
the new thread runs: on a busy machine that wait lands on every query's critical path. One thread
sleeping until the earliest deadline costs nothing per query but a heap push; it is woken only when a
new deadline is earlier than all others, so the usual query (same timeout as the ones before it) wakes
no thread at all.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Callable


class Deadlines:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        #: Pending actions by handle; a cancelled one is dropped here at once (its heap entry lingers,
        #: holding nothing), so a cancelled deadline keeps no query alive.
        self._actions: dict[int, Callable[[], None]] = {}
        self._ids = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def call_after(self, seconds: float, action: Callable[[], None]) -> int:
        """Run ``action`` on the watchdog thread after ``seconds``, unless cancelled first."""
        with self._wake:
            handle = next(self._ids)
            heapq.heappush(self._heap, (time.monotonic() + seconds, handle))
            self._actions[handle] = action
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="iceshelf-sql-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][1] == handle:  # only a new earliest deadline changes how long the watchdog sleeps
                self._wake.notify()
        return handle

    def cancel(self, handle: int) -> None:
        with self._wake:
            self._actions.pop(handle, None)
            if len(self._heap) > 2 * len(self._actions) + 64:  # mostly cancelled entries: rebuild, amortized O(1)
                self._heap = [entry for entry in self._heap if entry[1] in self._actions]
                heapq.heapify(self._heap)

    def _watch(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][1] not in self._actions:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                due, handle = self._heap[0]
                if due > time.monotonic():
                    self._wake.wait(due - time.monotonic())
                    continue
                heapq.heappop(self._heap)
                action = self._actions.pop(handle)
            action()
