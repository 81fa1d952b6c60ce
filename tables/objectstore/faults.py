"""Fault injection around any store: crash the caller, or fail a request, at the N-th operation.

Crash consistency is measured, not promised: the crash-matrix tests run every catalog
operation with a crash injected at each object-store operation in turn, restart on the same
store, and check the invariants. A "crash" stops the caller's progress right there
(``SimulatedCrash`` is a ``BaseException``, so no ``except Exception`` in the code under test
can swallow it); an injected error is what a flaky S3 does (a 500 or a timeout), which code
must survive. ``when="after"`` performs the operation first and then fails: the request
landed but its response was lost -- the case that makes an outcome unknown.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Iterator, Literal

from iceshelf.tables.objectstore.base import (
    GetResult,
    ObjectMeta,
    ObjectStore,
    Overwrite,
    PutMode,
    StoreServerError,
)

When = Literal["before", "after"]


class SimulatedCrash(BaseException):
    """The process "died" at this operation; nothing after it ran."""


class InjectedFault(StoreServerError):
    """A transient storage fault (a 5xx after the backend's retries) injected by a test: typed as a real one."""


@dataclass
class Fault:
    #: 0-based index of the operation to fail, counted over every operation of the store.
    at: int
    when: When = "before"
    crash: bool = True
    #: Only operations of these kinds count (None: all): "get", "head", "put", "delete", "list".
    kinds: frozenset[str] | None = None


@dataclass
class FaultyStore(ObjectStore):
    inner: ObjectStore
    fault: Fault | None = None
    #: Every operation performed, as (kind, key): what a test counts crash points over.
    log: list[tuple[str, str]] = field(default_factory=list)
    fired: bool = False
    _counted: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.root_uri = self.inner.root_uri

    def _op(self, kind: str, key: str, run):
        with self._lock:
            counts = self.fault is None or self.fault.kinds is None or kind in self.fault.kinds
            hit = self.fault is not None and counts and not self.fired and self._counted == self.fault.at
            self.fired = self.fired or hit
            self._counted += counts
            self.log.append((kind, key))
        if hit and self.fault.when == "before":
            self._fail(kind, key)
        result = run()
        if hit and self.fault.when == "after":
            self._fail(kind, key)
        return result

    def _fail(self, kind: str, key: str) -> None:
        if self.fault.crash:
            raise SimulatedCrash(f"crash at {kind} {key}")
        raise InjectedFault(f"injected fault at {kind} {key}")

    def get(self, key: str) -> GetResult:
        return self._op("get", key, lambda: self.inner.get(key))

    def head(self, key: str) -> ObjectMeta:
        return self._op("head", key, lambda: self.inner.head(key))

    def put(self, key: str, data: bytes, mode: PutMode = Overwrite()) -> str:
        return self._op("put", key, lambda: self.inner.put(key, data, mode))

    def delete(self, key: str) -> None:
        return self._op("delete", key, lambda: self.inner.delete(key))

    def list_page(self, prefix: str, start_after: str | None = None, limit: int = 1000) -> list[ObjectMeta]:
        return self._op("list", prefix, lambda: self.inner.list_page(prefix, start_after, limit))

    def list(self, prefix: str = "") -> Iterator[ObjectMeta]:
        return iter(self._op("list", prefix, lambda: list(self.inner.list(prefix))))

    def uri(self, key: str) -> str:
        return self.inner.uri(key)

    def key_of(self, uri: str) -> str | None:
        return self.inner.key_of(uri)

    def resolve(self, key: str) -> tuple[ObjectStore, str]:
        holder, inner_key = self.inner.resolve(key)
        return (self, key) if holder is self.inner else (holder, inner_key)

    @property
    def root_uris(self) -> tuple[str, ...]:
        return self.inner.root_uris
