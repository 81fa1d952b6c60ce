"""Namespaces as objects: create-if-absent, properties by compare-and-swap, a two-phase drop.

Dropping a namespace must not strand a table created at the same moment. The drop therefore
first marks the namespace ``dropping`` (a CAS), then lists its entries and children, and only
then deletes it (or reverts the mark). A creator writes its entry first and re-reads the
namespace after: an entry written before the mark is seen by the drop's listing, an entry
written after it sees the mark and withdraws. A mark left by a crashed drop expires.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field

from iceshelf.tables import clock
from iceshelf.tables.errors import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NamespaceNotEmptyError,
    NoSuchNamespaceError,
    UnprocessableEntityError,
)
from iceshelf.tables.names import Namespace
from iceshelf.tables.objectstore import (
    CREATE,
    ObjectAlreadyExists,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    PutMode,
    Update,
)
from iceshelf.tables.retry import backoff
from iceshelf.tables.state.keys import entries_prefix, namespace_from_key, namespace_key, namespaces_prefix
from iceshelf.tables.state.pointer import TOMBSTONES, Pointer

log = logging.getLogger("iceshelf.tables")

#: A ``dropping`` mark older than this belongs to a drop that died; it no longer hides the namespace.
DROP_MARK_TTL_MS = 30_000


@dataclass(frozen=True)
class NamespaceRecord:
    properties: dict[str, str]
    dropping_since_ms: int | None = None
    #: A dropped namespace's tombstone: the name is free, and a later create takes it over by CAS.
    #: (Deleting it would race with that create, as deletes are not conditional.)
    dropped: bool = False
    #: Unique per written version: identifies our own write when its response was lost.
    token: str = field(default_factory=lambda: uuid.uuid4().hex, compare=False)
    etag: str = field(default="", compare=False)

    @property
    def dropping(self) -> bool:
        return self.dropping_since_ms is not None and clock.now_ms() - self.dropping_since_ms < DROP_MARK_TTL_MS

    def to_bytes(self) -> bytes:
        doc = {"properties": self.properties, "dropping-since-ms": self.dropping_since_ms, "token": self.token}
        if self.dropped:
            doc["dropped"] = True
        return json.dumps(doc).encode()

    @classmethod
    def parse(cls, data: bytes, etag: str) -> "NamespaceRecord":
        doc = json.loads(data)
        return cls(doc.get("properties") or {}, doc.get("dropping-since-ms"), doc.get("dropped", False), doc.get("token", ""), etag)


@dataclass(frozen=True)
class PropertiesUpdate:
    updated: list[str]
    removed: list[str]
    missing: list[str]


class Namespaces:
    def __init__(self, store: ObjectStore, attempts: int = 20) -> None:
        self.store = store
        self.attempts = attempts

    def _read_raw(self, namespace: Namespace) -> NamespaceRecord | None:
        try:
            got = self.store.get(namespace_key(namespace))
        except ObjectNotFound:
            return None
        return NamespaceRecord.parse(got.data, got.etag)

    def _read(self, namespace: Namespace) -> NamespaceRecord | None:
        """The namespace, or ``None`` if it does not exist (never created, or dropped)."""
        record = self._read_raw(namespace)
        return None if record is None or record.dropped else record

    def _write(self, namespace: Namespace, record: NamespaceRecord, mode: PutMode) -> None:
        """Put ``record``; after a failed request (not a lost race), find out whether it landed.

        Our token in the stored record means it did. Otherwise the same conditional write is sent
        again: it and the lost one have the same condition, so at most one of them can land.
        """
        for attempt in range(self.attempts):
            try:
                self.store.put(namespace_key(namespace), record.to_bytes(), mode)
                return
            except (ObjectAlreadyExists, PreconditionFailed):
                raise
            except Exception:
                if attempt == self.attempts - 1:
                    raise
                current = self._read_raw(namespace)
                if current is not None and current.token == record.token:
                    return
                backoff(attempt)

    def _remove(self, namespace: Namespace) -> None:
        """Delete is idempotent, so a failed one is simply sent again."""
        for attempt in range(self.attempts):
            try:
                self.store.delete(namespace_key(namespace))
                return
            except Exception:
                if attempt == self.attempts - 1:
                    raise
                backoff(attempt)

    def load(self, namespace: Namespace) -> dict[str, str]:
        record = self._read(namespace)
        if record is None:
            raise NoSuchNamespaceError(f"Namespace does not exist: {'.'.join(namespace)}")
        return record.properties

    def exists(self, namespace: Namespace) -> bool:
        return self._read(namespace) is not None

    def require_open(self, namespace: Namespace) -> None:
        """Raise unless the namespace exists and is not being dropped: new entries may be placed in it.

        A mark that outlived ``DROP_MARK_TTL_MS`` is cleared by CAS before the namespace counts as
        open: that fences the stalled drop, whose final CAS from its marked version then fails.
        """
        for attempt in range(self.attempts):
            record = self._read(namespace)
            if record is None:
                raise NoSuchNamespaceError(f"Namespace does not exist: {'.'.join(namespace)}")
            if record.dropping:
                raise NoSuchNamespaceError(f"Namespace is being dropped: {'.'.join(namespace)}")
            if record.dropping_since_ms is None:
                return
            try:
                self._write(namespace, NamespaceRecord(record.properties), Update(record.etag))
                return
            except PreconditionFailed:
                backoff(attempt)
        raise CommitFailedException(f"Too much contention on namespace {'.'.join(namespace)}")

    def create(self, namespace: Namespace, properties: dict[str, str]) -> dict[str, str]:
        if len(namespace) > 1:
            self.require_open(namespace[:-1])
        self._claim(namespace, NamespaceRecord(dict(properties)))
        if len(namespace) > 1:
            self._withdraw_if_parent_closed(namespace)
        return dict(properties)

    def _claim(self, namespace: Namespace, record: NamespaceRecord) -> None:
        """Create the namespace's record, or take over a dropped namespace's tombstone by CAS."""
        for attempt in range(self.attempts):
            try:
                self._write(namespace, record, CREATE)
                return
            except ObjectAlreadyExists:
                pass
            existing = self._read_raw(namespace)
            if existing is None:
                continue
            if not existing.dropped:
                raise NamespaceAlreadyExistsError(f"Namespace already exists: {'.'.join(namespace)}")
            try:
                self._write(namespace, record, Update(existing.etag))
                return
            except PreconditionFailed:
                backoff(attempt)
        raise CommitFailedException(f"Too much contention creating namespace {'.'.join(namespace)}")

    def _withdraw_if_parent_closed(self, namespace: Namespace) -> None:
        try:
            self.require_open(namespace[:-1])
        except NoSuchNamespaceError:
            self._remove(namespace)
            raise

    def list(self, parent: Namespace = ()) -> list[Namespace]:
        """Direct children of ``parent`` (top-level namespaces for ``()``), sorted."""
        if parent:
            if self._read(parent) is None:
                raise NoSuchNamespaceError(f"Namespace does not exist: {'.'.join(parent)}")
        found = (namespace_from_key(meta.key) for meta in self.store.list(namespaces_prefix()))
        children = [ns for ns in found if len(ns) == len(parent) + 1 and ns[: len(parent)] == parent]
        return sorted(ns for ns in children if self._read(ns) is not None)

    def update_properties(self, namespace: Namespace, removals: list[str], updates: dict[str, str]) -> PropertiesUpdate:
        overlap = set(removals) & set(updates)
        if overlap:
            raise UnprocessableEntityError(f"Properties both updated and removed: {sorted(overlap)}")
        for attempt in range(self.attempts):
            record = self._read(namespace)
            if record is None:
                raise NoSuchNamespaceError(f"Namespace does not exist: {'.'.join(namespace)}")
            properties = {k: v for k, v in record.properties.items() if k not in removals}
            properties.update(updates)
            new = NamespaceRecord(properties, record.dropping_since_ms)
            try:
                self._write(namespace, new, Update(record.etag))
            except PreconditionFailed:
                backoff(attempt)
                continue
            return PropertiesUpdate(
                updated=sorted(updates),
                removed=sorted(k for k in removals if k in record.properties),
                missing=sorted(k for k in removals if k not in record.properties),
            )
        raise CommitFailedException(f"Too much contention updating namespace {'.'.join(namespace)}")

    def drop(self, namespace: Namespace) -> None:
        for attempt in range(self.attempts):
            record = self._read(namespace)
            if record is None:
                raise NoSuchNamespaceError(f"Namespace does not exist: {'.'.join(namespace)}")
            marked = NamespaceRecord(record.properties, clock.now_ms())
            try:
                self._write(namespace, marked, Update(record.etag))
            except PreconditionFailed:
                backoff(attempt)
                continue
            if self._has_contents(namespace):
                self._unmark(namespace)
                raise NamespaceNotEmptyError(f"Namespace is not empty: {'.'.join(namespace)}")
            current = self._read(namespace)
            if current is None or current.token != marked.token:
                backoff(attempt)  # fenced (our mark expired and a creator cleared it) or changed: look again
                continue
            try:  # the commit point: a CAS from exactly the version we marked and found empty
                self._write(namespace, NamespaceRecord(record.properties, dropped=True), Update(current.etag))
            except PreconditionFailed:
                backoff(attempt)
                continue
            self._clear_tombstones(namespace)
            return
        raise CommitFailedException(f"Too much contention dropping namespace {'.'.join(namespace)}")

    def _has_contents(self, namespace: Namespace) -> bool:
        """Tables, views, renames in flight or child namespaces; rename tombstones do not count."""
        for meta in self.store.list(entries_prefix(namespace)):
            try:
                pointer = Pointer.from_bytes(self.store.get(meta.key).data)
            except ObjectNotFound:
                continue
            if pointer.state not in TOMBSTONES:
                return True
        return bool(self.list(namespace))

    def _clear_tombstones(self, namespace: Namespace) -> None:
        """After the drop committed, best effort: leftover tombstones are free names, harmless."""
        try:
            for meta in list(self.store.list(entries_prefix(namespace))):
                self.store.delete(meta.key)
        except Exception:
            log.warning("dropped %s; clearing its tombstones failed", ".".join(namespace), exc_info=True)

    def _unmark(self, namespace: Namespace) -> None:
        """Clear the ``dropping`` mark, keeping any property update that landed on top of it."""
        for _ in range(self.attempts):
            record = self._read(namespace)
            if record is None or record.dropping_since_ms is None:
                return
            try:
                self._write(namespace, NamespaceRecord(record.properties), Update(record.etag))
                return
            except PreconditionFailed:
                continue
