"""Entries: the pointers of one warehouse's tables and views, and the rename protocol over them.

Renaming writes two pointers, so it is a small protocol of compare-and-swaps, recoverable by
any replica that meets one of its intermediate states:

1. read the source pointer S (etag e);
2. ``Create`` the target as ``pending`` (peer = source): not yet visible;
3. swap the source to ``moved`` (peer = target) with ``Update(e)`` -- the commit point; it fails
   if a commit moved S meanwhile, and the pending target is aborted;
4. swap the target to ``active``.

Whoever reads a ``moved`` source or a ``pending`` target settles it: roll forward when the
source is ``moved`` to this target, abort a pending target that outlived ``RENAME_TIMEOUT_MS``
while its source is still active -- after first rewriting the source, which fences a slow
renamer's step 3. Every step is a CAS against what was read, so a settler and a renamer
cannot both win. Tombstones (``moved``, ``aborted``) are never deleted blindly;
a later create of the same name takes the slot over with a CAS.
"""

from __future__ import annotations

from typing import Callable

from iceshelf.tables import clock
from iceshelf.tables.errors import (
    CommitFailedException,
    CommitStateUnknownException,
    NoSuchNamespaceError,
    TableAlreadyExistsError,
    ViewAlreadyExistsError,
)
from iceshelf.tables.names import Identifier, Namespace
from iceshelf.tables.objectstore import (
    CREATE,
    ObjectAlreadyExists,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    Update,
)
from iceshelf.tables.retry import backoff
from iceshelf.tables.state.keys import entries_prefix, entry_key, entry_name_from_key
from iceshelf.tables.state.namespaces import Namespaces
from iceshelf.tables.state.pointer import TOMBSTONES, Kind, Pointer, VersionedPointer
from iceshelf.tables.state.transactions import TxnRecords

RENAME_TIMEOUT_MS = 30_000


class EntryExists(Exception):
    def __init__(self, kind: Kind) -> None:
        self.kind = kind


def already_exists(found: Kind, ident: Identifier, wanted: Kind) -> Exception:
    """The name is taken by a ``found``; Java's messages, which say when it is the other kind."""
    error = ViewAlreadyExistsError if wanted == "view" else TableAlreadyExistsError
    if found == wanted:
        return error(f"{found.capitalize()} already exists: {ident}")
    return error(f"{found.capitalize()} with same name already exists: {ident}")


def rename_target_taken(found: Kind, source: Identifier, target: Identifier, wanted: Kind) -> Exception:
    error = ViewAlreadyExistsError if wanted == "view" else TableAlreadyExistsError
    return error(f"Cannot rename {source} to {target}. {found.capitalize()} already exists")


class Entries:
    def __init__(self, store: ObjectStore, namespaces: Namespaces, attempts: int = 20) -> None:
        self.store = store
        self.namespaces = namespaces
        self.attempts = attempts
        self.txns = TxnRecords(store)

    def read_raw(self, ident: Identifier) -> VersionedPointer | None:
        try:
            got = self.store.get(entry_key(ident))
        except ObjectNotFound:
            return None
        return VersionedPointer(Pointer.from_bytes(got.data), got.etag)

    def read(self, ident: Identifier) -> VersionedPointer | None:
        """The active pointer of ``ident``, settling any rename or decided transaction it is part of.

        ``None`` if there is none. A pointer staged in an undecided transaction is returned as is:
        its ``metadata_location`` is the state every reader must see until the transaction commits.
        """
        for _ in range(self.attempts):
            current = self.read_raw(ident)
            if current is None or current.pointer.state in TOMBSTONES:
                if current is not None and current.pointer.state == "moved":
                    self._settle_target(current.pointer.peer, ident)
                return None
            if current.pointer.state == "pending":
                if not self._settle_pending(ident, current):
                    return None
                continue
            if current.pointer.txn is None or not self._settle_txn(ident, current):
                return current if current.pointer.metadata_location is not None else None
        return None

    def read_settled(self, ident: Identifier) -> VersionedPointer | None:
        """``read``, waiting out an undecided transaction: what a writer must compare-and-swap against."""
        for attempt in range(self.attempts):
            current = self.read(ident)
            if current is None or current.pointer.txn is None:
                return current
            backoff(attempt)
        raise CommitFailedException(f"{ident} is part of a transaction still in progress; retry")

    def _settle_txn(self, ident: Identifier, current: VersionedPointer) -> bool:
        """Finish a decided (or abandoned) transaction on this pointer; ``True`` if it should be re-read."""
        record = self.txns.read(current.pointer.txn)
        if record is not None and record.state == "pending":
            if not record.stale:
                return False
            self.txns.decide(record, "aborted")  # loses to a coordinator that flipped first: re-read
            return True
        # A missing record was forgotten after its pointers settled, so this one never committed.
        committed = record is not None and record.state == "committed"
        self.settle(ident, current, committed)
        return True

    def settle(self, ident: Identifier, current: VersionedPointer, committed: bool) -> None:
        try:
            self.store.put(entry_key(ident), current.pointer.settled(committed).to_bytes(), Update(current.etag))
        except PreconditionFailed:
            pass  # settled by someone else meanwhile

    def _settle_pending(self, target: Identifier, pending: VersionedPointer) -> bool:
        """Roll a pending target forward or abort it; return whether it is now active."""
        if pending.pointer.peer is None:  # a create not yet made visible: abort it once it is abandoned
            if clock.now_ms() - pending.pointer.since_ms > RENAME_TIMEOUT_MS:
                try:
                    self.store.put(entry_key(target), pending.pointer.aborted().to_bytes(), Update(pending.etag))
                except PreconditionFailed:
                    return True  # its creator made it visible (or someone aborted it): look again
            return False
        source = self.read_raw(pending.pointer.peer)
        if source is not None and source.pointer.state == "moved" and source.pointer.peer == target:
            try:
                self.store.put(entry_key(target), pending.pointer.activated().to_bytes(), Update(pending.etag))
            except PreconditionFailed:
                pass
            return True
        if clock.now_ms() - pending.pointer.since_ms <= RENAME_TIMEOUT_MS:
            return False
        if source is not None and source.pointer.state == "active":
            # Fence the renamer first: rewriting the source changes its etag, so the renamer's
            # commit-point CAS (step 3) can no longer succeed once the target is aborted.
            try:
                self.store.put(entry_key(pending.pointer.peer), source.pointer.activated().to_bytes(), Update(source.etag))
            except PreconditionFailed:
                return False
        try:
            self.store.put(entry_key(target), pending.pointer.aborted().to_bytes(), Update(pending.etag))
        except PreconditionFailed:
            pass
        return False

    def _settle_target(self, target: Identifier | None, source: Identifier) -> None:
        if target is None:
            return
        pending = self.read_raw(target)
        if pending is not None and pending.pointer.state == "pending" and pending.pointer.peer == source:
            self._settle_pending(target, pending)

    def create(self, ident: Identifier, pointer: Pointer) -> str:
        """Place a new entry; raise ``EntryExists`` if the name is taken. Returns the pointer's etag.

        The entry is first written as an invisible placeholder, the namespace is re-read, and only
        then is the entry made visible: a namespace drop either sees the placeholder (and refuses)
        or the creator sees the drop (and withdraws), and a creator that dies in between leaves
        nothing visible -- its placeholder is aborted by whoever reads it after the timeout.
        """
        self.namespaces.require_open(ident.namespace)
        placeholder = pointer.creating() if pointer.state == "active" else pointer
        etag = self._claim(ident, placeholder)
        try:
            self.namespaces.require_open(ident.namespace)
        except NoSuchNamespaceError:
            try:  # withdraw: the namespace is being dropped
                self.swing(ident, etag, placeholder.aborted())
            except PreconditionFailed:
                pass
            raise
        if placeholder is pointer:
            return etag
        return self.swing(ident, etag, pointer)

    def _claim(self, ident: Identifier, pointer: Pointer) -> str:
        for _ in range(self.attempts):
            try:
                return self.store.put(entry_key(ident), pointer.to_bytes(), CREATE)
            except ObjectAlreadyExists:
                pass
            current = self.read_raw(ident)
            if current is None:
                continue
            if current.pointer.state == "active":
                raise EntryExists(current.pointer.kind)
            if current.pointer.state == "pending":
                self.read(ident)  # settles the rename: it either takes the name or frees it
                settled = self.read_raw(ident)
                if settled is not None and settled.pointer.state not in TOMBSTONES:
                    raise EntryExists(settled.pointer.kind)
                continue
            if current.pointer.state == "moved":
                self._settle_target(current.pointer.peer, ident)
            try:
                return self.store.put(entry_key(ident), pointer.to_bytes(), Update(current.etag))
            except PreconditionFailed:
                continue
        raise EntryExists(pointer.kind)

    def swing(self, ident: Identifier, expected_etag: str, pointer: Pointer) -> str:
        """The commit point of every metadata change: compare-and-swap the pointer."""
        return self.store.put(entry_key(ident), pointer.to_bytes(), Update(expected_etag))

    def publish(
        self,
        ident: Identifier,
        expected: VersionedPointer | None,
        pointer: Pointer,
        landed: Callable[[Pointer], bool] = lambda pointer: False,
    ) -> str:
        """Write ``pointer`` over ``expected`` (``None``: create the entry); return the new etag.

        A lost race raises ``PreconditionFailed``, a taken name ``EntryExists``: clean refusals.
        Any other failure of the write (a timeout, a 5xx) is reconciled: either the write landed
        -- the pointer carries our token, or ``landed`` finds our change in the history of what
        followed it -- or it is fenced off (we change the pointer ourselves, so the in-flight
        write's condition can never hold) and reported as a lost race. Only when even that fails
        is the outcome unknown (``CommitStateUnknownException``).
        """
        try:
            if expected is None:
                return self.create(ident, pointer)
            return self.swing(ident, expected.etag, pointer)
        except (PreconditionFailed, EntryExists, NoSuchNamespaceError):
            raise
        except Exception as err:
            try:
                return self._reconcile(ident, expected, pointer, landed)
            except PreconditionFailed:
                raise
            except Exception:
                raise CommitStateUnknownException(f"Change to {ident} may or may not have been applied: {err}") from err

    def place(self, ident: Identifier, pointer: Pointer, discard: Callable[[], None]) -> None:
        """Create a new table's or view's entry, retrying a fenced-off failed write.

        On a clean refusal (the name is taken, the namespace is gone) ``discard`` removes what the
        caller wrote for it; on an unknown outcome nothing is removed, since the entry may name it.
        """
        for attempt in range(self.attempts):
            try:
                self.publish(ident, None, pointer)
                return
            except PreconditionFailed:
                backoff(attempt)
            except EntryExists as exists:
                discard()
                raise already_exists(exists.kind, ident, pointer.kind) from None
            except NoSuchNamespaceError:
                discard()
                raise
        raise CommitFailedException(f"Could not create {ident}; retry later")

    def _reconcile(
        self, ident: Identifier, expected: VersionedPointer | None, pointer: Pointer, landed: Callable[[Pointer], bool]
    ) -> str:
        for _ in range(self.attempts):
            current = self.read_raw(ident)
            if current is not None and current.pointer.token == pointer.token and current.pointer.state == pointer.state:
                return current.etag
            if current is not None and current.pointer.token == pointer.token:  # our own placeholder
                try:
                    self.swing(ident, current.etag, current.pointer.aborted())
                except PreconditionFailed:
                    continue
                raise PreconditionFailed(f"{ident}: the failed create was withdrawn")
            if expected is None:  # a create: the name was free (absent or a tombstone)
                unchanged = current is None or current.pointer.state in TOMBSTONES
            else:
                unchanged = current is not None and current.etag == expected.etag
            if not unchanged:
                if current is not None and landed(current.pointer):
                    return current.etag
                raise PreconditionFailed(f"{ident} moved on; the failed write can no longer land")
            try:
                if current is None:
                    self.store.put(entry_key(ident), Pointer(pointer.kind, None, state="dropped").to_bytes(), CREATE)
                else:
                    fence = current.pointer.activated() if expected is not None else current.pointer.dropped()
                    self.swing(ident, current.etag, fence)
            except (PreconditionFailed, ObjectAlreadyExists):
                continue
            raise PreconditionFailed(f"{ident}: the failed write was fenced off")
        raise CommitStateUnknownException(f"Could not settle the outcome of a change to {ident}")

    def retire(self, ident: Identifier, current: VersionedPointer) -> None:
        """Drop the entry exactly as read: a commit that lands first makes this raise ``PreconditionFailed``."""
        self.publish(ident, current, current.pointer.dropped())

    def remove(self, ident: Identifier) -> None:
        self.store.delete(entry_key(ident))

    def list(self, namespace: Namespace, kind: Kind) -> list[str]:
        names = []
        for meta in self.store.list(entries_prefix(namespace)):
            ident = Identifier(namespace, entry_name_from_key(meta.key))
            current = self.read(ident)
            if current is not None and current.pointer.kind == kind:
                names.append(ident.name)
        return sorted(names)

    def rename(self, kind: Kind, source: Identifier, target: Identifier, not_found: Exception) -> None:
        for attempt in range(self.attempts):
            current = self.read_settled(source)
            if current is None or current.pointer.kind != kind:
                raise not_found
            self.namespaces.require_open(target.namespace)
            try:
                pending = self.publish(target, None, current.pointer.pending_from(source))
            except EntryExists as exists:
                raise rename_target_taken(exists.kind, source, target, kind) from None
            except PreconditionFailed:
                backoff(attempt)
                continue
            try:  # the commit point
                self.publish(source, current, current.pointer.moved_to(target))
            except PreconditionFailed:
                self._abort(target, pending)
                backoff(attempt)
                continue
            try:
                self.swing(target, pending, current.pointer.activated())
            except Exception:
                pass  # committed already; whoever reads either name next rolls the target forward
            return
        raise not_found

    def _abort(self, target: Identifier, pending_etag: str) -> None:
        """Best effort: a pending target left behind is aborted by the next reader after the timeout."""
        try:
            current = self.read_raw(target)
            if current is not None and current.pointer.state == "pending":
                self.swing(target, pending_etag, current.pointer.aborted())
        except Exception:
            pass
