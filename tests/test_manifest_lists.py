"""The server's manifest-list writer (``tables/manifest_lists.py``) writes what pyiceberg writes.

It builds the Avro file itself, joining kept entry encodings instead of encoding every entry again,
so these compare it byte for byte with pyiceberg's ``write_manifest_list`` (up to the random sync
marker), and read lists stacked on kept ones back with pyiceberg's reader.
"""

from __future__ import annotations

import pytest
from pyiceberg.manifest import ManifestContent, ManifestFile, read_manifest_list, write_manifest_list
from pyiceberg.table.snapshots import Snapshot

from iceshelf.tables.metadata.manifest_lists import ManifestLists
from iceshelf.tables.objectstore.fileio import StoreFileIO
from iceshelf.tables.objectstore.memory import MemoryStore

SYNC_SIZE = 16


def manifest(snapshot_id: int, sequence_number: int, added: int = 1, deleted: int = 0) -> ManifestFile:
    return ManifestFile.from_args(
        _table_format_version=2,
        manifest_path=f"memory://warehouse/t/metadata/m-{snapshot_id}.avro",
        manifest_length=4000 + snapshot_id,
        partition_spec_id=0,
        content=ManifestContent.DATA,
        sequence_number=sequence_number,
        min_sequence_number=sequence_number,
        added_snapshot_id=snapshot_id,
        added_files_count=added,
        existing_files_count=0,
        deleted_files_count=deleted,
        added_rows_count=snapshot_id,
        existing_rows_count=0,
        deleted_rows_count=0,
        partitions=[],
    )


def snapshot(snapshot_id: int, parent: int | None, sequence_number: int) -> Snapshot:
    return Snapshot(snapshot_id=snapshot_id, parent_snapshot_id=parent, sequence_number=sequence_number, manifest_list="-")


def without_sync(data: bytes) -> bytes:
    """The file with its sync marker (its last 16 bytes, repeated after the header and each block) blanked."""
    return data.replace(data[-SYNC_SIZE:], b"\0" * SYNC_SIZE)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("parent", [None, 7])
def test_a_list_is_byte_for_byte_what_pyiceberg_writes(version: int, parent: int | None) -> None:
    store = MemoryStore()
    io = StoreFileIO(store)
    entries = [manifest(i, i) for i in (9, 8, 3)]
    with write_manifest_list(version, io.new_output("memory://warehouse/theirs.avro"), 9, parent, 9, "deflate") as writer:
        writer.add_manifests(entries)
    ManifestLists(io).write("memory://warehouse/ours.avro", snapshot(9, parent, 9), version, entries, None)
    theirs, ours = (store.get(f"{name}.avro").data for name in ("theirs", "ours"))
    assert without_sync(ours) == without_sync(theirs)


def test_lists_stacked_on_kept_lists_read_back_whole() -> None:
    store = MemoryStore()
    io = StoreFileIO(store)
    lists = ManifestLists(io)
    base = None
    for i in range(1, 5):  # each append's list: its own manifest, then all of the list before it
        base = lists.write(f"memory://warehouse/snap-{i}.avro", snapshot(i, i - 1 or None, i), 2, [manifest(i, i)], base)
    expected = [manifest(i, i) for i in (4, 3, 2, 1)]
    assert list(read_manifest_list(io.new_input("memory://warehouse/snap-4.avro"))) == expected
    assert list(ManifestLists(io).read("memory://warehouse/snap-4.avro").manifests) == expected
    assert lists.read("memory://warehouse/snap-4.avro").manifests == tuple(expected)


def test_manifests_listing_only_removed_files_are_not_carried_on() -> None:
    """A compaction's ``replace`` leaves a manifest of removals; an append on top drops it, as pyiceberg's does."""
    io = StoreFileIO(MemoryStore())
    lists = ManifestLists(io)
    removals = manifest(5, 5, added=0, deleted=2000)
    base = lists.write("memory://warehouse/snap-5.avro", snapshot(5, 4, 5), 2, [manifest(4, 4), removals], None)
    lists.write("memory://warehouse/snap-6.avro", snapshot(6, 5, 6), 2, [manifest(6, 6)], base)
    assert list(read_manifest_list(io.new_input("memory://warehouse/snap-6.avro"))) == [manifest(6, 6), manifest(4, 4)]
