"""Recovery, and the invariants every scenario checks on a warehouse.

Recovery is what a restarted replica does: read every entry, which settles the renames and
transactions a crash left half done (the clock is already past every protocol timeout when it
runs). The invariants are stated over what any client could observe, not over the protocol's
internals, so a broken protocol cannot satisfy them by accident.
"""

from __future__ import annotations

from typing import Iterator

from pyiceberg.table.metadata import TableMetadata

from iceshelf.tables.metadata.files import MetadataFile
from iceshelf.tables.names import Identifier
from iceshelf.tables.state.keys import entries_prefix, entry_name_from_key, namespace_from_key, namespaces_prefix
from iceshelf.tables.state.pointer import TOMBSTONES, Pointer
from iceshelf.tables.tablestore import TableStore

#: The root of every namespace's entries ("_catalog/entries/"), derived rather than spelled out.
ENTRIES_ROOT = entries_prefix(("-",)).rsplit("/", 2)[0] + "/"


def pointers(tables: TableStore) -> Iterator[tuple[Identifier, Pointer]]:
    """Every entry of the warehouse, raw, across all namespaces -- also those of dropped ones."""
    store = tables.objects
    for meta in list(store.list(ENTRIES_ROOT)):
        segment = meta.key[len(ENTRIES_ROOT) :].split("/", 1)[0]
        namespace = namespace_from_key(f"{namespaces_prefix()}{segment}.json")
        data = store.get(meta.key).data
        yield Identifier(namespace, entry_name_from_key(meta.key)), Pointer.from_bytes(data)


def recover(store) -> TableStore:
    """A restarted replica on the same objects, once it has read every entry (which settles them)."""
    tables = TableStore("recovery", store)
    for ident, _ in list(pointers(tables)):
        tables.entries.read(ident)
    return tables


def check_pointers(tables: TableStore, settled: bool) -> None:
    """I1 at any moment: a live pointer names only metadata files that exist.

    Once ``settled`` (after recovery), also: every live pointer is active and outside any
    transaction, its metadata parses, and its namespace exists (no table stranded in a dropped
    namespace).
    """
    for ident, pointer in pointers(tables):
        if pointer.state in TOMBSTONES:
            continue
        for location in (pointer.metadata_location, pointer.txn_location):
            if location is not None:
                assert tables.files.exists(location), f"{ident} ({pointer.state}) names a missing metadata file {location}"
        if settled:
            assert pointer.state == "active" and pointer.txn is None, f"{ident} left unsettled after recovery: {pointer}"
            assert tables.namespaces.exists(ident.namespace), f"{ident} is stranded: its namespace is gone"
            assert pointer.metadata_location is not None, f"{ident} is active with no metadata"
            check_time_order(tables.files.read(pointer.metadata_location).metadata, str(ident))


def visible(tables: TableStore, ident: Identifier) -> MetadataFile | None:
    """The table's current metadata as a client would load it, or ``None`` if it is not there."""
    current = tables.entries.read(ident)
    if current is None or current.pointer.kind != "table":
        return None
    return tables.files.read(current.pointer.metadata_location)


def history(file: MetadataFile) -> list[str]:
    """The table's linear history: its metadata log, then the current file."""
    return [entry.metadata_file for entry in file.metadata.metadata_log] + [file.location]


def check_acknowledged(final: MetadataFile, acked: MetadataFile, what: str) -> None:
    """No lost update, no fork: an acknowledged file is in the final history, on the same chain."""
    chain = history(final)
    assert acked.location in chain, f"{what}: acknowledged {acked.location} is not in the final history {chain}"
    own = [entry.metadata_file for entry in acked.metadata.metadata_log]
    position = chain.index(acked.location)
    assert own == chain[:position], f"{what}: forked -- its own log {own} is not the final history's prefix {chain[:position]}"


def snapshot_chain(metadata: TableMetadata) -> list[int]:
    """The ids of ``main``'s ancestry, newest first."""
    by_id = {snapshot.snapshot_id: snapshot for snapshot in metadata.snapshots}
    chain: list[int] = []
    current = metadata.current_snapshot_id
    while current is not None:
        assert current not in chain, f"snapshot ancestry loops at {current}"
        chain.append(current)
        current = by_id[current].parent_snapshot_id
    return chain


def check_time_order(metadata: TableMetadata, what: str) -> None:
    """The history is in time order, with no tolerance: the processes share one clock, so nothing but a
    bug can step back. The snapshot log and the metadata log never go back, ``last-updated-ms`` is not
    before either's last entry, every snapshot is no older than its parent, and sequence numbers never
    pass ``last-sequence-number`` (readers that take the newest snapshot -- DuckDB -- rely on it)."""
    for name, entries in (("snapshot log", metadata.snapshot_log), ("metadata log", metadata.metadata_log)):
        stamps = [entry.timestamp_ms for entry in entries]
        assert stamps == sorted(stamps), f"{what}: the {name} steps back in time: {stamps}"
        assert not stamps or metadata.last_updated_ms >= stamps[-1], (
            f"{what}: last-updated-ms {metadata.last_updated_ms} is before the {name}'s last entry {stamps[-1]}"
        )
    by_id = {snapshot.snapshot_id: snapshot for snapshot in metadata.snapshots}
    for snapshot in metadata.snapshots:
        parent = by_id.get(snapshot.parent_snapshot_id) if snapshot.parent_snapshot_id is not None else None
        assert parent is None or snapshot.timestamp_ms >= parent.timestamp_ms, (
            f"{what}: snapshot {snapshot.snapshot_id} at {snapshot.timestamp_ms} is older than its parent "
            f"{parent.snapshot_id} at {parent.timestamp_ms}"
        )
        assert (snapshot.sequence_number or 0) <= (metadata.last_sequence_number or 0), (
            f"{what}: snapshot {snapshot.snapshot_id}'s sequence number passes last-sequence-number"
        )
