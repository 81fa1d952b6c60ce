"""The scheduler's ``icebergCompaction`` job: compact small data files, then merge small manifests.

Whether it is due is decided without reading a manifest where possible: the current snapshot's
summary says how many data and delete files the table has and their total size, which is
enough to tell "many small files" or "deletes to apply"; only otherwise is the one manifest
list read, and its verdict remembered (manifest lists never change). A table is looked at
again only once its snapshot moved past the one the last run left.
"""

from __future__ import annotations

from collections import OrderedDict

from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import MAIN_BRANCH

from compaction.compact import CompactionOptions, compact_table
from compaction.config import CompactionConfig, JobRun, plan_options
from compaction.manifest_io import read_manifest_list
from compaction.manifests import manifest_thresholds, plan_manifest_rewrite, rewrite_manifests
from compaction.planner import target_file_size
from tables.fileio import StoreFileIO
from tables.names import Identifier
from tables.tablestore import TableStore

#: The planner's own default: files below this share of the target are small.
_SMALL_SHARE = 0.75
_VERDICTS = 4096


class CompactionJob:
    """Due-checks and runs of ``icebergCompaction`` for one warehouse."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables
        self.io = StoreFileIO(tables.store)
        self._manifest_verdicts: OrderedDict[str, bool] = OrderedDict()

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
        return self._many_small_manifests(metadata, head.manifest_list)

    def _many_small_manifests(self, metadata: TableMetadata, manifest_list: str) -> bool:
        verdict = self._manifest_verdicts.get(manifest_list)
        if verdict is None:
            manifests = read_manifest_list(self.io, manifest_list)
            verdict = bool(plan_manifest_rewrite(manifests, *manifest_thresholds(metadata.properties)))
            self._manifest_verdicts[manifest_list] = verdict
            if len(self._manifest_verdicts) > _VERDICTS:
                self._manifest_verdicts.popitem(last=False)
        return verdict

    def run(self, ident: Identifier, config: CompactionConfig) -> dict:
        """Compact, then merge manifests; the counts of the ``JobRun``, with the snapshot it leaves."""
        data = compact_table(self.tables, ident, CompactionOptions(plan=plan_options(config.settings.icebergCompaction)))
        manifests = rewrite_manifests(self.tables, ident)
        head = self.tables.load_table(ident).metadata.snapshot_by_name(MAIN_BRANCH)
        return {
            "filesIn": data.files_in + manifests.replaced,
            "bytesIn": data.bytes_in + manifests.replaced_bytes,
            "filesOut": data.files_out + manifests.created,
            "bytesOut": data.bytes_out + manifests.created_bytes,
            "detail": {
                "snapshotId": head.snapshot_id if head else None,
                "strategy": data.strategy,
                "groups": data.groups,
                "conflictedGroups": data.conflicted_groups,
                "deleteFilesRemoved": data.delete_files_removed,
                "manifestsReplaced": manifests.replaced,
                "manifestsCreated": manifests.created,
            },
        }
