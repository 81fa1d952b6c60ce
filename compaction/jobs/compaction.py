"""The scheduler's ``icebergCompaction`` job: compact small data files, then merge small manifests.

Whether it is due is decided without reading a manifest where possible: the current snapshot's
summary says how many data and delete files the table has and their total size, which is
enough to tell "many small files" or "deletes to apply"; only otherwise is the one manifest
list read -- many small manifests, or live data files of an older partition spec, to move into
the current one -- and its verdict remembered (manifest lists never change). A table is looked at
again only once its snapshot moved past the one the last run left.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from pyiceberg.manifest import ManifestContent
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import MAIN_BRANCH

from iceshelf.compaction.jobs.config import CompactionConfig, plan_options
from iceshelf.compaction.jobs.records import JobRun
from iceshelf.compaction.manifests.codec import read_manifest_list
from iceshelf.compaction.manifests.merge import (
    ManifestRewriteResult,
    manifest_thresholds,
    plan_manifest_rewrite,
    rewrite_manifests,
)
from iceshelf.compaction.rewrite.compact import CompactionOptions, CompactionResult, OnProgress, compact_table
from iceshelf.compaction.rewrite.planner import target_file_size
from iceshelf.tables.names import Identifier
from iceshelf.tables.objectstore.fileio import StoreFileIO
from iceshelf.tables.tablestore import TableStore

#: The planner's own default: files below this share of the target are small.
_SMALL_SHARE = 0.75
_VERDICTS = 4096


class CompactionJob:
    """Due-checks and runs of ``icebergCompaction`` for one warehouse."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables
        self.io = StoreFileIO(tables.objects)
        #: ``(manifest list, current spec id)`` -> due: a spec evolution changes the verdict, not the list.
        self._manifest_verdicts: OrderedDict[tuple[str, int], bool] = OrderedDict()

    def due(self, metadata: TableMetadata, config: CompactionConfig, last: JobRun | None) -> bool:
        head = metadata.snapshot_by_name(MAIN_BRANCH)
        if head is None or (last is not None and last.detail.get("snapshotId") == head.snapshot_id):
            return False
        summary = head.summary.additional_properties if head.summary else {}
        files = int(summary.get("total-data-files", 0))
        size = int(summary.get("total-files-size", 0))
        options = plan_options(config.settings.icebergCompaction)
        target = target_file_size(metadata.properties, options)
        if int(summary.get("total-delete-files", 0)) or (
            files >= options.min_input_files and size < files * target * _SMALL_SHARE
        ):
            return True
        return self._manifest_list_verdict(metadata, head.manifest_list)

    def _manifest_list_verdict(self, metadata: TableMetadata, manifest_list: str) -> bool:
        key = (manifest_list, metadata.default_spec_id)
        verdict = self._manifest_verdicts.get(key)
        if verdict is None:
            manifests = read_manifest_list(self.io, manifest_list)
            verdict = bool(plan_manifest_rewrite(manifests, *manifest_thresholds(metadata.properties))) or any(
                m.content == ManifestContent.DATA
                and m.partition_spec_id != metadata.default_spec_id
                and (m.added_files_count or 0) + (m.existing_files_count or 0) > 0
                for m in manifests
            )
            self._manifest_verdicts[key] = verdict
            if len(self._manifest_verdicts) > _VERDICTS:
                self._manifest_verdicts.popitem(last=False)
        return verdict

    def run(self, ident: Identifier, config: CompactionConfig) -> dict:
        """Compact, then merge manifests; the counts of the ``JobRun``, with the snapshot it leaves."""
        return run_compaction(self.tables, ident, CompactionOptions(plan=plan_options(config.settings.icebergCompaction))).counts()


@dataclass(frozen=True)
class CompactionRun:
    data: CompactionResult
    manifests: ManifestRewriteResult
    #: ``main`` after both steps.
    snapshot_id: int | None

    def counts(self) -> dict:
        """The counts of this run's ``JobRun``: data files and manifests, in and out."""
        data, manifests = self.data, self.manifests
        return {
            "filesIn": data.files_in + manifests.replaced,
            "bytesIn": data.bytes_in + manifests.replaced_bytes,
            "filesOut": data.files_out + manifests.created,
            "bytesOut": data.bytes_out + manifests.created_bytes,
            "detail": {
                "snapshotId": self.snapshot_id,
                "strategy": data.strategy,
                "groups": data.groups,
                "conflictedGroups": data.conflicted_groups,
                "deleteFilesRemoved": data.delete_files_removed,
                "manifestsReplaced": manifests.replaced,
                "manifestsCreated": manifests.created,
            },
        }


def run_compaction(
    tables: TableStore, ident: Identifier, options: CompactionOptions, on_progress: OnProgress | None = None
) -> CompactionRun:
    """What ``icebergCompaction`` does to a table, from the scheduler or ``iceshelf compact``: rewrite
    small data files, then merge small manifests -- which also drops the manifest that records the
    compaction's removals, so readers do not keep opening it until some later commit would."""
    data = compact_table(tables, ident, options, on_progress)
    manifests = rewrite_manifests(tables, ident)
    head = tables.load_table(ident).metadata.snapshot_by_name(MAIN_BRANCH)
    return CompactionRun(data, manifests, head.snapshot_id if head else None)
