"""The live content files of one snapshot, and which delete files apply to which data file.

A rewrite has to know, for every data file it reads, exactly the deletes a reader would apply
(the spec's scan-planning rules), and after the rewrite which delete files no longer apply to
anything. Both questions are answered here from the manifests alone; the rules:

* a position delete file or deletion vector applies to a data file it names when its data
  sequence number is >= the data file's (a DV names exactly one file; a position delete file
  is narrowed by ``referenced_data_file`` or by the bounds of its ``file_path`` column);
* an equality delete file applies when its sequence number is > the data file's and it is
  global (unpartitioned spec) or of the same spec and partition.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pyiceberg.conversions import from_bytes
from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFileContent, ManifestContent, ManifestEntry, ManifestEntryStatus, ManifestFile
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.types import StringType

from iceshelf.compaction.manifests.codec import (
    content_range,
    is_deletion_vector,
    read_manifest,
    read_manifest_list,
    referenced_data_file,
)

#: Field id of the ``file_path`` column of position delete files (reserved by the spec).
DELETE_FILE_PATH_ID = 2147483546

_READERS = 8

PartitionKey = tuple[int, tuple]


def partition_key(entry: ManifestEntry) -> PartitionKey:
    """``(spec id, partition values)``: files can only be compacted together within one of these."""
    data_file = entry.data_file
    return data_file.spec_id, tuple(data_file.partition[pos] for pos in range(len(data_file.partition)))


def data_sequence_number(entry: ManifestEntry) -> int:
    return entry.sequence_number or 0


def content_key(entry: ManifestEntry) -> str:
    """Identity of a content file entry: its path, except that the deletion vectors in one Puffin
    file are separate entries told apart by their offset."""
    data_file = entry.data_file
    if is_deletion_vector(data_file) and (where := content_range(data_file)) is not None:
        return f"{data_file.file_path}#{where[0]}"
    return data_file.file_path


class ManifestCache:
    """Manifests are immutable: read each once per job, even across commit retries."""

    def __init__(self, io: FileIO) -> None:
        self.io = io
        self._entries: dict[str, list[ManifestEntry]] = {}
        self._lock = threading.Lock()

    def entries(self, manifest: ManifestFile) -> list[ManifestEntry]:
        with self._lock:
            cached = self._entries.get(manifest.manifest_path)
        if cached is None:
            cached = read_manifest(self.io, manifest)
            with self._lock:
                self._entries[manifest.manifest_path] = cached
        return cached


@dataclass
class TableFiles:
    snapshot: Snapshot
    manifests: list[ManifestFile]
    #: Every entry of every manifest, ``DELETED`` ones included, by manifest path.
    entries: dict[str, list[ManifestEntry]]
    #: Live entries by ``content_key``.
    data: dict[str, ManifestEntry] = field(default_factory=dict)
    deletes: dict[str, ManifestEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, cache: ManifestCache, snapshot: Snapshot) -> "TableFiles":
        manifests = read_manifest_list(cache.io, snapshot.manifest_list)
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            read = list(pool.map(cache.entries, manifests))
        files = cls(snapshot, manifests, {m.manifest_path: entries for m, entries in zip(manifests, read)})
        for manifest, entries in zip(manifests, read):
            live = files.data if manifest.content == ManifestContent.DATA else files.deletes
            for entry in entries:
                if entry.status != ManifestEntryStatus.DELETED:
                    live[content_key(entry)] = entry
        return files

    def delete_index(self, metadata: TableMetadata) -> "DeleteIndex":
        return DeleteIndex(list(self.deletes.values()), metadata)


class DeleteIndex:
    """Which live delete files apply to a data file.

    Position deletes (and DVs) only ever apply within their own spec and partition, as in Java's
    ``DeleteFileIndex``; equality deletes too, unless their spec is unpartitioned (global).
    """

    def __init__(self, deletes: list[ManifestEntry], metadata: TableMetadata) -> None:
        self._by_file: dict[str, list[ManifestEntry]] = defaultdict(list)
        self._positional: dict[PartitionKey, list[ManifestEntry]] = defaultdict(list)
        self._equality_global: list[ManifestEntry] = []
        self._equality_by_partition: dict[PartitionKey, list[ManifestEntry]] = defaultdict(list)
        specs = metadata.specs()
        for entry in deletes:
            data_file = entry.data_file
            if data_file.content == DataFileContent.EQUALITY_DELETES:
                if specs[data_file.spec_id].is_unpartitioned():
                    self._equality_global.append(entry)
                else:
                    self._equality_by_partition[partition_key(entry)].append(entry)
            elif (single := referenced_path(entry)) is not None:
                self._by_file[single].append(entry)
            else:
                self._positional[partition_key(entry)].append(entry)

    def for_data_file(self, entry: ManifestEntry) -> list[ManifestEntry]:
        path, seq, key = entry.data_file.file_path, data_sequence_number(entry), partition_key(entry)
        positional = [d for d in self._by_file.get(path, ()) if data_sequence_number(d) >= seq]
        positional += [d for d in self._positional.get(key, ()) if data_sequence_number(d) >= seq and may_reference(d, path)]
        equality = [
            d
            for d in (*self._equality_global, *self._equality_by_partition.get(key, ()))
            if data_sequence_number(d) > seq
        ]
        return positional + equality


def referenced_path(entry: ManifestEntry) -> str | None:
    """The one data file a position delete file or DV targets, when the manifest says so."""
    data_file = entry.data_file
    if (path := referenced_data_file(data_file)) is not None:
        return path
    bounds = _path_bounds(entry)
    return bounds[0] if bounds is not None and bounds[0] == bounds[1] else None


def may_reference(entry: ManifestEntry, path: str) -> bool:
    """Conservative: without bounds a position delete file may reference anything."""
    if (single := referenced_data_file(entry.data_file)) is not None:
        return single == path
    bounds = _path_bounds(entry)
    return bounds is None or bounds[0] <= path <= bounds[1]


def _path_bounds(entry: ManifestEntry) -> tuple[str, str] | None:
    lower = (entry.data_file.lower_bounds or {}).get(DELETE_FILE_PATH_ID)
    upper = (entry.data_file.upper_bounds or {}).get(DELETE_FILE_PATH_ID)
    if lower is None or upper is None:
        return None
    return from_bytes(StringType(), lower), from_bytes(StringType(), upper)
