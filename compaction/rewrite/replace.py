"""Commit rewritten groups as one Iceberg ``replace`` snapshot, validated like Iceberg's RewriteFiles.

A rewrite was planned on the *starting* snapshot; by commit time other writers may have moved
``main``. Each attempt re-reads the table and, against its current snapshot:

* drops (as conflicting) every group one of whose input files is no longer live -- a concurrent
  delete, overwrite or compaction removed it -- or which a *new* position delete or deletion
  vector (sequence number above the starting one) may target: committing would resurrect rows;
* keeps everything else: concurrent appends are simply carried over (the new snapshot is built
  on the current one), and new equality deletes keep applying to the rewritten files, which take
  the starting snapshot's sequence number as their data sequence number;
* removes the delete files that no longer apply to anything: position deletes and DVs whose
  every target was rewritten, equality deletes older than every remaining data file they could
  match.

The commit goes through ``TableStore.commit`` with ``assert-ref-snapshot-id`` on the snapshot
the attempt was built on, so the pointer's compare-and-swap decides: if ``main`` moved, the
attempt's manifests are deleted and the next attempt rebases. Data files are never rewritten on
retry. An outcome-unknown commit keeps every file: the table may reference them.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Callable

from pyiceberg.io import FileIO
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    ManifestWriter,
)
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import MAIN_BRANCH
from pyiceberg.table.snapshots import Operation, Snapshot, SnapshotSummaryCollector, Summary, update_snapshot_summaries

from iceshelf.compaction.manifests.attempt import attempt_files, commit_on_main
from iceshelf.compaction.manifests.codec import manifest_writer, new_manifest_location, write_manifest_list_file
from iceshelf.compaction.rewrite.live_files import (
    ManifestCache,
    TableFiles,
    content_key,
    data_sequence_number,
    may_reference,
    partition_key,
)
from iceshelf.tables.errors import CommitFailedException, CommitStateUnknownException
from iceshelf.tables.metadata.history import snapshot_timestamp
from iceshelf.tables.names import Identifier
from iceshelf.tables.retry import PATIENCE_S, backoff, patient_attempts
from iceshelf.tables.tablestore import TableStore

log = logging.getLogger("iceshelf.compaction")

#: The data file locations a position delete file or DV names (exactly: read from the file if need be).
Targets = Callable[[ManifestEntry], frozenset[str]]


class CompactionConflict(CommitFailedException):
    """Concurrent changes conflict with every rewritten group (or the table was replaced): nothing committed."""


@dataclass(frozen=True)
class GroupRewrite:
    """One rewritten group, ready to commit."""

    #: Input data file location -> its entry in the starting snapshot.
    removed: dict[str, ManifestEntry]
    added: tuple[DataFile, ...]
    #: Delete files applied by the rewrite, by ``content_key``.
    applied: dict[str, ManifestEntry]
    #: ``content_key`` of each position delete / DV applied -> the data files it names.
    references: dict[str, frozenset[str]]
    #: The group's private output directory.
    output: str


@dataclass
class Committed:
    snapshot_id: int
    committed: list[GroupRewrite]
    conflicted: list[GroupRewrite]
    removed_delete_files: int = 0
    attempts: int = 1


def commit_replace(
    tables: TableStore,
    ident: Identifier,
    io: FileIO,
    cache: ManifestCache,
    starting: TableMetadata,
    starting_files: TableFiles,
    groups: list[GroupRewrite],
    targets: Targets,
    attempts: int = 10,
) -> Committed:
    snapshot_id = _new_snapshot_id(starting)
    commit_id = uuid.uuid4()
    starting_seq = starting_files.snapshot.sequence_number or 0
    conflicted: list[GroupRewrite] = []  # once conflicting, always: a removed file does not come back
    lost = 0
    for attempt in patient_attempts(attempts):
        current = tables.load_table(ident).metadata
        if current.table_uuid != starting.table_uuid:
            raise CompactionConflict(f"{ident} was dropped and re-created during compaction")
        head = current.snapshot_by_name(MAIN_BRANCH)
        if head is None:
            raise CompactionConflict(f"{ident} has no main branch any more")
        files = starting_files if head.snapshot_id == starting_files.snapshot.snapshot_id else TableFiles.load(cache, head)
        surviving = []
        for group in groups:
            if any(group is c for c in conflicted):
                continue
            if (reason := _conflict(group, files, starting_seq, targets)) is not None:
                log.info("compaction of %s: dropping a group: %s", ident, reason)
                conflicted.append(group)
            else:
                surviving.append(group)
        if not surviving:
            raise CompactionConflict(f"Every rewritten group of {ident} conflicts with a concurrent change")
        try:
            with attempt_files(io) as written:
                snapshot, removed_deletes = _build(
                    io, current, files, surviving, snapshot_id, commit_id, attempt, starting_seq, written
                )
                commit_on_main(tables, ident, current.table_uuid, snapshot)
        except CommitStateUnknownException:
            raise
        except CommitFailedException:  # main moved: rebase onto it
            lost += 1
            backoff(attempt)
            continue
        return Committed(snapshot_id, surviving, conflicted, removed_deletes, attempt + 1)
    raise CommitFailedException(f"Compaction of {ident} lost {lost} commit races in a row over {PATIENCE_S:.0f} s; retry later")


def _conflict(group: GroupRewrite, files: TableFiles, starting_seq: int, targets: Targets) -> str | None:
    for location in group.removed:
        if location not in files.data:
            return f"{location} was removed concurrently"
    partitions = {partition_key(e) for e in group.removed.values()}
    for delete in files.deletes.values():
        if (
            delete.data_file.content != DataFileContent.POSITION_DELETES
            or data_sequence_number(delete) <= starting_seq
            or partition_key(delete) not in partitions
        ):
            continue
        suspects = {location for location in group.removed if may_reference(delete, location)}
        if hit := suspects & targets(delete):
            return f"a new delete file {delete.data_file.file_path} targets {min(hit)}"
    return None


def _removable_deletes(metadata: TableMetadata, files: TableFiles, groups: list[GroupRewrite]) -> dict[str, ManifestEntry]:
    removed = {location for g in groups for location in g.removed}
    remaining = [e for location, e in files.data.items() if location not in removed]
    oldest_global = min((data_sequence_number(e) for e in remaining), default=None)
    oldest_by_partition: dict = {}
    for e in remaining:
        key = partition_key(e)
        oldest_by_partition[key] = min(oldest_by_partition.get(key, data_sequence_number(e)), data_sequence_number(e))
    specs = metadata.specs()
    out: dict[str, ManifestEntry] = {}
    for group in groups:
        for key, delete in group.applied.items():
            if key not in files.deletes:
                continue  # already gone
            if delete.data_file.content == DataFileContent.EQUALITY_DELETES:
                is_global = specs[delete.data_file.spec_id].is_unpartitioned()
                scope = oldest_global if is_global else oldest_by_partition.get(partition_key(delete))
                if scope is None or scope >= data_sequence_number(delete):
                    out[key] = delete
            elif (targets := group.references.get(key)) and targets <= removed:
                out[key] = delete
    return out


def _build(
    io: FileIO,
    metadata: TableMetadata,
    files: TableFiles,
    groups: list[GroupRewrite],
    snapshot_id: int,
    commit_id: uuid.UUID,
    attempt: int,
    starting_seq: int,
    written: list[str],
) -> tuple[Snapshot, int]:
    version = metadata.format_version
    schema, specs = metadata.schema(), metadata.specs()
    removed_deletes = _removable_deletes(metadata, files, groups)
    removed = {location for g in groups for location in g.removed} | set(removed_deletes)
    summary = SnapshotSummaryCollector()
    counter = iter(range(1_000_000))

    def new_writer(content: ManifestContent, spec_id: int):
        location = new_manifest_location(metadata.location, metadata.properties, commit_id, f"a{attempt}-m{next(counter)}")
        written.append(location)
        return manifest_writer(version, content, specs[spec_id], schema, io.new_output(location), snapshot_id)

    manifests: list[ManifestFile] = []
    by_spec: dict[int, list[DataFile]] = {}
    for group in groups:
        for data_file in group.added:
            by_spec.setdefault(data_file.spec_id, []).append(data_file)
    for spec_id, added in sorted(by_spec.items()):
        with new_writer(ManifestContent.DATA, spec_id) as writer:
            for data_file in added:
                writer.add(
                    ManifestEntry.from_args(
                        status=ManifestEntryStatus.ADDED,
                        snapshot_id=snapshot_id,
                        sequence_number=starting_seq if version > 1 else None,
                        file_sequence_number=None,
                        data_file=data_file,
                    )
                )
                summary.add_file(data_file, schema, specs[spec_id])
        manifests.append(writer.to_manifest_file())

    affected: dict[tuple[ManifestContent, int], list[ManifestFile]] = {}
    kept: list[ManifestFile] = []
    for manifest in files.manifests:
        entries = files.entries[manifest.manifest_path]
        if all(e.status == ManifestEntryStatus.DELETED for e in entries):
            # Only removals of an earlier snapshot (such as the previous compaction's): they record that
            # snapshot's changes, not this one's. Iceberg and pyiceberg drop such manifests on the next
            # commit; carried along, every reader that opens them all (DuckDB does) would keep paying.
            continue
        if any(e.status != ManifestEntryStatus.DELETED and content_key(e) in removed for e in entries):
            affected.setdefault((manifest.content, manifest.partition_spec_id), []).append(manifest)
        else:
            kept.append(manifest)
    for (content, spec_id), group_manifests in sorted(affected.items()):
        live = [e for m in group_manifests for e in files.entries[m.manifest_path] if e.status != ManifestEntryStatus.DELETED]
        gone = [e for e in live if content_key(e) in removed]
        kept_entries = [e for e in live if content_key(e) not in removed]
        # Removed entries get a manifest of their own: with no live entry in it, readers skip it.
        for entries, record in ((gone, ManifestWriter.delete), (kept_entries, ManifestWriter.existing)):
            if entries:
                with new_writer(content, spec_id) as writer:
                    for entry in entries:
                        record(writer, entry)
                manifests.append(writer.to_manifest_file())
        for entry in gone:
            summary.remove_file(entry.data_file, schema, specs[spec_id])

    list_location = new_manifest_location(metadata.location, metadata.properties, commit_id, f"snap-{snapshot_id}-{attempt}")
    written.append(list_location)
    parent = files.snapshot
    sequence_number = metadata.next_sequence_number()
    first_row_id = metadata.next_row_id if version >= 3 else None
    added_rows = write_manifest_list_file(
        version, io.new_output(list_location), snapshot_id, parent.snapshot_id, sequence_number, first_row_id, manifests + kept
    )
    snapshot = Snapshot(
        snapshot_id=snapshot_id,
        parent_snapshot_id=parent.snapshot_id,
        sequence_number=sequence_number,
        timestamp_ms=snapshot_timestamp(metadata, parent),
        manifest_list=list_location,
        summary=_summary(summary, parent),
        schema_id=metadata.current_schema_id,
        first_row_id=first_row_id,
        added_rows=added_rows if version >= 3 else None,
    )
    return snapshot, len(removed_deletes)


def _summary(collector: SnapshotSummaryCollector, parent: Snapshot) -> Summary:
    """pyiceberg's totals arithmetic refuses ``replace``; it is the same as for an overwrite."""
    totals = update_snapshot_summaries(
        Summary(Operation.OVERWRITE, **collector.build()), parent.summary.additional_properties if parent.summary else None
    )
    return Summary(Operation.REPLACE, **totals.additional_properties)


def _new_snapshot_id(metadata: TableMetadata) -> int:
    """A positive 63-bit id, fixed across attempts: a retried commit is the same snapshot."""
    while True:
        candidate = uuid.uuid4().int & ((1 << 63) - 1)
        if candidate and metadata.snapshot_by_id(candidate) is None:
            return candidate


