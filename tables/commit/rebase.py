"""Server-side rebase of pure appends, OPT-IN: a lost race on the branch head need not be a conflict.

The spec makes requirements assertions: a stale ``assert-ref-snapshot-id`` is a 409 and the client
retries. That is the default. A table (``iceshelf.commit.rebase-appends=true``) or the whole server
(``ICESHELF_REBASE_APPENDS=true``; a table's own ``false`` still wins) may opt in to having the
server redo the append instead -- at a price: the client never learns its snapshot was rewritten,
and a job that read the table and appends what it derived loses its conflict detection.

An append only adds files, so when its ``assert-ref-snapshot-id`` fails because another commit
moved the branch, the append still applies: Iceberg's Java ``AppendFiles`` and pyiceberg's
retry loop redo it on the client by reloading the table. Here it is done once, in the server:
a new manifest list = the append's own new manifests + the current head's manifests, the next
sequence number, the parent set to the head, and the summary's totals recomputed. Everything
else that fails its requirements still gets 409.

Refused (the client keeps its 409): anything but exactly one ``append`` snapshot plus the
``set-snapshot-ref`` of its branch; an append whose own manifests carry existing or deleted
entries (a merge-append rewrote old manifests, so they would be counted twice); a head that
does not descend from the append's parent; equality deletes committed in between (the
appended rows would take the old data sequence number written in its manifests' entries and
could be deleted by them); v3 tables (row lineage would need first-row-ids reassigned); and
tables that did not opt in. The rebased snapshot is stamped now, after its new parent
(``history.snapshot_timestamp``): kept at the client's time it could be older than its parent, and
readers that take the newest snapshot (DuckDB) would miss an acknowledged append.

Manifest lists are read and written through ``iceshelf.tables.metadata.manifest_lists``, which keeps them: the head a
rebase lands on is, on a busy table, the list the previous rebase on this server just wrote.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from pyiceberg.manifest import ManifestFile
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import SnapshotRefType
from pyiceberg.table.snapshots import (
    Operation,
    Snapshot,
    Summary,
    update_snapshot_summaries,
)
from pyiceberg.table.update import (
    AddSnapshotUpdate,
    AssertRefSnapshotId,
    SetSnapshotRefUpdate,
)
from pyiceberg.utils.properties import property_as_bool

from iceshelf.tables.commit.changes import TableChange
from iceshelf.tables.commit.requirements import validate
from iceshelf.tables.errors import CommitFailedException
from iceshelf.tables.metadata.history import snapshot_timestamp
from iceshelf.tables.metadata.manifest_lists import ManifestList, ManifestLists

REBASE_PROPERTY = "iceshelf.commit.rebase-appends"
_EQUALITY_DELETES = ("added-equality-delete-files", "added-equality-deletes")


def rebase_enabled(properties: dict[str, str], server_default: bool) -> bool:
    """The table's ``REBASE_PROPERTY`` if it sets one, else the server's setting."""
    return property_as_bool(properties, REBASE_PROPERTY, server_default)


class AppendRebaser:
    """Rebuilds a stale pure append on the current head (see the module docstring)."""

    def __init__(self, lists: ManifestLists, server_default: bool = False) -> None:
        self.lists = lists
        #: ``ICESHELF_REBASE_APPENDS``: rebase for tables that do not set ``REBASE_PROPERTY``.
        self.server_default = server_default

    def rebase(self, change: TableChange, head: TableMetadata) -> tuple[TableChange, str] | None:
        """The append rebuilt on ``head``, with the new manifest list's location; ``None`` if it can't be."""
        if not rebase_enabled(head.properties, self.server_default):
            return None
        shape = _pure_append(change, head)
        if shape is None:
            return None
        snapshot, ref, asserted_parent = shape
        head_id = head.refs[ref.ref_name].snapshot_id if ref.ref_name in head.refs else None
        if head_id == asserted_parent or not _descends(head, head_id, asserted_parent):
            return None
        own = [m for m in self.lists.read(snapshot.manifest_list).manifests if m.added_snapshot_id == snapshot.snapshot_id]
        if any(m.existing_files_count or m.deleted_files_count for m in own):
            return None
        head_snapshot = head.snapshot_by_id(head_id) if head_id is not None else None
        sequence_number = head.next_sequence_number()
        location = f"{head.location.rstrip('/')}/metadata/snap-{snapshot.snapshot_id}-rebased-{uuid.uuid4()}.avro"
        rebased = snapshot.model_copy(
            update={
                "parent_snapshot_id": head_id,
                "sequence_number": sequence_number,
                "timestamp_ms": self.timestamp(snapshot, head, head_snapshot),
                "manifest_list": location,
                "summary": _summary(snapshot, head_snapshot),
            }
        )
        renumbered = [_renumbered(m, sequence_number) for m in own]
        self.lists.write(location, rebased, head.format_version, renumbered, self.head_manifests(head_snapshot))
        requirements = tuple(
            AssertRefSnapshotId(ref=ref.ref_name, snapshot_id=head_id) if _asserts_ref(r, ref.ref_name) else r
            for r in change.requirements
        )
        return replace(change, requirements=requirements, updates=(AddSnapshotUpdate(snapshot=rebased), ref)), location

    def timestamp(self, snapshot: Snapshot, head: TableMetadata, parent: Snapshot | None) -> int:
        """The rebased snapshot's ``timestamp-ms``: now, after its new parent's and the log's."""
        return snapshot_timestamp(head, parent)

    def head_manifests(self, head: Snapshot | None) -> ManifestList | None:
        """What the rebased append keeps of the table: every manifest of the head it lands on."""
        return None if head is None else self.lists.read(head.manifest_list)


def _pure_append(change: TableChange, head: TableMetadata) -> tuple[Snapshot, SetSnapshotRefUpdate, int | None] | None:
    """(snapshot, ref update, the head the client asserted) if ``change`` is a rebasable append."""
    if head.format_version > 2:
        return None
    if len(change.updates) != 2:
        return None
    add, ref = change.updates
    if not isinstance(add, AddSnapshotUpdate) or not isinstance(ref, SetSnapshotRefUpdate):
        return None
    snapshot = add.snapshot
    if snapshot.summary is None or snapshot.summary.operation != Operation.APPEND:
        return None
    if ref.type != SnapshotRefType.BRANCH or ref.snapshot_id != snapshot.snapshot_id:
        return None
    asserted = [r for r in change.requirements if _asserts_ref(r, ref.ref_name)]
    if len(asserted) != 1 or asserted[0].snapshot_id != snapshot.parent_snapshot_id:
        return None
    try:
        for requirement in change.requirements:
            if not _asserts_ref(requirement, ref.ref_name):
                validate(requirement, head)
    except CommitFailedException:
        return None
    return snapshot, ref, asserted[0].snapshot_id


def _asserts_ref(requirement: object, ref_name: str) -> bool:
    return isinstance(requirement, AssertRefSnapshotId) and requirement.ref == ref_name


def _descends(head: TableMetadata, head_id: int | None, parent_id: int | None) -> bool:
    """Is ``parent_id`` an ancestor of ``head_id``, with no equality deletes committed since?"""
    current = head.snapshot_by_id(head_id) if head_id is not None else None
    while current is not None:
        if current.snapshot_id == parent_id:
            return True
        if current.summary is not None and any(int(current.summary[k] or 0) for k in _EQUALITY_DELETES):
            return False
        current = head.snapshot_by_id(current.parent_snapshot_id) if current.parent_snapshot_id is not None else None
    return parent_id is None


def _renumbered(manifest: ManifestFile, sequence_number: int) -> ManifestFile:
    """A copy of the append's own manifest with the rebased snapshot's sequence number: all its entries
    are added ones that inherit it (the copy leaves the shared, kept original alone)."""
    copy = type(manifest)(*(manifest[i] for i in range(len(manifest))))
    copy.sequence_number = sequence_number
    copy.min_sequence_number = sequence_number
    return copy


def _summary(snapshot: Snapshot, head: Snapshot | None) -> Summary:
    added = {k: v for k, v in snapshot.summary.additional_properties.items() if not k.startswith("total-")}
    return update_snapshot_summaries(Summary(Operation.APPEND, **added), head.summary if head is not None else None)
