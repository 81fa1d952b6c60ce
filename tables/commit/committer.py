"""THE commit path: every change to a table's metadata, from any caller, goes through here.

A commit is: read the pointer (etag) -> validate the requirements against the metadata it
names -> apply the updates -> write the new metadata file with ``Create`` -> swing the
pointer with ``Update(etag)``. If the swing loses, the pointer moved: re-read and re-validate.
The requirements alone decide whether the change still applies; if they fail, the caller
gets ``CommitFailedException`` (409) and nothing it wrote stays referenced.

Invariants (checked by the tests): a pointer only ever names a fully written metadata file;
each successful swing extends the table's history by exactly one metadata version; a commit
is acknowledged only after its swing succeeded.
"""

from __future__ import annotations

import logging
from typing import Callable

from pyiceberg.io import FileIO
from pyiceberg.table.metadata import TableMetadata

from iceshelf.tables.commit.batching import Batcher, Ticket
from iceshelf.tables.commit.changes import Staged, TableChange, not_found
from iceshelf.tables.commit.rebase import AppendRebaser
from iceshelf.tables.commit.requirements import TABLE_EXISTS, validate
from iceshelf.tables.errors import (
    BadRequestError,
    CommitFailedException,
    CommitStateUnknownException,
    ViewAlreadyExistsError,
)
from iceshelf.tables.locations import WarehouseLocations
from iceshelf.tables.metadata.builder import MetadataBuilder
from iceshelf.tables.metadata.files import MetadataFile, MetadataFiles
from iceshelf.tables.objectstore import PreconditionFailed
from iceshelf.tables.retry import PATIENCE_S, backoff, patient_attempts
from iceshelf.tables.state.entries import Entries, EntryExists
from iceshelf.tables.state.pointer import Pointer, VersionedPointer
from iceshelf.tables.state.transactions import TxnRecord

log = logging.getLogger("iceshelf.tables")



def apply_change(change: TableChange, builder: MetadataBuilder) -> TableMetadata:
    """Validate the requirements on the builder's state and apply the updates to it (or raise and leave it)."""
    for requirement in change.requirements:
        validate(requirement, builder.state)
    try:
        return builder.apply(change.updates)
    except (CommitFailedException, BadRequestError):
        raise
    except (ValueError, TypeError, KeyError) as err:
        raise BadRequestError(f"Cannot apply updates to {change.identifier}: {err}") from err


def _builder_on(base: MetadataFile | None) -> MetadataBuilder:
    """A builder of the next version of ``base`` (``None``: of a table to create)."""
    return MetadataBuilder(None if base is None else base.metadata, None if base is None else base.location)


def not_a_table(change: TableChange) -> Exception:
    """What a change to a table is told when its name holds a view: no such table, and a table cannot
    be created over it (409 ``AlreadyExistsException``, as Java's catalogs answer)."""
    if change.creates:
        return ViewAlreadyExistsError(f"View with same name already exists: {change.identifier}")
    return not_found(change.identifier)


def table_pointer(current: VersionedPointer | None, change: TableChange) -> VersionedPointer | None:
    if current is not None and current.pointer.kind != "table":
        raise not_a_table(change)
    return current


class TransactionAborted(Exception):
    """Another replica aborted our transaction as abandoned: roll back and start over."""


def _resolve_all(tickets: list[Ticket], file: MetadataFile) -> None:
    for ticket in tickets:
        ticket.resolve(file)


def _fail_all(tickets: list[Ticket], error: BaseException) -> None:
    for ticket in tickets:
        ticket.fail(error)


def _fail_each(tickets: list[Ticket], error: Callable[[TableChange], BaseException]) -> None:
    for ticket in tickets:
        ticket.fail(error(ticket.request))


class Committer:
    """Applies ``TableChange``s to one warehouse; used by the REST catalog and by compaction alike."""

    def __init__(
        self,
        entries: Entries,
        files: MetadataFiles,
        io: FileIO,
        locations: WarehouseLocations,
        after_commit: Callable[[Staged], None],
        rebaser: AppendRebaser,
        attempts: int,
        group_commit: bool = True,
    ) -> None:
        """Its collaborators are handed in (the table store builds them), so the commit path depends on
        the pieces it uses -- pointers, metadata files, the location rule, the rebaser and its kept
        manifest lists -- and never on the store."""
        self.entries = entries
        self.files = files
        self.io = io
        self.locations = locations
        self.after_commit = after_commit
        self.attempts = attempts
        self.group_commit = group_commit
        self._batcher: Batcher[TableChange, MetadataFile] = Batcher(self.commit_batch)
        self.rebaser = rebaser

    def _delete_scratch(self, locations: list[str]) -> None:
        """Files an attempt wrote besides its metadata file (rebased manifest lists)."""
        for location in locations:
            self.io.delete(location)

    def stage(self, change: TableChange, current: VersionedPointer | None) -> Staged:
        """Validate and apply ``change`` on the state ``current`` names; write the new metadata file."""
        current = table_pointer(current, change)
        if current is None and not change.creates:
            raise not_found(change.identifier)
        base = None if current is None else self.files.read(current.pointer.metadata_location)
        base_metadata = None if base is None else base.metadata
        builder = _builder_on(base)
        change, scratch = self._apply(change, builder)
        metadata = builder.finish()
        if base is not None and (not change.updates or metadata is base_metadata):
            return Staged(change, current, base_metadata, None)  # a no-op: no new version
        return self._write(change, current, base, metadata, scratch)

    def _apply(self, change: TableChange, builder: MetadataBuilder) -> tuple[TableChange, str | None]:
        """Apply ``change`` to ``builder``; a pure append that lost only its branch head is rebased instead
        of refused where the table opted in (``rebase.rebase_enabled``). Returns the change as applied
        (rebased or not) and the rebased manifest list, if any."""
        try:
            apply_change(change, builder)
            return change, None
        except CommitFailedException:
            rebased = None if builder.state is None else self.rebaser.rebase(change, builder.state)
            if rebased is None:
                raise
            change, scratch = rebased
            apply_change(change, builder)
            return change, scratch

    def _write(
        self, change: TableChange, current: VersionedPointer | None, base: MetadataFile | None, metadata: TableMetadata, scratch: str | None
    ) -> Staged:
        if current is None or base is None or base.metadata.location != metadata.location:
            # a creating commit (stage-create) or a set-location: the location is the client's choice
            self.locations.check(change.identifier, metadata.location)
        written = self.files.write(metadata, None if base is None else base.location)
        return Staged(change, current, None if base is None else base.metadata, written, scratch)

    def publish(self, staged: Staged, pointer: Pointer) -> str:
        """Create or swing the pointer to ``pointer`` (see ``Entries.publish``); returns its etag."""
        ident = staged.change.identifier
        try:
            return self.entries.publish(ident, staged.base, pointer, self._landed_after(staged))
        except EntryExists:
            raise CommitFailedException(TABLE_EXISTS) from None

    def _landed_after(self, staged: Staged):
        """Did our metadata file become current and then get superseded? (the metadata log says)"""
        location = staged.file.location

        def landed(pointer: Pointer) -> bool:
            if location in (pointer.metadata_location, pointer.txn_location):
                return True
            if pointer.metadata_location is None:
                return False
            current = self.files.read(pointer.metadata_location).metadata
            return any(entry.metadata_file == location for entry in current.metadata_log)

        return landed

    def discard(self, staged: Staged) -> None:
        if staged.file is not None:
            self.files.delete(staged.file.location)
        self._delete_scratch([staged.scratch] if staged.scratch else [])

    def commit(self, change: TableChange) -> MetadataFile:
        """One table. Concurrent commits to the same table are applied as one batch (group commit)."""
        if not self.group_commit:
            return self._batcher.run_alone(change)
        return self._batcher.submit(change.identifier, change)

    def commit_batch(self, tickets: list[Ticket[TableChange, MetadataFile]]) -> None:
        """Apply the batch's changes in order, each validated on the state the previous ones leave;
        write one metadata file and swing the pointer once. The pointer's compare-and-swap is the
        commit point; losing it re-runs the whole batch on the new state. A change whose requirements
        fail is answered on its own (409) and left out; the others still commit.

        Group commit's leader runs it; so does the model check (``tests/modelcheck/appends.py``),
        with a batch it forms itself.
        """
        ident = tickets[0].request.identifier
        for attempt in patient_attempts(self.attempts):
            try:
                current = self.entries.read_settled(ident)
                if current is not None and current.pointer.kind != "table":
                    return _fail_each(tickets, not_a_table)
                base = None if current is None else self.files.read(current.pointer.metadata_location)
            except Exception as err:
                return _fail_all(tickets, err)
            accepted, applied, scratch, builder = self._apply_batch(tickets, current, base)
            if not accepted:
                return
            combined = TableChange(ident, (), tuple(u for c in applied for u in c.updates))
            try:
                metadata = builder.finish()
                if base is not None and metadata is base.metadata:
                    return _resolve_all(accepted, base)  # all no-ops: no new version
                staged = self._write(combined, current, base, metadata, None)
            except Exception as err:
                self._delete_scratch(scratch)
                return _fail_all(accepted, err)
            keys = [t.request.idempotency_key for t in accepted if t.request.idempotency_key]
            pointer = (Pointer("table", None) if current is None else current.pointer).at(staged.file.location, *keys)
            try:
                self.publish(staged, pointer)
            except PreconditionFailed:
                self.discard(staged)
                self._delete_scratch(scratch)
                tickets = accepted
                backoff(attempt)
                continue
            except CommitStateUnknownException as err:
                return _fail_all(accepted, err)
            except Exception as err:  # clean refusals; a crash (BaseException) leaves the files as orphans
                self.discard(staged)
                self._delete_scratch(scratch)
                return _fail_all(accepted, err)
            self.after_commit(staged)
            return _resolve_all(accepted, staged.file)
        _fail_all(tickets, CommitFailedException(f"Commit to {ident} kept losing the pointer race for {PATIENCE_S:.0f} s; retry later"))

    def _apply_batch(
        self, tickets: list[Ticket[TableChange, MetadataFile]], current: VersionedPointer | None, base: MetadataFile | None
    ) -> tuple[list[Ticket[TableChange, MetadataFile]], list[TableChange], list[str], MetadataBuilder]:
        """Validate and apply each change on the state the previous ones leave; answer those that fail.

        Returns the accepted tickets, their changes as applied (rebased or not), the rebased manifest
        lists written, and the builder holding the batch's result (``finish`` it once).
        """
        builder = _builder_on(base)
        accepted, applied, scratch = [], [], []
        for ticket in tickets:
            change = ticket.request
            if current is not None and current.pointer.applied(change.idempotency_key):
                ticket.resolve(base)  # a retry of a commit that landed: not applied twice
                continue
            if builder.state is None and not change.creates:
                ticket.fail(not_found(change.identifier))
                continue
            try:
                change, rebased_list = self._apply(change, builder)
            except Exception as err:
                ticket.fail(err)
                continue
            accepted.append(ticket)
            applied.append(change)
            scratch += [rebased_list] if rebased_list else []
        return accepted, applied, scratch, builder

    def commit_many(self, changes: list[TableChange]) -> list[MetadataFile]:
        """Several tables, atomically: staged pointers, then one CAS on a transaction record.

        See ``iceshelf.tables.state.transactions`` for the protocol. Tables are staged in key order, so two
        transactions over the same tables wait for each other instead of deadlocking.
        """
        idents = [c.identifier for c in changes]
        if len(set(idents)) != len(idents):
            raise BadRequestError("A transaction may change each table only once")
        if len(changes) == 1:
            return [self.commit(changes[0])]
        if self._already_applied(changes):
            return [self.files.read(self.entries.read(c.identifier).pointer.metadata_location) for c in changes]
        ordered = sorted(changes, key=lambda c: (c.identifier.namespace, c.identifier.name))
        txns = self.entries.txns
        for attempt in range(self.attempts):
            record = txns.begin([str(c.identifier) for c in ordered])
            staged: list[tuple[Staged, str | None]] = []
            try:
                for change in ordered:
                    staged.append(self._stage_in(record.id, change))
                if self._decide_committed(record) is None:
                    raise TransactionAborted(record.id)
            except TransactionAborted:
                self._settle_all(record.id, staged, committed=False)
                backoff(attempt)
                continue
            except CommitStateUnknownException:
                raise  # staged pointers stay for any replica to settle once the record is decided
            except Exception:
                txns.decide(record, "aborted")  # or someone aborted it already: nobody else commits it
                self._settle_all(record.id, staged, committed=False)
                raise
            try:
                self._settle_all(record.id, staged, committed=True)
            except Exception:  # committed already: any replica settles the pointers from the record
                log.warning("transaction %s committed; settling its pointers failed", record.id, exc_info=True)
            by_ident = {s.change.identifier: s for s, _ in staged}
            return [self._result(by_ident[ident]) for ident in idents]
        raise CommitFailedException("Transaction lost too many races in a row; retry later")

    def _already_applied(self, changes: list[TableChange]) -> bool:
        """A retried transaction whose first attempt committed: its key is on (all of) its pointers."""
        key = changes[0].idempotency_key
        if key is None:
            return False
        current = self.entries.read_settled(changes[0].identifier)
        return current is not None and current.pointer.applied(key)

    def _decide_committed(self, record: TxnRecord) -> TxnRecord | None:
        """The commit point; ``None`` if the transaction is aborted instead.

        A failed write of the flip (not a lost CAS) is reconciled like a pointer write: the record
        says "committed" (it landed), or we fence it by flipping it to "aborted" ourselves.
        """
        txns = self.entries.txns
        try:
            return txns.decide(record, "committed")
        except Exception as err:
            try:
                for _ in range(self.attempts):
                    current = txns.read(record.id)
                    if current is None or current.state == "aborted":
                        return None
                    if current.state == "committed":
                        return current
                    if txns.decide(current, "aborted") is not None:
                        return None
            except Exception:
                pass
            raise CommitStateUnknownException(f"Transaction {record.id} may or may not have committed: {err}") from err

    def _stage_in(self, txn_id: str, change: TableChange) -> tuple[Staged, str | None]:
        """Stage one table of a transaction: its pointer names the transaction and the new location."""
        for attempt in range(self.attempts):
            staged = self.stage(change, self.entries.read_settled(change.identifier))
            if staged.file is None:
                return staged, None
            base = staged.base.pointer if staged.base is not None else Pointer("table", None)
            try:
                return staged, self.publish(staged, base.staged_in(txn_id, staged.file.location, change.idempotency_key))
            except PreconditionFailed:
                self.discard(staged)
                backoff(attempt)
            except CommitStateUnknownException:
                raise
            except Exception:
                self.discard(staged)
                raise
        raise CommitFailedException(f"Staging {change.identifier} lost {self.attempts} races in a row; retry later")

    def _settle_all(self, txn_id: str, staged: list[tuple[Staged, str | None]], committed: bool) -> None:
        """Roll every staged pointer forward or back, then forget the record -- only once none names it."""
        entries = self.entries
        unsettled = 0
        for s, etag in staged:
            if etag is None:
                continue
            ident = s.change.identifier
            for _ in range(self.attempts):
                current = entries.read_raw(ident)
                if current is None or current.pointer.txn != txn_id:
                    break
                entries.settle(ident, current, committed)
            else:
                unsettled += 1  # left for readers to settle from the record, which therefore stays
            if committed:
                self.after_commit(s)
            else:
                self.discard(s)
        if not unsettled:
            entries.txns.forget(txn_id)

    def _result(self, staged: Staged) -> MetadataFile:
        return staged.file or self.files.read(staged.base.pointer.metadata_location)
