"""Manifest rewrite: many small manifests of the current snapshot merged into few, as a ``replace`` snapshot.

Every append adds at least one manifest, so a table written in small batches soon has
thousands; planning a scan then reads each of them. Like Iceberg's ``RewriteManifests``, this
merges the live entries of manifests smaller than ``commit.manifest.target-size-bytes`` (8 MB),
per content (data, deletes) and partition spec, once there are at least
``commit.manifest.min-count-to-merge`` (100) of them. Entries keep their snapshot ids and
sequence numbers (they become ``EXISTING``), so no reader sees a row change; ``DELETED`` entries
are dropped, and so is a manifest holding nothing else (what a compaction leaves: on a table
nobody writes to after it, no other commit would drop it). The new snapshot has the same files
and totals as its parent.

The commit requires ``main`` to still be the snapshot the rewrite was built on; if another
writer moved it, this attempt's files are deleted and the rewrite is planned again on the new
state (manifests are small: redoing it is cheaper than merging two lists of manifests).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass

from pyiceberg.io import FileIO
from pyiceberg.manifest import ManifestEntryStatus, ManifestFile
from pyiceberg.table import TableProperties
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import MAIN_BRANCH
from pyiceberg.table.snapshots import Operation, Snapshot, Summary
from pyiceberg.typedef import Properties
from pyiceberg.utils.properties import property_as_int

from iceshelf.compaction.manifests.attempt import attempt_files, commit_on_main
from iceshelf.compaction.manifests.codec import (
    manifest_writer,
    new_manifest_location,
    read_manifest,
    read_manifest_list,
    write_manifest_list_file,
)
from iceshelf.tables.errors import CommitFailedException
from iceshelf.tables.metadata.history import snapshot_timestamp
from iceshelf.tables.names import Identifier
from iceshelf.tables.objectstore.fileio import StoreFileIO
from iceshelf.tables.retry import PATIENCE_S, backoff, patient_attempts
from iceshelf.tables.tablestore import TableStore

_ATTEMPTS = 5


@dataclass(frozen=True)
class ManifestRewriteResult:
    replaced: int = 0
    replaced_bytes: int = 0
    created: int = 0
    created_bytes: int = 0
    snapshot_id: int | None = None


def plan_manifest_rewrite(manifests: list[ManifestFile], target_bytes: int, min_count: int) -> list[list[ManifestFile]]:
    """Pure: the groups of small manifests to merge, each into one manifest of at most ``target_bytes``,
    and -- each alone, to be dropped -- the manifests that only record removals (``DELETED`` entries)."""
    removals = [[m] for m in manifests if _removals_only(m)]
    small: dict[tuple[int, int], list[ManifestFile]] = defaultdict(list)
    for manifest in manifests:
        if manifest.manifest_length < target_bytes and not _removals_only(manifest):
            small[(manifest.content, manifest.partition_spec_id)].append(manifest)
    groups: list[list[ManifestFile]] = []
    for candidates in small.values():
        if len(candidates) < min_count:
            continue
        group: list[ManifestFile] = []
        for manifest in candidates:
            if group and sum(m.manifest_length for m in group) + manifest.manifest_length > target_bytes:
                groups.append(group)
                group = []
            group.append(manifest)
        groups.append(group)
    return [group for group in groups if len(group) > 1] + removals


def _removals_only(manifest: ManifestFile) -> bool:
    """A manifest whose entries are all ``DELETED``: it records what the snapshot that wrote it removed
    (a compaction's inputs), which later snapshots need not repeat -- Iceberg drops it on the next
    commit. Kept, it costs every reader that opens each listed manifest (DuckDB does) a full read."""
    return manifest.added_files_count == 0 and manifest.existing_files_count == 0 and bool(manifest.deleted_files_count)


def manifest_thresholds(properties: Properties) -> tuple[int, int]:
    """``(target size, minimum count)`` from the table's ``commit.manifest.*`` properties."""
    target = property_as_int(
        properties, TableProperties.MANIFEST_TARGET_SIZE_BYTES, TableProperties.MANIFEST_TARGET_SIZE_BYTES_DEFAULT
    )
    count = property_as_int(
        properties, TableProperties.MANIFEST_MIN_MERGE_COUNT, TableProperties.MANIFEST_MIN_MERGE_COUNT_DEFAULT
    )
    return int(target), max(2, int(count))


def rewrite_manifests(tables: TableStore, ident: Identifier, dry_run: bool = False) -> ManifestRewriteResult:
    """Merge the current snapshot's small manifests, if there are enough of them to be worth it."""
    io = StoreFileIO(tables.objects)
    for attempt in patient_attempts(_ATTEMPTS):
        metadata = tables.load_table(ident).metadata
        head = metadata.snapshot_by_name(MAIN_BRANCH)
        if head is None:
            return ManifestRewriteResult()
        manifests = read_manifest_list(io, head.manifest_list)
        groups = plan_manifest_rewrite(manifests, *manifest_thresholds(metadata.properties))
        replaced = [m for group in groups for m in group]
        if not groups or dry_run:
            return ManifestRewriteResult(len(replaced), sum(m.manifest_length for m in replaced))
        try:
            with attempt_files(io) as written:
                snapshot, created = _build(io, metadata, head, manifests, groups, written)
                commit_on_main(tables, ident, metadata.table_uuid, snapshot)
        except CommitFailedException:  # main moved on: plan again on the new state
            backoff(attempt)
            continue
        return ManifestRewriteResult(
            len(replaced),
            sum(m.manifest_length for m in replaced),
            len(created),
            sum(m.manifest_length for m in created),
            snapshot.snapshot_id,
        )
    raise CommitFailedException(f"Manifest rewrite of {ident} kept losing commit races for {PATIENCE_S:.0f} s; retry later")


def _build(
    io: FileIO,
    metadata: TableMetadata,
    head: Snapshot,
    manifests: list[ManifestFile],
    groups: list[list[ManifestFile]],
    written: list[str],
) -> tuple[Snapshot, list[ManifestFile]]:
    """Write the merged manifests and the new manifest list (recording each in ``written``)."""
    snapshot_id = metadata.new_snapshot_id()
    commit_id = uuid.uuid4()
    schema, specs = metadata.schema(), metadata.specs()
    created: list[ManifestFile] = []
    for number, group in enumerate(groups):
        entries = [e for m in group for e in read_manifest(io, m) if e.status != ManifestEntryStatus.DELETED]
        if not entries:
            continue  # only DELETED entries: the group merges into nothing
        location = new_manifest_location(metadata.location, metadata.properties, commit_id, f"m{number}")
        written.append(location)
        with manifest_writer(
            metadata.format_version,
            group[0].content,
            specs[group[0].partition_spec_id],
            schema,
            io.new_output(location),
            snapshot_id,
        ) as writer:
            for entry in entries:
                writer.existing(entry)
        created.append(writer.to_manifest_file())
    merged = {m.manifest_path for group in groups for m in group}
    list_location = new_manifest_location(metadata.location, metadata.properties, commit_id, f"snap-{snapshot_id}")
    written.append(list_location)
    sequence_number = metadata.next_sequence_number()
    first_row_id = metadata.next_row_id if metadata.format_version >= 3 else None
    added_rows = write_manifest_list_file(
        metadata.format_version,
        io.new_output(list_location),
        snapshot_id,
        head.snapshot_id,
        sequence_number,
        first_row_id,
        created + [m for m in manifests if m.manifest_path not in merged],
    )
    totals = {k: v for k, v in (head.summary.additional_properties if head.summary else {}).items() if k.startswith("total-")}
    summary = Summary(
        Operation.REPLACE,
        **totals,
        **{
            "manifests-created": str(len(created)),
            "manifests-replaced": str(len(merged)),
            "manifests-kept": str(len(manifests) - len(merged)),
        },
    )
    snapshot = Snapshot(
        snapshot_id=snapshot_id,
        parent_snapshot_id=head.snapshot_id,
        sequence_number=sequence_number,
        timestamp_ms=snapshot_timestamp(metadata, head),
        manifest_list=list_location,
        summary=summary,
        schema_id=metadata.current_schema_id,
        first_row_id=first_row_id,
        added_rows=added_rows if first_row_id is not None else None,
    )
    return snapshot, created
