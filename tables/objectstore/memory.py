"""In-memory store: the reference semantics, used by unit tests and the model checks."""

from __future__ import annotations

import threading
import time
from itertools import count

from iceshelf.tables.objectstore.base import (
    Create,
    GetResult,
    ObjectAlreadyExists,
    ObjectMeta,
    ObjectNotFound,
    ObjectStore,
    Overwrite,
    PreconditionFailed,
    PutMode,
    Update,
)


class MemoryStore(ObjectStore):
    def __init__(self, root_uri: str = "memory://warehouse") -> None:
        self.root_uri = root_uri
        self._objects: dict[str, tuple[bytes, str, int]] = {}
        self._lock = threading.Lock()
        self._versions = count(1)

    def get(self, key: str) -> GetResult:
        with self._lock:
            try:
                data, etag, _ = self._objects[key]
            except KeyError:
                raise ObjectNotFound(key) from None
        return GetResult(data, etag)

    def head(self, key: str) -> ObjectMeta:
        with self._lock:
            try:
                data, etag, modified = self._objects[key]
            except KeyError:
                raise ObjectNotFound(key) from None
        return ObjectMeta(key, len(data), etag, modified)

    def put(self, key: str, data: bytes, mode: PutMode = Overwrite()) -> str:
        with self._lock:
            current = self._objects.get(key)
            match mode:
                case Create() if current is not None:
                    raise ObjectAlreadyExists(key)
                case Update(etag=expected) if current is None or current[1] != expected:
                    raise PreconditionFailed(key)
            etag = f"v{next(self._versions)}"
            self._objects[key] = (bytes(data), etag, int(time.time() * 1000))
        return etag

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def list_page(self, prefix: str, start_after: str | None = None, limit: int = 1000) -> list[ObjectMeta]:
        with self._lock:
            keys = sorted(k for k in self._objects if k.startswith(prefix) and (start_after is None or k > start_after))
            return [ObjectMeta(k, len(self._objects[k][0]), self._objects[k][1], self._objects[k][2]) for k in keys[:limit]]
