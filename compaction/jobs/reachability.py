"""Which files a table's metadata reaches: metadata -> manifest lists -> manifests -> data and delete files.

Snapshot expiry and orphan removal are the two halves of one question -- "is anything still
pointing at this file?" -- so they share this one walk. Manifest lists and manifests are
immutable, so what one walk has read it never reads again; reads fan out over a small thread
pool because on S3 each is a round trip.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from pyiceberg.io import FileIO
from pyiceberg.manifest import ManifestEntryStatus, ManifestFile
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Snapshot

#: Location -> size in bytes where the metadata says it (manifests, data files), else ``None``.
FileSizes = dict[str, int | None]

_READERS = 8


class Reachability:
    """Reads (once) and answers which files a set of snapshots, or a whole table, references.

    It keeps only ``(path, size, live)`` per entry, not pyiceberg's whole ``ManifestEntry`` (with
    its column bounds) as compaction's ``ManifestCache`` does for one snapshot: these walks cover
    every snapshot of a table's history.
    """

    def __init__(self, io: FileIO) -> None:
        self.io = io
        self._lists: dict[str, tuple[ManifestFile, ...]] = {}
        self._entries: dict[str, tuple[tuple[str, int, bool], ...]] = {}
        self._lock = threading.Lock()

    def manifests(self, snapshot: Snapshot) -> tuple[ManifestFile, ...]:
        with self._lock:
            cached = self._lists.get(snapshot.manifest_list)
        if cached is None:
            cached = tuple(snapshot.manifests(self.io))
            with self._lock:
                self._lists[snapshot.manifest_list] = cached
        return cached

    def entries(self, manifest: ManifestFile) -> tuple[tuple[str, int, bool], ...]:
        """``(path, size, live)`` of every entry; ``live`` is false for a ``DELETED`` entry."""
        with self._lock:
            cached = self._entries.get(manifest.manifest_path)
        if cached is None:
            cached = tuple(
                (e.data_file.file_path, e.data_file.file_size_in_bytes, e.status != ManifestEntryStatus.DELETED)
                for e in manifest.fetch_manifest_entry(self.io, discard_deleted=False)
            )
            with self._lock:
                self._entries[manifest.manifest_path] = cached
        return cached

    def snapshot_files(self, snapshots: Iterable[Snapshot], live_only: bool) -> FileSizes:
        """Manifest lists, manifests and content files of ``snapshots``.

        With ``live_only``, a file only a ``DELETED`` entry names is left out: no snapshot in the set
        can read it, which is what expiry needs to know about the snapshots it keeps.
        """
        snapshots = list(snapshots)
        files: FileSizes = {s.manifest_list: None for s in snapshots}
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            manifests = {m.manifest_path: m for listed in pool.map(self.manifests, snapshots) for m in listed}
            for manifest, entries in zip(manifests.values(), pool.map(self.entries, manifests.values())):
                files[manifest.manifest_path] = manifest.manifest_length
                files.update((path, size) for path, size, live in entries if live or not live_only)
        return files

    def table_files(self, metadata: TableMetadata, metadata_location: str) -> FileSizes:
        """Everything the table's current metadata references, from any snapshot, in any entry state.

        This is what orphan removal must never touch, so it errs on the side of keeping: files of
        ``DELETED`` entries count too, as do older metadata files still in the metadata log.
        """
        files = self.snapshot_files(metadata.snapshots, live_only=False)
        files[metadata_location] = None
        files.update((entry.metadata_file, None) for entry in metadata.metadata_log)
        files.update(statistics_files(metadata))
        return files


def statistics_files(metadata: TableMetadata, snapshot_ids: set[int] | None = None) -> FileSizes:
    """The table- and partition-statistics files of ``snapshot_ids`` (of every snapshot for ``None``)."""
    return {
        s.statistics_path: s.file_size_in_bytes
        for s in (*metadata.statistics, *metadata.partition_statistics)
        if snapshot_ids is None or s.snapshot_id in snapshot_ids
    }
