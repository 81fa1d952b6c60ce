"""Snapshot expiry: drop old snapshots through the commit path, then delete what only they reached.

Which snapshots to keep follows Iceberg's ``ExpireSnapshots`` (and S3 Tables' snapshot
management): every branch and tag head; along each branch, ancestors while fewer than
``minSnapshotsToKeep`` are kept or they are younger than ``maxSnapshotAgeHours`` (a branch's own
``min-snapshots-to-keep`` / ``max-snapshot-age-ms`` override the table's); and snapshots on no
branch while they are young. Refs are never removed.

The commit carries a requirement that re-runs this selection on whatever metadata it lands on:
appends in between change nothing (the old snapshots are still expirable), while a rollback or a
new tag onto a chosen snapshot fails the commit instead of being silently undone by
``RemoveSnapshotsUpdate`` (which drops refs to removed snapshots).

Files are deleted only after the commit, and only those the expired snapshots reached that no
snapshot of the *committed* metadata can still read -- so a snapshot added concurrently is
accounted for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import SnapshotRefType
from pyiceberg.table.snapshots import ancestors_of
from pyiceberg.table.update import (
    AssertTableUUID,
    RemovePartitionStatisticsUpdate,
    RemoveSnapshotsUpdate,
    TableUpdate,
    ValidatableTableRequirement,
)

from iceshelf.compaction.jobs.config import ExpiryPolicy, SnapshotManagementSettings, expiry_policy
from iceshelf.compaction.jobs.reachability import FileSizes, Reachability, statistics_files
from iceshelf.compaction.jobs.removal import OnProgress, Removed, remove_files
from iceshelf.tables import clock
from iceshelf.tables.commit.committer import TableChange
from iceshelf.tables.errors import CommitFailedException
from iceshelf.tables.metadata.builder import apply_updates
from iceshelf.tables.names import Identifier
from iceshelf.tables.objectstore.fileio import StoreFileIO
from iceshelf.tables.retry import backoff
from iceshelf.tables.tablestore import TableStore

_ATTEMPTS = 5


def snapshots_to_expire(metadata: TableMetadata, policy: ExpiryPolicy, now_ms: int) -> set[int]:
    """Pure: the ids of the snapshots ``policy`` lets go at ``now_ms``."""
    retained: set[int] = set()
    on_a_ref: set[int] = set()
    for ref in metadata.refs.values():
        retained.add(ref.snapshot_id)
        on_a_ref.add(ref.snapshot_id)
        if ref.snapshot_ref_type != SnapshotRefType.BRANCH:
            continue
        min_keep = ref.min_snapshots_to_keep or policy.min_snapshots_to_keep
        cutoff = now_ms - (ref.max_snapshot_age_ms or policy.max_snapshot_age_ms)
        kept = 0
        for ancestor in ancestors_of(metadata.snapshot_by_id(ref.snapshot_id), metadata):
            on_a_ref.add(ancestor.snapshot_id)
            if kept < min_keep or ancestor.timestamp_ms >= cutoff:
                retained.add(ancestor.snapshot_id)
                kept += 1
            else:
                break
    cutoff = now_ms - policy.max_snapshot_age_ms
    retained.update(s.snapshot_id for s in metadata.snapshots if s.snapshot_id not in on_a_ref and s.timestamp_ms >= cutoff)
    return {s.snapshot_id for s in metadata.snapshots} - retained


class AssertStillExpirable(ValidatableTableRequirement):
    """Requirement: on the metadata the commit lands on, the same policy still expires these snapshots.

    Internal to the commit path (never sent over REST): pyiceberg's requirements can only pin
    refs to fixed snapshots, which would fail expiry on every concurrent append.
    """

    type: Literal["assert-still-expirable"] = Field(default="assert-still-expirable")
    snapshot_ids: list[int]
    settings: SnapshotManagementSettings
    now_ms: int

    def validate(self, base_metadata: TableMetadata | None) -> None:
        if base_metadata is None:
            raise CommitFailedException("Requirement failed: current table metadata is missing")
        policy = expiry_policy(self.settings, base_metadata.properties)
        kept = set(self.snapshot_ids) - snapshots_to_expire(base_metadata, policy, self.now_ms)
        if kept:
            raise CommitFailedException(f"Requirement failed: snapshots {sorted(kept)} are no longer expirable")


@dataclass(frozen=True)
class ExpiryResult:
    expired_snapshot_ids: tuple[int, ...]
    removed: Removed
    dry_run: bool = False

    def counts(self) -> dict:
        """The counts of this run's ``JobRun``: the deleted files are what it took in."""
        return {
            "filesIn": self.removed.files,
            "bytesIn": self.removed.bytes,
            "detail": {"expiredSnapshots": len(self.expired_snapshot_ids)},
        }


def expire_snapshots(
    tables: TableStore,
    ident: Identifier,
    settings: SnapshotManagementSettings | None = None,
    now_ms: int | None = None,
    dry_run: bool = False,
    progress: OnProgress | None = None,
) -> ExpiryResult:
    """Expire ``ident``'s snapshots by ``settings`` (else its ``history.expire.*`` properties).

    With ``dry_run`` nothing is committed or deleted; the result says what would have been.
    """
    settings = settings or SnapshotManagementSettings()
    now_ms = clock.now_ms() if now_ms is None else now_ms
    reach = Reachability(StoreFileIO(tables.objects))
    for attempt in range(_ATTEMPTS):
        before = tables.load_table(ident)
        expired = snapshots_to_expire(before.metadata, expiry_policy(settings, before.metadata.properties), now_ms)
        if not expired:
            return ExpiryResult((), Removed(), dry_run)
        updates = _updates(before.metadata, expired)
        # Read before committing: a missing manifest then stops the expiry before anything changed.
        reached = reached_by(reach, before.metadata, expired)
        if dry_run:
            after = apply_updates(before.metadata, updates, before.metadata_location)
            return ExpiryResult(tuple(sorted(expired)), Removed.counting(unreferenced_after(reach, reached, after)), True)
        requirements = (
            AssertTableUUID(uuid=before.metadata.table_uuid),
            AssertStillExpirable(snapshot_ids=sorted(expired), settings=settings, now_ms=now_ms),
        )
        try:
            committed = tables.commit(TableChange(ident, requirements, updates))
        except CommitFailedException:
            backoff(attempt)
            continue
        files = unreferenced_after(reach, reached, committed.metadata)
        return ExpiryResult(tuple(sorted(expired)), remove_files(tables.objects, before.metadata.location, files, progress))
    raise CommitFailedException(f"Snapshot expiry of {ident} kept conflicting with concurrent changes; retry later")


def _updates(metadata: TableMetadata, expired: set[int]) -> tuple[TableUpdate, ...]:
    """Remove the snapshots and their partition statistics (``RemoveSnapshotsUpdate`` drops table statistics itself)."""
    return (
        RemoveSnapshotsUpdate(snapshot_ids=sorted(expired)),
        *(
            RemovePartitionStatisticsUpdate(snapshot_id=s.snapshot_id)
            for s in metadata.partition_statistics
            if s.snapshot_id in expired
        ),
    )


def reached_by(reach: Reachability, metadata: TableMetadata, snapshot_ids: set[int]) -> FileSizes:
    """Every file the snapshots ``snapshot_ids`` of ``metadata`` reach, statistics included."""
    files = reach.snapshot_files((s for s in metadata.snapshots if s.snapshot_id in snapshot_ids), live_only=False)
    files.update(statistics_files(metadata, snapshot_ids))
    return files


def unreferenced_after(reach: Reachability, reached: FileSizes, after: TableMetadata) -> FileSizes:
    """Those of ``reached`` that no snapshot of ``after`` can read."""
    kept = reach.snapshot_files(after.snapshots, live_only=True)
    kept.update(statistics_files(after))
    return {location: size for location, size in reached.items() if location not in kept}
