"""The object-store contract every backend honours.

Modelled on Rust's ``object_store`` ``PutMode`` and zarr's small ``Store``: a handful of
operations, with conditional writes as first-class modes rather than a racy
check-then-write. Keys are ``/``-separated paths relative to the store's root.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from typing import Iterator

_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _normalize_escape(match: re.Match[str]) -> str:
    char = chr(int(match[1], 16))
    return char if char in _UNRESERVED else f"%{match[1].upper()}"


def normalize_uri(uri: str) -> str:
    """The one spelling of a location URI that every location check and key mapping compares.

    Hadoop's ``s3a://`` and ``s3n://`` are ``s3://``. RFC 8089 gives a local file several spellings -- ``file:/x`` (Java's ``File.toURI()``, Hadoop),
    ``file:///x``, ``file://localhost/x`` -- which all become ``file:///x``; and, per RFC 3986 §6.2.2,
    the scheme is lower-cased, percent-escapes are upper-cased and escapes of unreserved characters
    decoded (``%7E`` is ``~``). Reserved characters stay escaped: ``a%2Fb`` is one path segment.
    A URI naming another host (``file://server/x``) keeps its authority, and so matches no local store.
    """
    scheme, colon, rest = uri.partition(":")
    if not colon or "/" in scheme:
        return uri
    scheme = scheme.lower()
    if scheme in ("s3a", "s3n"):  # Hadoop's names for the same S3 objects
        scheme = "s3"
    if scheme == "file":
        if rest.startswith("//"):
            authority, slash, path = rest[2:].partition("/")
            if authority.lower() in ("", "localhost"):
                rest = "///" + path
        elif rest.startswith("/"):
            rest = "//" + rest
    return _ESCAPE.sub(_normalize_escape, f"{scheme}:{rest}")


class ObjectStoreError(Exception):
    """Base of every outcome a store reports; backends raise nothing else for expected outcomes."""


class ObjectNotFound(ObjectStoreError):
    """The key does not exist."""


class ObjectAlreadyExists(ObjectStoreError):
    """A ``Create`` lost: the key already exists."""


class PreconditionFailed(ObjectStoreError):
    """An ``Update`` lost: the key's etag moved on, or the key is gone."""


class StoreUnavailable(ObjectStoreError, OSError):
    """The store failed to answer, after the backend's own bounded retries: a transient fault.

    A read or listing that raises it changed nothing. A write may or may not have landed when
    the request was sent (``sent``): a conditional write is never retried blindly, so its caller
    (the commit path's reconciliation) decides what happened. ``retry_after_s`` is the client's
    hint: how long the store is expected to need. Each subclass is one failure class; the catalog
    maps them all to 503 (see ARCHITECTURE.md, "Failures").
    """

    retry_after_s: float = 1.0

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class StoreUnreachable(StoreUnavailable):
    """No connection could be made (refused, no route, connect timeout): the request was never sent."""

    def __init__(self, message: str, *, sent: bool = False) -> None:
        super().__init__(message, sent=sent)


class StoreConnectionLost(StoreUnavailable):
    """The connection was reset or the response cut off mid-body."""


class StoreTimeout(StoreUnavailable):
    """The store stopped answering: no byte within the read timeout, or the retry budget ran out."""


class StoreServerError(StoreUnavailable):
    """The store answered 5xx."""


class StoreThrottled(StoreUnavailable):
    """The store asked us to slow down (503 SlowDown, 429, RequestLimitExceeded)."""

    retry_after_s = 2.0


@dataclass(frozen=True)
class Create:
    """Write only if the key does not exist (S3 ``If-None-Match: *``)."""


@dataclass(frozen=True)
class Overwrite:
    """Write unconditionally."""


@dataclass(frozen=True)
class Update:
    """Write only if the key's current etag is ``etag`` (S3 ``If-Match``): a compare-and-swap."""

    etag: str


PutMode = Create | Overwrite | Update

CREATE = Create()
OVERWRITE = Overwrite()


@dataclass(frozen=True)
class ObjectMeta:
    key: str
    size: int
    etag: str
    last_modified_ms: int


@dataclass(frozen=True)
class GetResult:
    data: bytes
    etag: str


class ObjectStore(abc.ABC):
    """A strongly consistent key/value store of immutable-per-version objects.

    Every method is thread-safe. ``put`` returns the new etag, the token for the next
    compare-and-swap. Conditional modes are abstract on purpose: no backend may inherit a
    check-then-write default, because that is exactly the lost-update bug this layer exists
    to prevent.
    """

    #: URI of the store's root, e.g. ``file:///srv/wh`` or ``s3://bucket/prefix``.
    root_uri: str

    @abc.abstractmethod
    def get(self, key: str) -> GetResult:
        """Return the object's bytes and etag, or raise ``ObjectNotFound``."""

    @abc.abstractmethod
    def head(self, key: str) -> ObjectMeta:
        """Return the object's metadata, or raise ``ObjectNotFound``."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes, mode: PutMode = OVERWRITE) -> str:
        """Write ``data`` under ``key`` honouring ``mode``; return the new etag."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error (S3 semantics)."""

    @abc.abstractmethod
    def list_page(self, prefix: str, start_after: str | None = None, limit: int = 1000) -> list[ObjectMeta]:
        """Return up to ``limit`` objects whose key starts with ``prefix``, in key order, after ``start_after``."""

    def list(self, prefix: str = "") -> Iterator[ObjectMeta]:
        """Every object under ``prefix`` in key order, fetched page by page."""
        start_after: str | None = None
        while True:
            page = self.list_page(prefix, start_after)
            yield from page
            if not page:
                return
            start_after = page[-1].key

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    def uri(self, key: str) -> str:
        """The absolute URI of ``key``, as written into Iceberg metadata."""
        return f"{self.root_uri.rstrip('/')}/{key}"

    def key_of(self, uri: str) -> str | None:
        """The key for an absolute URI inside this store, or ``None`` if it lies outside.

        Both sides are compared in ``normalize_uri``'s spelling, so ``file:/wh/t`` is inside ``file:///wh``."""
        root = normalize_uri(self.root_uri).rstrip("/") + "/"
        uri = normalize_uri(uri)
        return uri[len(root):] if uri.startswith(root) else None

    def resolve(self, key: str) -> tuple["ObjectStore", str]:
        """The store that holds ``key`` and its key there: this one, unless it mounts others."""
        return self, key

    @property
    def root_uris(self) -> tuple[str, ...]:
        """Every root this store reaches: its own, and for a warehouse with allowed locations, theirs."""
        return (self.root_uri,)

    def ensure_prefix(self, prefix: str) -> None:
        """Make ``prefix`` writable for clients that write files straight to the store, not through it.

        Object stores have no directories, so by default there is nothing to do; a filesystem
        has them, and DuckDB writing a staged table's first manifest into ``metadata/`` needs it to
        exist already.
        """

    def close(self) -> None:
        """Release connections; the default store holds none."""
