"""The processes of the scenarios, and the warehouse they start from.

Every scenario starts from the same small warehouse (namespaces ``db`` and ``tmp``, tables
``db.t1`` and ``db.t2``). Each process is one catalog operation through the real ``TableStore``,
and tags its change (a property, or a snapshot id) so that after recovery its effect can be
looked for.
"""

from __future__ import annotations

from functools import cache

from pyiceberg.schema import Schema
from pyiceberg.table.snapshots import Operation, Snapshot, Summary
from pyiceberg.table.update import AddSnapshotUpdate, AssertRefSnapshotId, SetPropertiesUpdate, SetSnapshotRefUpdate
from pyiceberg.types import LongType, NestedField

from iceshelf.tables import clock
from iceshelf.tables.commit.committer import TableChange
from iceshelf.tables.errors import (
    CommitFailedException,
    NamespaceNotEmptyError,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from iceshelf.tables.names import Identifier
from iceshelf.tables.objectstore.memory import MemoryStore
from iceshelf.tables.tablestore import LoadedTable, TableStore
from tests.modelcheck.explorer import Process

SCHEMA = Schema(NestedField(1, "id", LongType(), required=False))
DB, TMP = ("db",), ("tmp",)
T1, T2 = Identifier(DB, "t1"), Identifier(DB, "t2")
RENAMED, CREATED = Identifier(DB, "renamed"), Identifier(TMP, "t")
#: A client's own retries of an append that lost on its requirement (pyiceberg reloads and retries).
CLIENT_ATTEMPTS = 2


@cache
def warehouse() -> MemoryStore:
    store = MemoryStore()
    tables = TableStore("setup", store)
    for namespace in (DB, TMP):
        tables.namespaces.create(namespace, {})
    for ident in (T1, T2):
        # The spec's default, no server-side rebase of appends: a client's append that lost the race
        # gets its 409 and retries, the optimistic "increment" whose lost updates the checks count.
        tables.create_table(ident, tables.new_metadata(ident, SCHEMA))
    return store


# -- processes --------------------------------------------------------------------------------


def tagging(ident: Identifier, tag: str) -> TableChange:
    return TableChange(ident, (), (SetPropertiesUpdate(updates={tag: "1"}),))


def writer(tag: str, ident: Identifier) -> Process:
    """A single-table commit with no requirement: it applies on whatever head it meets."""
    return Process(f"writer {tag}", lambda tables: tables.commit(tagging(ident, tag)), (CommitFailedException, NoSuchTableError))


def transaction(tag: str, *idents: Identifier) -> Process:
    return Process(
        f"transaction {tag}",
        lambda tables: tables.commit_transaction([tagging(ident, tag) for ident in idents]),
        (CommitFailedException,),
    )


def appender(snapshot_id: int, ident: Identifier) -> Process:
    """An append the way clients do it: assert the parent is still current; on a 409 reload and retry."""

    def append(tables: TableStore) -> LoadedTable:
        for _ in range(CLIENT_ATTEMPTS):
            metadata = tables.load_table(ident).metadata
            parent = metadata.current_snapshot_id
            snapshot = Snapshot(
                snapshot_id=snapshot_id,
                parent_snapshot_id=parent,
                sequence_number=metadata.last_sequence_number + 1,
                timestamp_ms=clock.now_ms(),  # the client's clock is the model's one clock
                manifest_list=f"{metadata.location}/metadata/snap-{snapshot_id}.avro",
                summary=Summary(Operation.APPEND),
                schema_id=metadata.current_schema_id,
            )
            change = TableChange(
                ident,
                (AssertRefSnapshotId(ref="main", snapshot_id=parent),),
                (AddSnapshotUpdate(snapshot=snapshot), SetSnapshotRefUpdate(ref_name="main", type="branch", snapshot_id=snapshot_id)),
            )
            try:
                return tables.commit(change)
            except CommitFailedException:
                continue
        raise CommitFailedException(f"append {snapshot_id} lost {CLIENT_ATTEMPTS} times")

    return Process(f"appender {snapshot_id}", append, (CommitFailedException,))


def reader(tag: str, *idents: Identifier) -> Process:
    """Loads the tables one after another; returns whether each load showed ``tag``."""

    def load(tables: TableStore) -> list[bool]:
        return [tag in tables.load_table(ident).metadata.properties for ident in idents]

    return Process(f"reader of {tag}", load, faulty=False)


def renamer(source: Identifier, target: Identifier) -> Process:
    return Process(
        f"rename {source} -> {target}",
        lambda tables: tables.rename_table(source, target),
        (NoSuchTableError, TableAlreadyExistsError, CommitFailedException),
    )


def settler(*idents: Identifier) -> Process:
    """Another replica that just reads: reading is what settles a half-done rename or transaction."""
    return Process("settling reader", lambda tables: [tables.table_exists(i) for i in idents])


def dropper(namespace: tuple[str, ...]) -> Process:
    return Process(
        f"drop namespace {'.'.join(namespace)}",
        lambda tables: tables.namespaces.drop(namespace),
        (NamespaceNotEmptyError, NoSuchNamespaceError, CommitFailedException),
    )


def creator(ident: Identifier) -> Process:
    return Process(
        f"create {ident}",
        lambda tables: tables.create_table(ident, tables.new_metadata(ident, SCHEMA)),
        (NoSuchNamespaceError, TableAlreadyExistsError, CommitFailedException),
    )
