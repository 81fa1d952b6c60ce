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

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import AssertCreate, TableRequirement, TableUpdate

from tables.entries import EntryExists
from tables.errors import (
    BadRequestError,
    CommitFailedException,
    CommitStateUnknownException,
    NoSuchNamespaceError,
    NoSuchTableError,
)
from tables.metadata import apply_updates, empty_metadata
from tables.metadata_files import MetadataFile
from tables.names import Identifier
from tables.objectstore import PreconditionFailed
from tables.pointer import Pointer, VersionedPointer

if TYPE_CHECKING:
    from tables.tablestore import TableStore


@dataclass(frozen=True)
class TableChange:
    identifier: Identifier
    requirements: tuple[TableRequirement, ...]
    updates: tuple[TableUpdate, ...]

    @property
    def creates(self) -> bool:
        return any(isinstance(r, AssertCreate) for r in self.requirements)


@dataclass(frozen=True)
class Staged:
    """A change applied and written, not yet visible: the swing of ``base`` to ``file`` is the commit."""

    change: TableChange
    base: VersionedPointer | None
    base_metadata: TableMetadata | None
    file: MetadataFile | None  # None: the change is a no-op


def backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))


def apply_change(change: TableChange, base_metadata: TableMetadata | None, base_location: str | None) -> TableMetadata:
    """Validate requirements and apply updates; pure, so it can be re-run on every retry."""
    for requirement in change.requirements:
        requirement.validate(base_metadata)
    try:
        return apply_updates(base_metadata or empty_metadata(), change.updates, base_location)
    except CommitFailedException:
        raise
    except (ValueError, TypeError, KeyError) as err:
        raise BadRequestError(f"Cannot apply updates to {change.identifier}: {err}") from err


def not_found(ident: Identifier) -> NoSuchTableError:
    return NoSuchTableError(f"Table does not exist: {ident}")


def table_pointer(current: VersionedPointer | None, ident: Identifier) -> VersionedPointer | None:
    if current is not None and current.pointer.kind != "table":
        raise not_found(ident)
    return current


class Committer:
    """Applies ``TableChange``s to one warehouse; used by the REST catalog and by compaction alike."""

    def __init__(self, tables: "TableStore", attempts: int) -> None:
        self.tables = tables
        self.attempts = attempts

    def stage(self, change: TableChange) -> Staged:
        current = table_pointer(self.tables.entries.read(change.identifier), change.identifier)
        if current is None and not change.creates:
            raise not_found(change.identifier)
        base = None if current is None else self.tables.files.read(current.pointer.metadata_location)
        metadata = apply_change(change, None if base is None else base.metadata, None if base is None else base.location)
        if base is not None and (not change.updates or metadata is base.metadata):
            return Staged(change, current, base.metadata, None)  # a no-op: no new version
        if current is None:
            self.tables.check_location(metadata.location)
        written = self.tables.files.write(metadata, None if base is None else base.location)
        return Staged(change, current, None if base is None else base.metadata, written)

    def publish(self, staged: Staged) -> str:
        """The commit point: create or swing the pointer. Returns the new pointer etag.

        A lost race (``PreconditionFailed``) or a refused create is a clean "no"; any other failure
        of the write (timeout, 5xx) leaves the outcome unknown, and so is reported as such: the new
        metadata file must then be kept, since the pointer may already name it.
        """
        assert staged.file is not None
        ident = staged.change.identifier
        try:
            if staged.base is None:
                try:
                    return self.tables.entries.create(ident, Pointer("table", staged.file.location))
                except EntryExists:
                    raise CommitFailedException(f"Requirement failed: table already exists: {ident}") from None
            return self.tables.entries.swing(ident, staged.base.etag, staged.base.pointer.at(staged.file.location))
        except (PreconditionFailed, CommitFailedException, NoSuchNamespaceError):
            raise
        except Exception as err:
            raise CommitStateUnknownException(f"Commit to {ident} may or may not have been applied: {err}") from err

    def discard(self, staged: Staged) -> None:
        if staged.file is not None:
            self.tables.files.delete(staged.file.location)

    def commit(self, change: TableChange) -> MetadataFile:
        for attempt in range(self.attempts):
            staged = self.stage(change)
            if staged.file is None:
                return self.tables.files.read(staged.base.pointer.metadata_location)
            try:
                self.publish(staged)
            except PreconditionFailed:
                self.discard(staged)
                backoff(attempt)
                continue
            except CommitStateUnknownException:
                raise
            except BaseException:
                self.discard(staged)
                raise
            self.tables.after_commit(staged)
            return staged.file
        raise CommitFailedException(f"Commit to {change.identifier} lost {self.attempts} races in a row; retry later")

    def commit_many(self, changes: list[TableChange]) -> list[MetadataFile]:
        """All-or-nothing for requirements: every change is validated and written before any pointer moves.

        A lost race on any pointer rolls the already-swung pointers back (by compare-and-swap)
        and retries the whole set. Crash-atomicity across tables is a stronger protocol.
        """
        idents = [c.identifier for c in changes]
        if len(set(idents)) != len(idents):
            raise BadRequestError("A transaction may change each table only once")
        for attempt in range(self.attempts):
            staged: list[Staged] = []
            try:
                for change in changes:
                    staged.append(self.stage(change))
            except BaseException:
                for s in staged:
                    self.discard(s)
                raise
            swung: list[tuple[Staged, str]] = []
            try:
                for s in staged:
                    if s.file is not None:
                        swung.append((s, self.publish(s)))
            except PreconditionFailed:
                self._roll_back(swung)
                for s in staged:
                    self.discard(s)
                backoff(attempt)
                continue
            except CommitStateUnknownException:
                raise
            except BaseException:
                self._roll_back(swung)
                for s in staged:
                    self.discard(s)
                raise
            for s in staged:
                if s.file is not None:
                    self.tables.after_commit(s)
            return [s.file or self.tables.files.read(s.base.pointer.metadata_location) for s in staged]
        raise CommitFailedException("Transaction lost too many races in a row; retry later")

    def _roll_back(self, swung: list[tuple[Staged, str]]) -> None:
        for s, etag in reversed(swung):
            ident = s.change.identifier
            if s.base is None:
                self.tables.entries.remove(ident)
                continue
            try:
                self.tables.entries.swing(ident, etag, s.base.pointer.activated())
            except PreconditionFailed:
                raise CommitStateUnknownException(
                    f"Transaction partly applied: {ident} changed again before it could be rolled back"
                ) from None
