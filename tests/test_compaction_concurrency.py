"""Compaction next to other writers, and through crashes, on the local and the S3 warehouse.

* 4 pyiceberg writers keep appending and a DuckDB client keeps deleting rows while compactions
  run: the table ends with exactly the rows written minus the rows deleted (as a multiset), so no
  row is lost or duplicated, and no deleted row comes back;
* a delete that lands on a group's input between its rewrite and its commit drops that group
  cleanly (its output files removed, the table exactly as the delete left it), while an append
  there is rebased onto;
* a crash at any write of the commit leaves the table intact, with the job's files unreferenced
  leftovers that orphan removal cleans.

The interleavings that must be exact use the progress callback, which runs after each group is
rewritten and before the commit: the other client's change lands in that window every time.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter

import pyarrow as pa
import pytest
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import LongType, NestedField, StringType

from iceshelf.compaction.jobs.orphans import remove_orphans
from iceshelf.compaction.rewrite.compact import CompactionOptions, compact_table
from iceshelf.compaction.rewrite.planner import PlanOptions
from iceshelf.compaction.rewrite.replace import CompactionConflict
from iceshelf.tables.names import Identifier
from iceshelf.tables.objectstore.faults import Fault, FaultyStore, SimulatedCrash
from tests.clients import CatalogEnv
from tests.compaction_support import (
    append,
    data_files,
    fresh_rows,
    referenced_files,
    retrying,
    scanned_rows,
    table_objects,
    table_store,
    warehouse_store,
)

ARROW = pa.schema([pa.field("id", pa.int64()), pa.field("kind", pa.string())])
TWO_OR_MORE = CompactionOptions(PlanOptions(min_input_files=2))


def batch(start: int, count: int, kind: str | None = None) -> pa.Table:
    ids = list(range(start, start + count))
    return pa.table({"id": pa.array(ids, pa.int64()), "kind": [kind or f"k{i % 3}" for i in ids]}, schema=ARROW)


def small_table(env: CatalogEnv, namespace: str, name: str, files: int = 5) -> str:
    catalog, full = env.catalog(), f"{namespace}.{name}"
    catalog.create_table(full, schema=ARROW)
    for n in range(files):
        append(catalog, full, batch(n * 20, 20))
    return full


def compaction_leftovers(env: CatalogEnv, name: str) -> set[str]:
    table = env.catalog().load_table(name)
    return {location for location in table_objects(warehouse_store(env), table) if "/compaction-" in location}


@pytest.mark.parametrize("deleter", ["duckdb position delete", "pyiceberg copy-on-write delete"])
def test_a_delete_on_an_input_aborts_the_rewrite_cleanly(catalog_env: CatalogEnv, namespace: str, deleter: str) -> None:
    name = small_table(catalog_env, namespace, "conflict")
    catalog, con = catalog_env.catalog(), catalog_env.duckdb()
    expected = fresh_rows(catalog_env, name) - Counter({(7, "k1"): 1})

    def delete_meanwhile(done: int, total: int) -> None:
        if deleter.startswith("duckdb"):
            con.execute(f"DELETE FROM lake.{name} WHERE id = 7")
        else:
            catalog.load_table(name).delete("id == 7")

    with pytest.raises(CompactionConflict):
        compact_table(table_store(catalog_env), Identifier((namespace,), "conflict"), on_progress=delete_meanwhile)

    table = catalog.load_table(name)
    assert table.current_snapshot().summary.operation.value in ("delete", "overwrite")  # the delete's, nothing after it
    assert fresh_rows(catalog_env, name) == expected
    assert compaction_leftovers(catalog_env, name) == set()
    # the next run sees the delete and succeeds
    result = compact_table(table_store(catalog_env), Identifier((namespace,), "conflict"))
    assert result.snapshot_id == catalog.load_table(name).current_snapshot().snapshot_id
    assert fresh_rows(catalog_env, name) == expected


def test_only_the_conflicting_group_is_dropped(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog, name = catalog_env.catalog(), f"{namespace}.parts"
    schema = Schema(NestedField(1, "id", LongType()), NestedField(2, "kind", StringType()))
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="kind"))
    catalog.create_table(name, schema=schema, partition_spec=spec)
    for n in range(3):
        append(catalog, name, pa.concat_tables([batch(n * 10, 10, "a"), batch(100 + n * 10, 10, "b")]))
    con = catalog_env.duckdb()
    expected = fresh_rows(catalog_env, name) - Counter({(105, "b"): 1})
    deleted = threading.Event()

    def delete_in_b(done: int, total: int) -> None:
        if not deleted.is_set():
            con.execute(f"DELETE FROM lake.{name} WHERE id = 105")
            deleted.set()

    result = compact_table(table_store(catalog_env), Identifier((namespace,), "parts"), TWO_OR_MORE, delete_in_b)

    assert (result.groups, result.conflicted_groups, result.files_in, result.files_out) == (1, 1, 3, 1)
    assert fresh_rows(catalog_env, name) == expected
    by_partition = Counter(f.partition[0] for f in data_files(catalog.load_table(name)))
    assert by_partition == {"a": 1, "b": 3}
    assert all("kind=b" not in location for location in compaction_leftovers(catalog_env, name))


def test_a_concurrent_append_is_rebased_onto(catalog_env: CatalogEnv, namespace: str) -> None:
    name = small_table(catalog_env, namespace, "rebase")
    catalog = catalog_env.catalog()
    expected = fresh_rows(catalog_env, name) + Counter((i, f"k{i % 3}") for i in range(1000, 1010))
    appended: list[int] = []

    def append_meanwhile(done: int, total: int) -> None:
        append(catalog, name, batch(1000, 10))
        appended.append(catalog.load_table(name).current_snapshot().snapshot_id)

    result = compact_table(table_store(catalog_env), Identifier((namespace,), "rebase"), on_progress=append_meanwhile)

    table = catalog.load_table(name)
    assert table.current_snapshot().snapshot_id == result.snapshot_id
    assert table.current_snapshot().parent_snapshot_id == appended[0]
    assert fresh_rows(catalog_env, name) == expected
    assert sorted(f.record_count for f in data_files(table)) == [10, 100]


def test_compaction_while_four_writers_append_and_one_deletes(catalog_env: CatalogEnv, namespace: str) -> None:
    """Rounds alternate: in a quiet round the deleter pauses (writers keep appending), so the
    compaction must commit, rebased onto the appends; in a busy round the deleter runs too, and a
    delete landing on an input must drop the rewrite instead. Either way no row is lost,
    duplicated or resurrected."""
    catalog, name = catalog_env.catalog(), f"{namespace}.busy"
    schema = pa.schema([pa.field("writer", pa.int64()), pa.field("seq", pa.int64()), pa.field("payload", pa.string())])
    catalog.create_table(name, schema=schema)
    batches, per_batch = 6, 25
    written: Counter = Counter()
    deleted: set[tuple[int, int]] = set()
    lock, deleting = threading.Lock(), threading.Lock()
    deletes_allowed, stop = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def write(client, w: int, b: int) -> None:
        seqs = list(range(b * per_batch, (b + 1) * per_batch))
        data = pa.table({"writer": [w] * per_batch, "seq": seqs, "payload": [f"w{w}-{s}" for s in seqs]}, schema=schema)
        append(client, name, data)
        with lock:
            written.update((w, s, f"w{w}-{s}") for s in seqs)

    def writer(w: int) -> None:
        client = catalog_env.catalog()
        for b in range(1, batches):
            write(client, w, b)
            time.sleep(0.1)

    def deleter() -> None:
        con = catalog_env.duckdb()
        for n in itertools.count():
            deletes_allowed.wait()
            with deleting:
                if stop.is_set():
                    return
                with lock:
                    candidates = sorted({(w, s) for w, s, _ in written} - deleted)
                w, s = candidates[(n * 37) % len(candidates)]
                retrying(lambda: con.execute(f"DELETE FROM lake.{name} WHERE writer = {w} AND seq = {s}"))
                with lock:
                    deleted.add((w, s))
            time.sleep(0.05)

    def guarded(target, *args) -> threading.Thread:
        def run() -> None:
            try:
                target(*args)
            except BaseException as err:  # surfaced below: a thread's failure must fail the test
                failures.append(err)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    for w in range(4):  # batch 0 of every writer first: the first round has files to compact
        write(catalog, w, 0)
    tables, ident = table_store(catalog_env), Identifier((namespace,), "busy")
    writers = [guarded(writer, w) for w in range(4)]
    delete_thread = guarded(deleter)
    committed = conflicts = 0
    try:  # a failing round must still stop the threads, or the test run never exits
        for round_ in itertools.count():
            quiet = round_ % 2 == 0
            if quiet:
                deletes_allowed.clear()
                with deleting:  # wait out a delete in flight
                    pass
            else:
                deletes_allowed.set()
            with lock:
                deleted_before = set(deleted)
            try:
                result = compact_table(tables, ident, TWO_OR_MORE)
            except CompactionConflict:
                assert not quiet, "a compaction conflicted although only appends ran next to it"
                conflicts += 1
                continue
            committed += result.snapshot_id is not None
            live = fresh_rows(catalog_env, name, "writer, seq")
            assert not deleted_before & set(live), "a deleted row came back"
            if not any(t.is_alive() for t in writers) and round_ >= 3:
                break
    finally:
        stop.set()
        deletes_allowed.set()
        for t in (*writers, delete_thread):
            t.join()
    assert not failures, failures
    compact_table(tables, ident, TWO_OR_MORE)  # and once more with everything settled

    expected = Counter({row: n for row, n in written.items() if row[:2] not in deleted})
    assert sum(written.values()) == 4 * batches * per_batch and deleted
    assert fresh_rows(catalog_env, name) == expected
    scanned = catalog.load_table(name).scan().to_arrow().to_pylist()
    assert Counter((r["writer"], r["seq"], r["payload"]) for r in scanned) == expected
    assert committed >= 2, f"{committed} compactions committed, {conflicts} conflicted"


def test_a_crash_at_any_write_leaves_the_table_intact(catalog_env: CatalogEnv, namespace: str) -> None:
    name = small_table(catalog_env, namespace, "crashy")
    catalog = catalog_env.catalog()
    catalog_env.duckdb().execute(f"DELETE FROM lake.{name} WHERE id % 4 = 0")
    live = fresh_rows(catalog_env, name)
    start = catalog.load_table(name).current_snapshot().snapshot_id
    ident = Identifier((namespace,), "crashy")

    crashes = 0
    for at in itertools.count():
        store = FaultyStore(warehouse_store(catalog_env), Fault(at=at, kinds=frozenset({"put"})))
        try:
            compact_table(table_store(catalog_env, store), ident)
        except SimulatedCrash:
            crashes += 1
        if not store.fired:
            break  # this run had fewer writes than ``at``: it completed
        table = catalog.load_table(name)
        assert table.current_snapshot().snapshot_id == start
        assert scanned_rows(table) == live
        objects, referenced = table_objects(warehouse_store(catalog_env), table), referenced_files(table)
        assert referenced <= objects  # nothing the table needs was removed
        assert compaction_leftovers(catalog_env, name) <= objects - referenced  # the job's files are unreferenced
    assert crashes >= 4  # manifests, manifest list, metadata file, pointer swing
    table = catalog.load_table(name)
    assert table.current_snapshot().snapshot_id != start and fresh_rows(catalog_env, name) == live

    removed = remove_orphans(table_store(catalog_env), ident, older_than_ms=int(time.time() * 1000) + 1000)
    assert removed.removed.files > 0
    table = catalog.load_table(name)
    remaining = table_objects(warehouse_store(catalog_env), table)
    assert referenced_files(table) <= remaining and compaction_leftovers(catalog_env, name) <= referenced_files(table)
    assert fresh_rows(catalog_env, name) == live


def test_a_crash_after_the_swing_is_a_committed_compaction(catalog_env: CatalogEnv, namespace: str) -> None:
    """The pointer write landed but the process died before learning it: the compaction stands."""
    name = small_table(catalog_env, namespace, "late")
    live = fresh_rows(catalog_env, name)
    clean = FaultyStore(warehouse_store(catalog_env))
    puts = _puts_of_a_compaction(catalog_env, namespace)
    store = FaultyStore(clean.inner, Fault(at=puts - 1, when="after", kinds=frozenset({"put"})))
    with pytest.raises(SimulatedCrash):
        compact_table(table_store(catalog_env, store), Identifier((namespace,), "late"))
    table = catalog_env.catalog().load_table(name)
    assert table.current_snapshot().summary.operation.value == "replace"
    assert fresh_rows(catalog_env, name) == live and len(data_files(table)) == 1


def _puts_of_a_compaction(env: CatalogEnv, namespace: str) -> int:
    """How many store writes one compaction of a table shaped like ``small_table`` makes."""
    small_table(env, namespace, "probe")
    store = FaultyStore(warehouse_store(env))
    compact_table(table_store(env, store), Identifier((namespace,), "probe"))
    return sum(1 for kind, _ in store.log if kind == "put")
