"""Concurrent pure appends, rebased and batched: the processes, their warehouse, and what must hold.

The table ``db.appends`` (opted in to the server's rebase: ``iceshelf.commit.rebase-appends=true``)
starts with one append, snapshot ``BASE``. The clients have already written their files, as
pyiceberg's fast append does before it commits: per append a manifest with one data file and a
manifest list = that manifest + the head it saw (``BASE``), and every change asserts ``main`` is
still ``BASE``. So whichever lands first, the others are stale and only the server's rebase
(``tables/commit/rebase.py``) lets them land. The clients stamped their snapshots in the order
opposite to their ids, so a rebase that kept a client's timestamp would put a snapshot before its
parent in some schedule.

One replica runs a *batch* -- what group commit's leader runs when several commits for the table
queued while one was in flight (``Committer.commit_batch``): two appends and a stale overwrite,
which rebase must refuse and the batch must answer with 409 on its own. Another replica commits
a single append. The queue itself (``tables/batching.py``, threads waking threads) is not what is
explored here; what the leader does with the batch against the store is.

What must hold, at every state a reader can see and after recovery (``check_appends``): main's
ancestry is the table's every snapshot (linear, nothing dangling); sequence numbers strictly
increase along it; each snapshot's manifest list holds exactly its own manifest and those of every
append before it, each with the sequence number of the snapshot that added it; its ``total-*``
summary fields count exactly those files and rows; and the history is in time order
(``invariants.check_time_order``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Callable

from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    FileFormat,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    read_manifest_list,
    write_manifest,
    write_manifest_list,
)
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Operation, Snapshot, Summary, update_snapshot_summaries
from pyiceberg.table.update import AddSnapshotUpdate, AssertRefSnapshotId, SetSnapshotRefUpdate
from pyiceberg.typedef import Record

from iceshelf.tables import clock
from iceshelf.tables.commit.batching import Ticket
from iceshelf.tables.commit.committer import TableChange
from iceshelf.tables.commit.rebase import REBASE_PROPERTY
from iceshelf.tables.errors import CommitFailedException
from iceshelf.tables.names import Identifier
from iceshelf.tables.objectstore.fileio import StoreFileIO
from iceshelf.tables.objectstore.memory import MemoryStore
from iceshelf.tables.tablestore import TableStore
from tests.modelcheck.explorer import Outcome, Process, fork
from tests.modelcheck.invariants import check_acknowledged, check_time_order, snapshot_chain, visible
from tests.modelcheck.processes import DB, SCHEMA, warehouse

APPENDS = Identifier(DB, "appends")
BASE = 100
#: The appends that race: batched on one replica, alone on the other.
BATCHED, SINGLE = (201, 202), 203
#: An overwrite that is stale by the time the batch reaches it: rebase must refuse it.
OVERWRITE = 204


def stamped(base_ms: int, snapshot_id: int) -> int:
    """When a client stamped its snapshot: every racer after ``BASE``, the higher ids earlier."""
    return base_ms if snapshot_id == BASE else base_ms + 1_000 - (snapshot_id - BASE)


def records(snapshot_id: int) -> int:
    """Each append adds one data file of this many rows, so the totals tell whose rows are counted."""
    return snapshot_id


def manifest_location(table_location: str, snapshot_id: int) -> str:
    return f"{table_location}/metadata/m-{snapshot_id}.avro"


def client_change(
    io: StoreFileIO, head: TableMetadata, snapshot_id: int, timestamp_ms: int, operation: Operation = Operation.APPEND
) -> TableChange:
    """Write an append's files as a client does -- its manifest, and a manifest list with the head's
    manifests after its own -- and return the commit it sends, asserting ``main`` is still the head."""
    spec, location, parent = head.spec(), head.location, head.current_snapshot()
    data_file = DataFile.from_args(
        _table_format_version=2,
        content=DataFileContent.DATA,
        file_path=f"{location}/data/{snapshot_id}.parquet",
        file_format=FileFormat.PARQUET,
        partition=Record(),
        record_count=records(snapshot_id),
        file_size_in_bytes=1000,
    )
    with write_manifest(2, spec, head.schema(), io.new_output(manifest_location(location, snapshot_id)), snapshot_id, "deflate") as writer:
        writer.add(ManifestEntry.from_args(status=ManifestEntryStatus.ADDED, snapshot_id=snapshot_id, data_file=data_file))
    inherited = [] if parent is None else list(read_manifest_list(io.new_input(parent.manifest_list)))
    sequence_number = head.next_sequence_number()
    list_location = f"{location}/metadata/snap-{snapshot_id}.avro"
    parent_id = None if parent is None else parent.snapshot_id
    with write_manifest_list(2, io.new_output(list_location), snapshot_id, parent_id, sequence_number, "deflate") as lists:
        lists.add_manifests([writer.to_manifest_file(), *inherited])
    added = Summary(operation, **{"added-data-files": "1", "added-records": str(records(snapshot_id))})
    snapshot = Snapshot(
        snapshot_id=snapshot_id,
        parent_snapshot_id=parent_id,
        sequence_number=sequence_number,
        timestamp_ms=timestamp_ms,
        manifest_list=list_location,
        summary=update_snapshot_summaries(added, None if parent is None else parent.summary),
        schema_id=head.current_schema_id,
    )
    return TableChange(
        APPENDS,
        (AssertRefSnapshotId(ref="main", snapshot_id=parent_id),),
        (AddSnapshotUpdate(snapshot=snapshot), SetSnapshotRefUpdate(ref_name="main", type="branch", snapshot_id=snapshot_id)),
    )


@dataclass(frozen=True)
class AppendWarehouse:
    store: MemoryStore
    #: The commit each client sends, by snapshot id (its files are in ``store`` already).
    changes: dict[int, TableChange]


@cache
def append_warehouse() -> AppendWarehouse:
    """The shared warehouse plus ``db.appends`` at ``BASE``, and the racing clients' files."""
    store = fork(warehouse())
    tables = TableStore("setup", store)
    tables.create_table(APPENDS, tables.new_metadata(APPENDS, SCHEMA, properties={REBASE_PROPERTY: "true"}))
    base_ms = clock.now_ms() - 10_000
    tables.commit(client_change(tables.io, tables.load_table(APPENDS).metadata, BASE, stamped(base_ms, BASE)))
    head = tables.load_table(APPENDS).metadata
    changes = {i: client_change(tables.io, head, i, stamped(base_ms, i)) for i in (*BATCHED, SINGLE)}
    changes[OVERWRITE] = client_change(tables.io, head, OVERWRITE, stamped(base_ms, OVERWRITE), Operation.OVERWRITE)
    return AppendWarehouse(store, changes)


# -- processes --------------------------------------------------------------------------------

#: Who commits what: one replica leads a batch of three, the other commits one append alone.
COMMITS: dict[str, tuple[int, ...]] = {"replica A's batch": (*BATCHED, OVERWRITE), "replica B": (SINGLE,)}


def name_of(snapshot_id: int) -> str:
    return f"{'overwrite' if snapshot_id == OVERWRITE else 'append'} {snapshot_id}"


def committer(name: str, snapshot_ids: tuple[int, ...]) -> Process:
    """A replica committing these changes: as the batch a group commit's leader runs when they queued
    while a commit was in flight, or alone through ``commit``. Returns what each client was told."""

    def run(tables: TableStore) -> dict[str, Outcome]:
        tickets = [Ticket(append_warehouse().changes[i]) for i in snapshot_ids]
        if len(tickets) > 1:
            tables.committer.commit_batch(tickets)
        else:
            try:
                tickets[0].resolve(tables.committer.commit(tickets[0].request))
            except Exception as err:  # noqa: BLE001 - an answer for the checks
                tickets[0].fail(err)
        return {name_of(i): Outcome(value=t.result, error=t.error) for i, t in zip(snapshot_ids, tickets)}

    return Process(name, run)


def racers() -> list[Process]:
    return [committer(name, ids) for name, ids in COMMITS.items()]


def commit_outcomes(outcomes: dict[str, Outcome]) -> dict[str, Outcome]:
    """What each commit's client was told: a replica that died took all of its commits with it."""
    told: dict[str, Outcome] = {}
    for name, snapshot_ids in COMMITS.items():
        outcome = outcomes[name]
        told.update(outcome.value if outcome.acked else {name_of(i): outcome for i in snapshot_ids})
    return told


# -- what must hold ---------------------------------------------------------------------------


def check_appends(metadata: TableMetadata, manifests: Callable[[str], list[ManifestFile]]) -> list[int]:
    """The history invariants of an append-only table (see the module docstring); returns main's
    ancestry, oldest first."""
    check_time_order(metadata, str(APPENDS))
    chain = snapshot_chain(metadata)[::-1]
    by_id = {s.snapshot_id: s for s in metadata.snapshots}
    assert sorted(chain) == sorted(by_id), f"snapshots {sorted(set(by_id) - set(chain))} are off main's ancestry {chain}"
    sequence = [by_id[i].sequence_number for i in chain]
    assert sequence == sorted(set(sequence)), f"sequence numbers along main {chain} are not strictly increasing: {sequence}"
    assert metadata.last_sequence_number == sequence[-1], f"last-sequence-number {metadata.last_sequence_number} is not the head's {sequence[-1]}"
    for depth, snapshot_id in enumerate(chain, 1):
        snapshot, earlier = by_id[snapshot_id], chain[:depth]
        listed = manifests(snapshot.manifest_list)
        own = {m.added_snapshot_id: m.manifest_path for m in listed}
        expected = {i: manifest_location(metadata.location, i) for i in earlier}
        assert len(listed) == len(own) and own == expected, (
            f"the manifest list of snapshot {snapshot_id} holds the manifests of {sorted(own)}, "
            f"not exactly its own and every earlier append's: {earlier}"
        )
        for manifest in listed:
            added_by = by_id[manifest.added_snapshot_id]
            assert manifest.sequence_number == added_by.sequence_number, (
                f"snapshot {snapshot_id} lists the manifest of {added_by.snapshot_id} with sequence number "
                f"{manifest.sequence_number}, not {added_by.sequence_number}"
            )
        rows = sum(m.added_rows_count for m in listed)
        totals = {k: int(snapshot.summary[k]) for k in ("total-records", "total-data-files")}
        assert totals == {"total-records": sum(map(records, earlier)), "total-data-files": len(earlier)} and rows == totals["total-records"], (
            f"snapshot {snapshot_id}'s totals {totals} do not count the {rows} rows of its manifests ({earlier})"
        )
    return chain


class ManifestReader:
    """Parsed manifest lists by location (immutable once written: read each once per run)."""

    def __init__(self, tables: TableStore, memo: dict) -> None:
        self.tables = tables
        self.memo = memo

    def __call__(self, location: str) -> list[ManifestFile]:
        key = ("manifest list", location)
        if key not in self.memo:
            self.memo[key] = list(read_manifest_list(self.tables.io.new_input(location)))
        return self.memo[key]


def observe_appends(tables: TableStore, memo: dict) -> None:
    """At every state: a reader loading ``db.appends`` finds a history that keeps every invariant."""
    check_appends(visible(tables, APPENDS).metadata, ManifestReader(tables, memo))


def check_outcomes(tables: TableStore, outcomes: dict[str, Outcome]) -> None:
    """After recovery: no acknowledged append lost, none refused, the overwrite never applied, and each
    acknowledged client told a state with its own snapshot on main, on the table's one history."""
    final = visible(tables, APPENDS)
    chain = check_appends(final.metadata, ManifestReader(tables, {}))
    told = commit_outcomes(outcomes)
    for snapshot_id in (*BATCHED, SINGLE, OVERWRITE):
        name = name_of(snapshot_id)
        outcome = told[name]
        if snapshot_id == OVERWRITE:
            assert snapshot_id not in chain, f"{name} was applied over newer appends"
            assert not outcome.acked and (outcome.unknown or isinstance(outcome.error, CommitFailedException)), f"{name}: {outcome}"
            continue
        assert outcome.acked or outcome.unknown, f"{name} was refused ({outcome}): a pure append must be rebased"
        if outcome.acked:
            assert snapshot_id in chain, f"lost update: {name} was acknowledged, main is {chain}"
            check_acknowledged(final, outcome.value, name)
            assert snapshot_id in snapshot_chain(outcome.value.metadata), f"{name}'s response does not show its snapshot on main"
