"""The races the catalog protocols must survive: (a) to (e) of issue 3, section 4, and (f) of
issue 6: concurrent pure appends, rebased by the server and applied in batches by group commit.

Each scenario names its processes (``processes``), what to check after recovery (``checks``),
what a reader must see at every state, its bounds, and which operations need no scheduling
point.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from iceshelf.tables.state.keys import namespaces_prefix
from iceshelf.tables.state.transactions import TxnRecords
from iceshelf.tables.tablestore import TableStore
from tests.modelcheck.appends import append_warehouse, check_outcomes, observe_appends, racers
from tests.modelcheck.checks import (
    Check,
    Observe,
    acked_files,
    check_atomic,
    check_effect,
    check_histories,
    observe_atomic,
    observe_one_name,
    observe_pointers,
    tagged,
)
from tests.modelcheck.explorer import Bounds, Outcome, Process, Scenario
from tests.modelcheck.invariants import check_pointers, history, snapshot_chain, visible
from tests.modelcheck.processes import (
    CREATED,
    RENAMED,
    T1,
    T2,
    TMP,
    appender,
    creator,
    dropper,
    reader,
    renamer,
    settler,
    transaction,
    warehouse,
    writer,
)
from tests.modelcheck.scheduled_store import Op

#: Where transaction records live (a record's key, minus its id).
TRANSACTIONS = TxnRecords.key("").removesuffix(".json")


def fresh_object_op(op: Op) -> bool:
    """Operations that commute with every other process's: reading or creating a metadata file
    (immutable, freshly named, read by no one before a pointer names it), and creating a
    transaction record (freshly named, found by no one before a pointer is staged in it)."""
    if op.key.endswith(".metadata.json"):
        return op.kind == "get" or op.mode == "create"
    return op.key.startswith(TRANSACTIONS) and op.mode == "create"


def metadata_or_namespace_read(op: Op) -> bool:
    """For scenarios where no process writes a namespace: reading one commutes with everything."""
    return fresh_object_op(op) or (op.kind == "get" and op.key.startswith(namespaces_prefix()))


def metadata_or_manifest_op(op: Op) -> bool:
    """Also Avro files: manifests and manifest lists are immutable, and a rebased manifest list is
    freshly named and read by no one before a pointer names a metadata file that lists it -- so
    neither reading one, creating one, nor deleting a rebase's list that lost its race is a point."""
    avro = op.key.endswith(".avro") and (op.kind == "get" or op.mode == "create" or (op.kind == "delete" and "-rebased-" in op.key))
    return avro or metadata_or_namespace_read(op)


def scenario(
    name: str,
    processes: list[Process],
    check: Check,
    observe: Observe = observe_pointers,
    invisible: Callable[[Op], bool] = metadata_or_namespace_read,
    **bounds: int,
) -> Scenario:
    """A scenario whose check also includes the invariants every warehouse must keep."""

    def full_check(tables: TableStore, outcomes: dict[str, Outcome]) -> None:
        check_pointers(tables, settled=True)
        check(tables, outcomes)

    return Scenario(name, warehouse(), tuple(processes), full_check, observe, replace(Bounds(), **bounds), invisible=invisible)


# -- the scenarios ----------------------------------------------------------------------------


def two_appenders() -> Scenario:
    """(a) Two clients append to one table: N acknowledged appends, exactly N new snapshots."""
    ids = (101, 102)

    def check(tables: TableStore, outcomes: dict[str, Outcome]) -> None:
        final = visible(tables, T1)
        chain = snapshot_chain(final.metadata)
        assert sorted(chain) == sorted(s.snapshot_id for s in final.metadata.snapshots), "a snapshot is off main's ancestry"
        acked = [i for i in ids if outcomes[f"appender {i}"].acked]
        assert set(acked) <= set(chain) <= set(ids), f"lost update: appends {acked} acknowledged, main has {chain}"
        for snapshot_id in ids:
            check_effect(f"appender {snapshot_id}", outcomes[f"appender {snapshot_id}"], snapshot_id in chain)
        check_histories(tables, outcomes, T1)

    return scenario("two appenders, one table", [appender(i, T1) for i in ids], check, fault_kinds=("crash", "fail", "lost"))


def transaction_writer_reader() -> Scenario:
    """(b) A 2-table transaction races a commit to one of its tables, watched by a reader."""

    def check(tables: TableStore, outcomes: dict[str, Outcome]) -> None:
        check_effect("transaction x", outcomes["transaction x"], check_atomic(tables, "x", T1, T2))
        check_effect("writer w", outcomes["writer w"], tagged(tables, T1, "w"))
        check_histories(tables, outcomes, T1, T2)
        seen = outcomes["reader of x"].value
        if seen is not None:
            assert seen == sorted(seen), f"the reader saw transaction x and then stopped seeing it: {seen}"

    processes = [transaction("x", T1, T2), writer("w", T1), reader("x", T1, T2)]
    return scenario("transaction vs writer vs reader", processes, check, observe_atomic(("x",), (T1, T2)), preemptions=1)


def two_transactions() -> Scenario:
    """(c) Two transactions over the same two tables: each atomic, and in the same order on both."""

    def check(tables: TableStore, outcomes: dict[str, Outcome]) -> None:
        for tag in ("x", "y"):
            check_effect(f"transaction {tag}", outcomes[f"transaction {tag}"], check_atomic(tables, tag, T1, T2))
        check_histories(tables, outcomes, T1, T2)
        x, y = (acked_files(outcomes[f"transaction {tag}"]) for tag in ("x", "y"))
        if x and y:  # both acknowledged: serializable means x before y on both tables, or after on both
            first = {}
            for ident, x_file, y_file in zip((T1, T2), x, y):
                chain = history(visible(tables, ident))
                first[ident] = "x" if chain.index(x_file.location) < chain.index(y_file.location) else "y"
            assert first[T1] == first[T2], f"not serializable: {first[T1]} came first on t1, {first[T2]} on t2"

    processes = [transaction("x", T1, T2), transaction("y", T1, T2)]
    return scenario("two transactions, same tables", processes, check, observe_atomic(("x", "y"), (T1, T2)))


def rename_vs_commit() -> Scenario:
    """(d) A rename races a commit to its source, while another replica's reads settle what they meet."""

    def check(tables: TableStore, outcomes: dict[str, Outcome]) -> None:
        old, new = visible(tables, T1), visible(tables, RENAMED)
        assert (old is None) != (new is None), f"t1 is visible under {'both names' if old else 'no name'}"
        check_effect("the rename", outcomes[f"rename {T1} -> {RENAMED}"], new is not None)
        check_effect("writer w", outcomes["writer w"], "w" in (old or new).metadata.properties)
        check_histories(tables, outcomes, T1, RENAMED)

    processes = [renamer(T1, RENAMED), writer("w", T1), settler(RENAMED, T1)]
    return scenario("rename vs commit", processes, check, observe_one_name(T1, RENAMED), clock_jumps=1)


def _drop_vs_create(name: str, **bounds: int) -> Scenario:
    def check(tables: TableStore, outcomes: dict[str, Outcome]) -> None:
        dropped = not tables.namespaces.exists(TMP)
        check_effect("the drop", outcomes["drop namespace tmp"], dropped)
        check_effect("the create", outcomes[f"create {CREATED}"], visible(tables, CREATED) is not None)

    return scenario(name, [dropper(TMP), creator(CREATED)], check, invisible=fresh_object_op, **bounds)


def drop_vs_create() -> Scenario:
    """(e) A namespace drop races a table create in it: never both, never a stranded table."""
    return _drop_vs_create("namespace drop vs table create", faults=0)


def drop_vs_create_crashing() -> Scenario:
    """(e) again, where either may crash, or stall past every protocol timeout."""
    return _drop_vs_create("namespace drop vs table create, crashes and stalls", clock_jumps=1)


def appends_rebased_and_batched() -> Scenario:
    """(f) Two replicas commit stale pure appends to one table, one of them three commits in one group
    commit batch (the third a stale overwrite): every append lands once, rebased, on one linear
    history whose manifest lists, sequence numbers and totals stay exact; the overwrite gets its 409."""
    faults = ("crash", "fail", "lost")
    built = scenario(
        "appends rebased and batched", racers(), check_outcomes, observe_appends, metadata_or_manifest_op, fault_kinds=faults, preemptions=3, deviations=3
    )
    return replace(built, initial=append_warehouse().store)


SCENARIOS: tuple[Callable[[], Scenario], ...] = (
    two_appenders,
    transaction_writer_reader,
    two_transactions,
    rename_vs_commit,
    drop_vs_create,
    drop_vs_create_crashing,
    appends_rebased_and_batched,
)
