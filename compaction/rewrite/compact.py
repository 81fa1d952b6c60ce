"""``compact_table``: plan, rewrite every group, commit one ``replace`` snapshot -- the job the
scheduler and ``iceshelf compact`` run.

Failure leaves the table as it was. Before the commit, every output file of the job lies in a
directory of its own that the job removes on any error or conflict; a crash (the process dies)
leaves those files unreferenced, for orphan removal. Only an outcome-unknown commit keeps them,
since the table may then reference them.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from pyiceberg.manifest import FileFormat, ManifestEntry
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import MAIN_BRANCH
from pyiceberg.typedef import Record

from iceshelf.compaction.rewrite.datapath import Engine, EngineOptions
from iceshelf.compaction.rewrite.deletes import DeleteTargets
from iceshelf.compaction.rewrite.groups import RewriteJob, rewrite
from iceshelf.compaction.rewrite.live_files import DeleteIndex, ManifestCache, TableFiles, content_key, partition_key
from iceshelf.compaction.rewrite.ordering import Ordering, sortable, zorder_of
from iceshelf.compaction.rewrite.planner import REPARTITION, Candidate, Group, Plan, PlanOptions, plan
from iceshelf.compaction.rewrite.replace import GroupRewrite, commit_replace
from iceshelf.tables.errors import CommitStateUnknownException
from iceshelf.tables.names import Identifier
from iceshelf.tables.objectstore.fileio import StoreFileIO
from iceshelf.tables.tablestore import LoadedTable, TableStore

log = logging.getLogger("iceshelf.compaction")

#: ``(bytes rewritten so far, bytes to rewrite)`` after each group.
OnProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class CompactionOptions:
    plan: PlanOptions = field(default_factory=PlanOptions)
    engine: EngineOptions = field(default_factory=EngineOptions)
    commit_attempts: int = 10


@dataclass(frozen=True)
class CompactionResult:
    table: str
    strategy: str
    target_file_size: int
    #: The ``replace`` snapshot, or ``None`` when there was nothing to do.
    snapshot_id: int | None
    groups: int
    conflicted_groups: int
    files_in: int
    bytes_in: int
    records_in: int
    files_out: int
    bytes_out: int
    records_out: int
    delete_files_removed: int
    seconds: float

    def counts(self) -> dict:
        """The counts of this run's ``JobRun`` (the maintenance history): files and bytes in and out."""
        return {
            "filesIn": self.files_in,
            "bytesIn": self.bytes_in,
            "filesOut": self.files_out,
            "bytesOut": self.bytes_out,
            "detail": {
                "snapshotId": self.snapshot_id,
                "strategy": self.strategy,
                "groups": self.groups,
                "conflictedGroups": self.conflicted_groups,
                "deleteFilesRemoved": self.delete_files_removed,
            },
        }


@dataclass
class PlannedCompaction:
    """The table as the plan saw it: the starting snapshot and everything read from it."""

    table: LoadedTable
    files: TableFiles | None
    index: DeleteIndex | None
    plan: Plan
    cache: ManifestCache
    #: The partition spec the rewritten files are written under.
    spec_id: int
    order: Ordering


def plan_table(tables: TableStore, ident: Identifier, options: CompactionOptions = CompactionOptions()) -> PlannedCompaction:
    """Read the table's current ``main`` snapshot and plan; no writes (``--dry-run`` stops here)."""
    table = tables.load_table(ident)
    metadata = table.metadata
    cache = ManifestCache(StoreFileIO(tables.objects))
    spec_id = metadata.default_spec_id if options.plan.output_spec_id is None else options.plan.output_spec_id
    if spec_id not in metadata.specs():
        raise ValueError(f"{ident} has no partition spec {spec_id}")
    head = metadata.snapshot_by_name(MAIN_BRANCH)
    files = index = None
    candidates = []
    if head is not None:
        files = TableFiles.load(cache, head)
        index = files.delete_index(metadata)
        candidates = [
            Candidate(
                location,
                e.data_file.file_size_in_bytes,
                e.data_file.record_count,
                partition_key(e),
                len(index.for_data_file(e)),
                misplaced=e.data_file.spec_id != spec_id,
            )
            for location, e in files.data.items()
            if e.data_file.file_format == FileFormat.PARQUET
        ]
    the_plan = plan(candidates, metadata.properties, sortable(metadata), options.plan)
    return PlannedCompaction(table, files, index, the_plan, cache, spec_id, _order(metadata, the_plan, options.plan))


def _order(metadata: TableMetadata, the_plan: Plan, options: PlanOptions) -> Ordering:
    if the_plan.strategy == "sort":
        return metadata.sort_order()
    if the_plan.strategy == "z-order":
        return zorder_of(metadata, options.zorder_columns)
    return None


def compact_table(
    tables: TableStore,
    ident: Identifier,
    options: CompactionOptions = CompactionOptions(),
    on_progress: OnProgress | None = None,
) -> CompactionResult:
    started = time.perf_counter()
    planned = plan_table(tables, ident, options)
    metadata, the_plan = planned.table.metadata, planned.plan
    if not the_plan.groups:
        return _result(ident, the_plan, None, [], [], 0, started)
    assert planned.files is not None and planned.index is not None
    io = planned.cache.io
    engine = Engine(tables.objects, options.engine)
    job_id = uuid.uuid4().hex[:12]
    rewrites: list[GroupRewrite] = []
    outputs: list[str] = []
    try:
        try:
            done = 0
            for n, group in enumerate(the_plan.groups):
                job = _job(metadata, planned, the_plan, group, f"{job_id}-{n}")
                outputs.append(job.output)
                rewritten = rewrite(engine, io, job, f"g{n}")
                applied = {content_key(d): d for d in job.deletes}
                rewrites.append(GroupRewrite(job.inputs, rewritten.outputs, applied, rewritten.references, job.output))
                done += group.size
                if on_progress is not None:
                    on_progress(done, the_plan.size)
            committed = commit_replace(
                tables, ident, io, planned.cache, metadata, planned.files, rewrites, DeleteTargets(engine), options.commit_attempts
            )
        except CommitStateUnknownException:
            raise  # the table may reference the outputs: keep them
        except Exception:
            _remove(engine, outputs)
            raise
        _remove(engine, [g.output for g in committed.conflicted])
    finally:
        engine.close()
    log.info("compacted %s: snapshot %s, %d of %d groups", ident, committed.snapshot_id, len(committed.committed), len(rewrites))
    return _result(
        ident, the_plan, committed.snapshot_id, committed.committed, committed.conflicted, committed.removed_delete_files, started
    )


def _job(metadata: TableMetadata, planned: PlannedCompaction, the_plan: Plan, group: Group, name: str) -> RewriteJob:
    assert planned.files is not None and planned.index is not None
    inputs: dict[str, ManifestEntry] = {f.path: planned.files.data[f.path] for f in group.files}
    deletes: dict[str, ManifestEntry] = {}
    for entry in inputs.values():
        for delete in planned.index.for_data_file(entry):
            deletes[content_key(delete)] = delete
    spec = metadata.specs()[planned.spec_id]
    directory = (metadata.properties.get("write.data.path") or f"{metadata.location.rstrip('/')}/data").rstrip("/")
    partition: Record | None
    if spec.is_unpartitioned():
        partition = Record()
    elif group.partition == REPARTITION:
        partition = None  # rows are split by the output spec, into directories under the job's
    else:  # the inputs' own partition, of the output spec
        partition = next(iter(inputs.values())).data_file.partition
        directory += "/" + spec.partition_to_path(partition, metadata.schema())
    return RewriteJob(
        metadata=metadata,
        spec_id=planned.spec_id,
        partition=partition,
        inputs=inputs,
        deletes=list(deletes.values()),
        order=planned.order if group.sort else None,
        target_file_size=the_plan.target_file_size,
        output=f"{directory}/compaction-{name}",
    )


def _remove(engine: Engine, directories: list[str]) -> None:
    for directory in directories:
        try:
            engine.remove_prefix(directory)
        except Exception:  # left for orphan removal
            log.warning("could not remove compaction output %s", directory, exc_info=True)


def _result(
    ident: Identifier,
    the_plan: Plan,
    snapshot_id: int | None,
    committed: list[GroupRewrite],
    conflicted: list[GroupRewrite],
    delete_files_removed: int,
    started: float,
) -> CompactionResult:
    return CompactionResult(
        table=str(ident),
        strategy=the_plan.strategy,
        target_file_size=the_plan.target_file_size,
        snapshot_id=snapshot_id,
        groups=len(committed),
        conflicted_groups=len(conflicted),
        files_in=sum(len(g.removed) for g in committed),
        bytes_in=sum(e.data_file.file_size_in_bytes for g in committed for e in g.removed.values()),
        records_in=sum(e.data_file.record_count for g in committed for e in g.removed.values()),
        files_out=sum(len(g.added) for g in committed),
        bytes_out=sum(f.file_size_in_bytes for g in committed for f in g.added),
        records_out=sum(f.record_count for g in committed for f in g.added),
        delete_files_removed=delete_files_removed,
        seconds=time.perf_counter() - started,
    )
