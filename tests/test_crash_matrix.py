"""Crash consistency, measured: every catalog operation, a crash or a fault at every store operation.

For each scenario the operation is first run clean to count its object-store operations; then
once per operation index and per side ("before": the request never happened; "after": it
happened but the caller never learned), on a fresh copy of the same warehouse, the operation
runs with a crash (``SimulatedCrash``) or an injected storage fault (a 500/timeout) there. A new
table store is then started on the same objects with the clock past every protocol timeout,
reads everything (which is what settles abandoned renames and transactions), and the
invariants are checked:

* an acknowledged operation is fully visible; an operation that failed cleanly is not visible
  at all; a crashed one is all-or-nothing;
* every pointer names a metadata file that exists and parses; no pointer is left inside a
  transaction; no table is lost or visible under two names;
* a failure is reported as ``CommitStateUnknownException`` only when the outcome really is
  unknown -- never when the change provably did or did not land.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from dataclasses import dataclass
from typing import Callable

import pytest
from pyiceberg.schema import Schema
from pyiceberg.table.update import SetPropertiesUpdate
from pyiceberg.types import LongType, NestedField

import iceshelf.tables.clock
from iceshelf.tables.commit.committer import TableChange
from iceshelf.tables.errors import CommitStateUnknownException
from iceshelf.tables.names import Identifier
from iceshelf.tables.objectstore import ObjectStore
from iceshelf.tables.objectstore.faults import Fault, FaultyStore, InjectedFault, SimulatedCrash
from iceshelf.tables.objectstore.memory import MemoryStore
from iceshelf.tables.objectstore.s3 import S3Store
from iceshelf.tables.state.keys import all_entries_prefix
from iceshelf.tables.state.pointer import TOMBSTONES, Pointer
from iceshelf.tables.tablestore import TableStore

SCHEMA = Schema(NestedField(1, "id", LongType(), required=False))
A, B, E = ("a",), ("b",), ("e",)
T1, T2, T3 = Identifier(A, "t1"), Identifier(A, "t2"), Identifier(A, "t3")
MOVED, NEW = Identifier(B, "moved"), Identifier(A, "new")
COVERED: dict[str, int] = {}


def baseline(store: ObjectStore) -> ObjectStore:
    """The warehouse every run starts from: namespaces a, b, e and tables a.t1, a.t2, a.t3."""
    ts = TableStore("crash", store)
    for ns in (A, B, E):
        ts.namespaces.create(ns, {})
    for ident in (T1, T2, T3):
        ts.create_table(ident, ts.new_metadata(ident, SCHEMA))
    return store


BASELINE = baseline(MemoryStore())


def fresh_copy() -> MemoryStore:
    store = MemoryStore()
    store._objects = copy.deepcopy(BASELINE._objects)
    # Continue the etag sequence past the copied objects', so a new version never repeats an old etag.
    store._versions = itertools.count(1 + max(int(etag[1:]) for _, etag, _ in store._objects.values()))
    return store


def set_props(*idents: Identifier, **props: str) -> list[TableChange]:
    return [TableChange(ident, (), (SetPropertiesUpdate(updates=props),)) for ident in idents]


def props(ts: TableStore, ident: Identifier) -> dict[str, str] | None:
    return ts.load_table(ident).metadata.properties if ts.table_exists(ident) else None


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[TableStore], object]
    #: Given the recovered store, return True if the effect is fully visible, False if fully
    #: absent; raise AssertionError if it is partly visible.
    applied: Callable[[TableStore], bool]


def _all_or_none(flags: list[bool]) -> bool:
    assert all(flags) or not any(flags), f"partly applied: {flags}"
    return all(flags)


SCENARIOS = [
    Scenario(
        "create table",
        lambda ts: ts.create_table(NEW, ts.new_metadata(NEW, SCHEMA)),
        lambda ts: ts.table_exists(NEW),
    ),
    Scenario(
        "commit",
        lambda ts: ts.commit(set_props(T1, k="v")[0]),
        lambda ts: props(ts, T1).get("k") == "v",
    ),
    Scenario(
        "transaction of 2 tables",
        lambda ts: ts.commit_transaction(set_props(T1, T2, x="1")),
        lambda ts: _all_or_none([props(ts, t).get("x") == "1" for t in (T1, T2)]),
    ),
    Scenario(
        "transaction of 3 tables",
        lambda ts: ts.commit_transaction(set_props(T1, T2, T3, y="2")),
        lambda ts: _all_or_none([props(ts, t).get("y") == "2" for t in (T1, T2, T3)]),
    ),
    Scenario(
        "rename across namespaces",
        lambda ts: ts.rename_table(T1, MOVED),
        lambda ts: _exactly_one_name(ts),
    ),
    Scenario(
        "drop with purge",
        lambda ts: ts.drop_table(T3, purge=True),
        lambda ts: not ts.table_exists(T3),
    ),
    Scenario(
        "namespace create",
        lambda ts: ts.namespaces.create(("c",), {"p": "1"}),
        lambda ts: ts.namespaces.exists(("c",)) and ts.namespaces.load(("c",)) == {"p": "1"},
    ),
    Scenario(
        "namespace drop",
        lambda ts: ts.namespaces.drop(E),
        lambda ts: not ts.namespaces.exists(E),
    ),
]


def _exactly_one_name(ts: TableStore) -> bool:
    old, new = ts.table_exists(T1), ts.table_exists(MOVED)
    assert old != new, f"t1 visible under {'both names' if old else 'no name'}"
    return new


def count_operations(scenario: Scenario, fresh: Callable[[], ObjectStore]) -> int:
    store = FaultyStore(fresh())
    scenario.run(TableStore("crash", store))
    return len(store.log)


def recover(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> TableStore:
    """A restarted replica, later than every protocol timeout, that has read everything once."""
    real_now = iceshelf.tables.clock.now_ms
    monkeypatch.setattr(iceshelf.tables.clock, "now_ms", lambda: real_now() + 3_600_000)
    ts = TableStore("crash", store)
    for ns in ts.namespaces.list():
        for name in ts.list_tables(ns):
            ts.load_table(Identifier(ns, name))
        ts.list_tables(ns)
    return ts


def check_invariants(ts: TableStore, scenario: Scenario) -> None:
    store = ts.objects
    for meta in store.list(all_entries_prefix()):
        pointer = Pointer.from_bytes(store.get(meta.key).data)
        if pointer.state in TOMBSTONES:
            continue
        assert pointer.txn is None, f"{meta.key} still inside transaction {pointer.txn}"
        assert pointer.state == "active", f"{meta.key} left {pointer.state}"
        ts.files.read(pointer.metadata_location)  # exists and parses
    assert {ns for ns in ts.namespaces.list()} >= {A, B} | ({E} if scenario.name != "namespace drop" else set())
    untouched = {T2, T3} - {T3 if scenario.name == "drop with purge" else None}
    for ident in ({T1} if scenario.name != "rename across namespaces" else set()) | untouched:
        assert ts.table_exists(ident), f"{ident} lost"


def run_matrix(
    scenario: Scenario, crash: bool, monkeypatch: pytest.MonkeyPatch, fresh: Callable[[], ObjectStore] = fresh_copy
) -> int:
    points = 0
    for index in range(count_operations(scenario, fresh)):
        for when in ("before", "after"):
            store = fresh()
            faulty = FaultyStore(store, Fault(at=index, when=when, crash=crash))
            outcome = "acknowledged"
            try:
                scenario.run(TableStore("crash", faulty))
            except SimulatedCrash:
                outcome = "crashed"
            except CommitStateUnknownException:
                outcome = "unknown"
            except InjectedFault:
                outcome = "failed"
            with monkeypatch.context() as patch:
                recovered = recover(store, patch)
                check_invariants(recovered, scenario)
                applied = scenario.applied(recovered)
            where = f"{scenario.name}: fault at op {index} ({faulty.log[index]}) {when}"
            if outcome == "acknowledged":
                assert applied, f"{where}: acknowledged but not durable"
            elif outcome == "failed":
                assert not applied, f"{where}: reported a clean failure, yet the change landed"
            elif outcome == "unknown":
                # One fault, then a healthy store: reconciliation can always tell, so "unknown" is a bug.
                assert crash, f"{where}: answered CommitStateUnknown though the outcome was knowable"
            points += 1
    return points


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_crash_at_every_operation(scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    points = run_matrix(scenario, crash=True, monkeypatch=monkeypatch)
    assert points >= 2
    COVERED[f"crash/{scenario.name}"] = points


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_storage_fault_at_every_operation(scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    points = run_matrix(scenario, crash=False, monkeypatch=monkeypatch)
    assert points >= 2
    COVERED[f"fault/{scenario.name}"] = points


S3_SCENARIOS = [s for s in SCENARIOS if s.name in ("commit", "transaction of 2 tables", "rename across namespaces")]


@pytest.mark.parametrize("scenario", S3_SCENARIOS, ids=[s.name for s in S3_SCENARIOS])
def test_storage_fault_at_every_operation_on_s3(scenario: Scenario, seaweed, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same matrix over real S3 (SeaweedFS): 500s and lost responses around every request."""
    bucket = seaweed.create_bucket()

    def fresh() -> ObjectStore:
        return baseline(S3Store(bucket, uuid.uuid4().hex, seaweed.s3_settings()))

    points = run_matrix(scenario, crash=False, monkeypatch=monkeypatch, fresh=fresh)
    assert points >= 2
    COVERED[f"s3 fault/{scenario.name}"] = points


def test_report_crash_points_covered() -> None:
    """Runs last in this module: the count of crash points goes into the test log (and the closing note)."""
    total = sum(COVERED.values())
    print(f"\ncrash matrix: {total} fault points over {len(COVERED)} scenario runs: {COVERED}")
    assert total > 0 or not COVERED
