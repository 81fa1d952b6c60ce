"""Pointer objects: the one mutable object per table or view.

A pointer names the current metadata file. Everything else a table has is immutable, so the
whole catalog's consistency rests on swinging pointers with compare-and-swap. A pointer also
carries the two transient states of a rename, so that a crash mid-rename is recoverable by
whoever next touches either name (see ``tables.rename``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from iceshelf.tables import clock
from iceshelf.tables.names import Identifier

Kind = Literal["table", "view"]
#: ``active``: visible and committable. ``pending``: the target of an unfinished rename, not yet
#: visible. ``moved``: the source of a rename (its target may still be pending). ``aborted``: a
#: pending target that was rolled back. ``dropped``: a dropped or unregistered entry. These three are
#: tombstones: free names that a later create takes over by compare-and-swap, since an
#: unconditional delete could race with that create.
State = Literal["active", "pending", "moved", "aborted", "dropped"]
TOMBSTONES = ("moved", "aborted", "dropped")
KEPT_KEYS = 32


@dataclass(frozen=True)
class Pointer:
    kind: Kind
    #: The visible metadata; ``None`` only while a transaction that creates the table is undecided.
    metadata_location: str | None
    state: State = "active"
    #: For ``pending``: the rename's source; for ``moved``: its target.
    peer: Identifier | None = None
    since_ms: int = field(default_factory=lambda: clock.now_ms())
    #: Fresh on every transition, so that two writes of a pointer never carry the same bytes:
    #: S3 etags are content hashes, and a repeated etag would let a stale compare-and-swap win.
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: A multi-table transaction this pointer is staged in, and the location it commits to
    #: (see ``iceshelf.tables.state.transactions``); the visible state stays ``metadata_location`` until then.
    txn: str | None = None
    txn_location: str | None = None
    txn_key: str | None = None
    #: Idempotency keys of the latest requests that changed this pointer, newest first: a retry
    #: of a request whose response was lost finds its key here and is not applied twice.
    keys: tuple[str, ...] = ()

    def to_bytes(self) -> bytes:
        doc = asdict(self)
        doc["peer"] = None if self.peer is None else {"namespace": list(self.peer.namespace), "name": self.peer.name}
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Pointer":
        doc = json.loads(data)
        doc["keys"] = tuple(doc.get("keys", ()))
        peer = doc.get("peer")
        doc["peer"] = None if peer is None else Identifier(tuple(peer["namespace"]), peer["name"])
        return cls(**doc)

    def _next(self, **changes: object) -> "Pointer":
        return replace(self, since_ms=clock.now_ms(), token=uuid.uuid4().hex, **changes)

    def moved_to(self, target: Identifier) -> "Pointer":
        return self._next(state="moved", peer=target)

    def pending_from(self, source: Identifier) -> "Pointer":
        return self._next(state="pending", peer=source)

    def creating(self) -> "Pointer":
        """The not-yet-visible placeholder of a new entry (a ``pending`` with no rename source).

        It keeps this pointer's token, so a creator whose request failed recognizes its own
        placeholder; the active pointer that replaces it differs in ``state``, hence in bytes.
        """
        return replace(self, state="pending", peer=None)

    def aborted(self) -> "Pointer":
        return self._next(state="aborted")

    def dropped(self) -> "Pointer":
        return self._next(state="dropped")

    def activated(self) -> "Pointer":
        return self._next(state="active", peer=None)

    def at(self, metadata_location: str, *keys: str | None) -> "Pointer":
        return self._next(metadata_location=metadata_location, keys=self._remember(*keys))

    def staged_in(self, txn: str, location: str, key: str | None = None) -> "Pointer":
        return self._next(txn=txn, txn_location=location, txn_key=key)

    def settled(self, committed: bool) -> "Pointer":
        """Leave the transaction: take its location if it committed, else keep (or drop) the old state."""
        done = {"txn": None, "txn_location": None, "txn_key": None}
        if committed:
            return self._next(metadata_location=self.txn_location, keys=self._remember(self.txn_key), **done)
        if self.metadata_location is None:
            return self._next(state="dropped", **done)
        return self._next(**done)

    def applied(self, key: str | None) -> bool:
        """Has the request with idempotency key ``key`` already changed this pointer?"""
        return key is not None and key in self.keys

    def _remember(self, *keys: str | None) -> tuple[str, ...]:
        return (*(k for k in reversed(keys) if k is not None), *self.keys)[:KEPT_KEYS]


@dataclass(frozen=True)
class VersionedPointer:
    """A pointer as read, with the etag that a compare-and-swap against it must present."""

    pointer: Pointer
    etag: str
