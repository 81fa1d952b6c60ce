"""Unit tests of the table store itself, with no HTTP: ``TableStore`` over a ``MemoryStore``.

The commit path's retry after a lost race, requirement conflicts, the rename protocol's crash
recovery (pointer states written by hand, as a crashed renamer would leave them), namespace
drop racing table create, and metadata-file cleanup after commits.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid

import pytest
from pyiceberg.schema import Schema
from pyiceberg.table.snapshots import Operation, Snapshot, Summary
from pyiceberg.table.update import (
    AddSchemaUpdate,
    AddSnapshotUpdate,
    AssertCurrentSchemaId,
    AssertRefSnapshotId,
    AssertTableUUID,
    AssignUUIDUpdate,
    RemovePropertiesUpdate,
    SetCurrentSchemaUpdate,
    SetPropertiesUpdate,
    SetSnapshotRefUpdate,
)
from pyiceberg.types import LongType, NestedField, StringType

import iceshelf.tables.clock
import iceshelf.tables.state.entries
from iceshelf.tables.commit.batching import Ticket
from iceshelf.tables.commit.committer import TableChange
from iceshelf.tables.errors import (
    BadRequestError,
    CommitFailedException,
    NamespaceNotEmptyError,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from iceshelf.tables.metadata.builder import NEW_TABLE_PROPERTIES
from iceshelf.tables.metadata.history import snapshot_timestamp
from iceshelf.tables.names import Identifier
from iceshelf.tables.objectstore import CREATE, OVERWRITE, PreconditionFailed, Update
from iceshelf.tables.objectstore.memory import MemoryStore
from iceshelf.tables.state.keys import entries_prefix, entry_key
from iceshelf.tables.state.pointer import TOMBSTONES, Pointer
from iceshelf.tables.tablestore import LoadedTable, TableStore

SCHEMA = Schema(NestedField(1, "id", LongType(), required=False), NestedField(2, "name", StringType(), required=False))
_VERSION = re.compile(r"/metadata/(\d{5})-[0-9a-f-]{36}\.metadata\.json$")


def _store(store: MemoryStore | None = None) -> TableStore:
    return TableStore("test", store or MemoryStore())


def _create(ts: TableStore, ident: Identifier, properties: dict[str, str] | None = None) -> LoadedTable:
    if not ts.namespaces.exists(ident.namespace):
        ts.namespaces.create(ident.namespace, {})
    return ts.create_table(ident, ts.new_metadata(ident, SCHEMA, properties=properties))


def _set(ts: TableStore, ident: Identifier, *requirements, **properties: str) -> LoadedTable:
    return ts.commit(TableChange(ident, tuple(requirements), (SetPropertiesUpdate(updates=properties),)))


def _metadata_keys(ts: TableStore, table: LoadedTable) -> set[str]:
    prefix = ts.objects.key_of(table.metadata.location + "/metadata/")
    return {m.key for m in ts.objects.list(prefix) if m.key.endswith(".metadata.json")}


def _version(location: str) -> int:
    match = _VERSION.search(location)
    assert match, location
    return int(match.group(1))


def _race(n: int, fn) -> list:
    """Run ``fn(i)`` in ``n`` threads released together; return results (exceptions returned, not raised)."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            results[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 - the caller inspects outcomes
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "race threads hung"
    return results


class JitterStore(MemoryStore):
    """A memory store that sleeps a little around every operation, so racing threads interleave."""

    def _jitter(self) -> None:
        time.sleep(random.uniform(0, 0.0005))

    def get(self, key):
        self._jitter()
        return super().get(key)

    def put(self, key, data, mode=OVERWRITE):
        self._jitter()
        result = super().put(key, data, mode)
        self._jitter()
        return result

    def delete(self, key):
        self._jitter()
        super().delete(key)

    def list_page(self, prefix, start_after=None, limit=1000):
        self._jitter()
        return super().list_page(prefix, start_after, limit)


# -- the commit path ------------------------------------------------------------------------------


def test_lost_race_is_retried_on_the_new_base():
    """A commit whose pointer swing loses re-reads, re-validates and lands on top of the winner."""
    ts = _store()
    ident = Identifier(("db",), "t")
    created = _create(ts, ident)
    pointer_key = entry_key(ident)
    store = ts.objects
    other_replica = TableStore("test", store)
    lost = []
    original_put = MemoryStore.put

    def put(key, data, mode=OVERWRITE):
        if key == pointer_key and isinstance(mode, Update) and not lost:
            lost.append(mode.etag)
            _set(other_replica, ident, winner="yes")  # lands between this commit's read and its swing
        return original_put(store, key, data, mode)

    store.put = put  # type: ignore[method-assign]
    result = _set(ts, ident, loser="yes")
    del store.put

    assert len(lost) == 1
    current = ts.load_table(ident)
    assert current.metadata_location == result.metadata_location
    assert current.metadata.properties == NEW_TABLE_PROPERTIES | {"winner": "yes", "loser": "yes"}
    # Three versions: create, the winner, the retried loser; the loser's first attempt left nothing.
    log = [e.metadata_file for e in current.metadata.metadata_log]
    assert len(log) == 2 and log[0] == created.metadata_location
    assert ts.files.read(log[1]).metadata.properties == NEW_TABLE_PROPERTIES | {"winner": "yes"}
    assert [_version(x) for x in (*log, current.metadata_location)] == [0, 1, 2]
    assert _metadata_keys(ts, current) == {ts.objects.key_of(x) for x in (*log, current.metadata_location)}


def test_concurrent_commits_without_requirements_all_land():
    ts = _store(JitterStore())
    ident = Identifier(("db",), "t")
    created = _create(ts, ident)
    per_thread = 50
    lost_races = []
    original_put = ts.objects.put

    def counting_put(key, data, mode=OVERWRITE):
        try:
            return original_put(key, data, mode)
        except PreconditionFailed:
            lost_races.append(key)
            raise

    ts.objects.put = counting_put  # type: ignore[method-assign]
    replicas = [TableStore("test", ts.objects) for _ in range(2)]  # two servers racing on one warehouse

    def worker(i: int) -> list[str]:
        return [_set(replicas[i], ident, **{f"w{i}-{j:02d}": str(j)}).metadata_location for j in range(per_thread)]

    results = _race(2, worker)
    for r in results:
        assert not isinstance(r, BaseException), r
    assert lost_races, "the two writers never raced; the test proves nothing"

    current = ts.load_table(ident)
    expected = {f"w{i}-{j:02d}": str(j) for i in range(2) for j in range(per_thread)}
    assert current.metadata.properties == NEW_TABLE_PROPERTIES | expected

    # Each acknowledged commit is one version of the history, in order, with nothing lost.
    log = [e.metadata_file for e in current.metadata.metadata_log]
    history = [*log, current.metadata_location]
    assert len(history) == 2 * per_thread + 1
    assert log[0] == created.metadata_location
    assert [_version(x) for x in history] == list(range(2 * per_thread + 1))
    acknowledged = {loc for r in results for loc in r}
    assert acknowledged == set(history[1:])
    timestamps = [e.timestamp_ms for e in current.metadata.metadata_log]
    assert timestamps == sorted(timestamps)
    # Every version's own log is the prefix of the current one: a chain, no forks.
    for i, location in enumerate(history):
        assert [e.metadata_file for e in ts.files.read(location).metadata.metadata_log] == history[:i]
    # Properties grow by exactly one key per version (from the ones every new table gets).
    sizes = [len(ts.files.read(x).metadata.properties) - len(NEW_TABLE_PROPERTIES) for x in history]
    assert sizes == list(range(len(history)))
    # Losing attempts deleted what they wrote: only the history's files remain.
    assert _metadata_keys(ts, current) == {ts.objects.key_of(x) for x in history}


def test_requirement_conflict_raises_commit_failed_and_changes_nothing():
    ts = _store()
    ident = Identifier(("db",), "t")
    created = _create(ts, ident)
    before = _metadata_keys(ts, created)

    with pytest.raises(CommitFailedException):
        _set(ts, ident, AssertRefSnapshotId(ref="main", snapshot_id=12345), k="v")
    with pytest.raises(CommitFailedException):
        _set(ts, ident, AssertTableUUID(uuid=uuid.uuid4()), k="v")
    with pytest.raises(CommitFailedException):
        _set(ts, ident, AssertCurrentSchemaId(current_schema_id=7), k="v")

    after = ts.load_table(ident)
    assert after.metadata_location == created.metadata_location
    assert after.metadata.properties == NEW_TABLE_PROPERTIES
    assert _metadata_keys(ts, after) == before

    # The right requirements pass.
    ok = _set(ts, ident, AssertTableUUID(uuid=created.metadata.table_uuid), AssertRefSnapshotId(ref="main", snapshot_id=None), k="v")
    assert ok.metadata.properties == NEW_TABLE_PROPERTIES | {"k": "v"}


def test_requirement_that_breaks_during_a_retry_fails_and_discards_its_file():
    """The commit validated against base A; a competitor moves the table to B, which breaks the
    requirement; the retry re-validates against B and fails with 409, leaving nothing behind."""
    ts = _store()
    ident = Identifier(("db",), "t")
    created = _create(ts, ident)
    pointer_key = entry_key(ident)
    store = ts.objects
    original_put = MemoryStore.put
    interfered = []
    new_schema = Schema(*SCHEMA.fields, NestedField(3, "extra", LongType(), required=False), schema_id=1)

    def put(key, data, mode=OVERWRITE):
        if key == pointer_key and isinstance(mode, Update) and not interfered:
            interfered.append(True)  # another replica commits between this commit's read and its swing
            other = TableStore("test", store)
            other.commit(TableChange(ident, (), (AddSchemaUpdate(schema_=new_schema), SetCurrentSchemaUpdate(schema_id=-1))))
        return original_put(store, key, data, mode)

    store.put = put  # type: ignore[method-assign]
    with pytest.raises(CommitFailedException):
        _set(ts, ident, AssertCurrentSchemaId(current_schema_id=0), k="v")
    del store.put

    current = ts.load_table(ident)
    assert interfered
    assert current.metadata.current_schema_id == 1
    assert "k" not in current.metadata.properties
    history = [*(e.metadata_file for e in current.metadata.metadata_log), current.metadata_location]
    assert history[0] == created.metadata_location and len(history) == 2
    assert _metadata_keys(ts, current) == {ts.objects.key_of(x) for x in history}


def test_commit_that_changes_nothing_writes_no_new_version():
    """As in Java: a change whose updates all turn out to be no-ops commits nothing. (It used to
    write a new version whose metadata log had lost the previous file.)"""
    ts = _store()
    ident = Identifier(("db",), "t")
    created = _create(ts, ident, {"a": "1"})
    for updates in (
        (RemovePropertiesUpdate(removals=[]),),
        (SetPropertiesUpdate(updates={}),),
        (SetCurrentSchemaUpdate(schema_id=0),),
        (AssignUUIDUpdate(uuid=created.metadata.table_uuid),),
        (RemovePropertiesUpdate(removals=["never-set"]),),
    ):
        result = ts.commit(TableChange(ident, (), updates))
        assert result.metadata_location == created.metadata_location, updates
    assert ts.load_table(ident).metadata_location == created.metadata_location
    assert _metadata_keys(ts, created) == {ts.objects.key_of(created.metadata_location)}

    # A real change after them extends the history by exactly one version.
    changed = _set(ts, ident, b="2")
    assert [e.metadata_file for e in changed.metadata.metadata_log] == [created.metadata_location]
    assert _version(changed.metadata_location) == 1


def test_removing_an_unset_property_is_no_error():
    """Java's metadata builder ignores removals of unset keys; pyiceberg's raises KeyError (was a 400)."""
    ts = _store()
    ident = Identifier(("db",), "t")
    _create(ts, ident, {"a": "1", "b": "2"})
    result = ts.commit(TableChange(ident, (), (RemovePropertiesUpdate(removals=["a", "missing"]),)))
    assert result.metadata.properties == NEW_TABLE_PROPERTIES | {"b": "2"}


def test_commit_to_missing_table_is_no_such_table():
    ts = _store()
    ts.namespaces.create(("db",), {})
    with pytest.raises(NoSuchTableError):
        _set(ts, Identifier(("db",), "missing"), k="v")


# -- the rename protocol's recovery -------------------------------------------------------------


def _later(ms: int):
    """A stand-in for ``iceshelf.tables.clock.now_ms``: ``ms`` in the future."""
    return lambda: int(time.time() * 1000) + ms


def _crash_after_step_2(ts: TableStore, source: Identifier, target: Identifier):
    """A renamer that created the pending target and died before its commit point."""
    current = ts.entries.read_raw(source)
    pending_etag = ts.objects.put(entry_key(target), current.pointer.pending_from(source).to_bytes(), CREATE)
    return current, pending_etag


def _crash_after_step_3(ts: TableStore, source: Identifier, target: Identifier):
    """A renamer that passed its commit point (source ``moved``) and died before activating the target."""
    current, pending_etag = _crash_after_step_2(ts, source, target)
    ts.objects.put(entry_key(source), current.pointer.moved_to(target).to_bytes(), Update(current.etag))
    return current, pending_etag


@pytest.fixture
def renaming():
    ts = _store()
    source, target = Identifier(("db",), "src"), Identifier(("db",), "dst")
    _create(ts, source)
    _set(ts, source, k="v")
    return ts, source, target, ts.load_table(source)


def test_crash_after_step_2_target_stays_invisible_and_source_usable(renaming):
    ts, source, target, table = renaming
    _crash_after_step_2(ts, source, target)

    assert ts.entries.read_raw(target).pointer.state == "pending"
    assert not ts.table_exists(target)
    with pytest.raises(NoSuchTableError):
        ts.load_table(target)
    assert target.name not in ts.list_tables(("db",))
    assert ts.load_table(source).metadata_location == table.metadata_location
    # Before the timeout nobody aborts it: the renamer may just be slow.
    assert ts.entries.read_raw(target).pointer.state == "pending"
    # And the name is not free while the rename may still complete.
    with pytest.raises(TableAlreadyExistsError):
        _create(ts, target)
    # The source stays committable meanwhile.
    assert _set(ts, source, k2="v2").metadata.properties == NEW_TABLE_PROPERTIES | {"k": "v", "k2": "v2"}


def test_crash_after_step_2_aborts_only_after_timeout_and_fences_the_renamer(renaming, monkeypatch):
    ts, source, target, table = renaming
    source_before, _ = _crash_after_step_2(ts, source, target)

    monkeypatch.setattr(iceshelf.tables.clock, "now_ms", _later(iceshelf.tables.state.entries.RENAME_TIMEOUT_MS - 2_000))
    assert ts.entries.read(target) is None
    assert ts.entries.read_raw(target).pointer.state == "pending", "aborted before RENAME_TIMEOUT_MS"
    assert ts.entries.read_raw(source).etag == source_before.etag

    monkeypatch.setattr(iceshelf.tables.clock, "now_ms", _later(iceshelf.tables.state.entries.RENAME_TIMEOUT_MS + 2_000))
    assert ts.entries.read(target) is None
    assert ts.entries.read_raw(target).pointer.state == "aborted"
    source_after = ts.entries.read_raw(source)
    assert source_after.pointer.state == "active"
    assert source_after.pointer.metadata_location == table.metadata_location
    # The fence: the slow renamer's commit-point CAS (step 3) against the old etag now fails.
    assert source_after.etag != source_before.etag
    with pytest.raises(PreconditionFailed):
        ts.objects.put(entry_key(source), source_before.pointer.moved_to(target).to_bytes(), Update(source_before.etag))
    monkeypatch.undo()

    assert ts.load_table(source).metadata_location == table.metadata_location
    assert not ts.table_exists(target)
    # The aborted tombstone frees the name: a create takes it over, a rename can use it too.
    ts.rename_table(source, target)
    assert ts.load_table(target).metadata_location == table.metadata_location
    assert not ts.table_exists(source)


def test_crash_after_step_3_rolls_forward_on_reading_the_target(renaming, monkeypatch):
    ts, source, target, table = renaming
    _crash_after_step_3(ts, source, target)
    # Even long after the timeout, a target whose source is ``moved`` to it is never aborted.
    monkeypatch.setattr(iceshelf.tables.clock, "now_ms", _later(10 * iceshelf.tables.state.entries.RENAME_TIMEOUT_MS))

    loaded = ts.load_table(target)
    assert loaded.metadata_location == table.metadata_location
    assert ts.entries.read_raw(target).pointer.state == "active"
    assert ts.entries.read_raw(target).pointer.peer is None
    assert not ts.table_exists(source)
    with pytest.raises(NoSuchTableError):
        ts.load_table(source)
    assert ts.list_tables(("db",)) == ["dst"]
    assert _set(ts, target, k3="v3").metadata.properties == NEW_TABLE_PROPERTIES | {"k": "v", "k3": "v3"}


def test_crash_after_step_3_rolls_forward_on_reading_the_source(renaming):
    ts, source, target, table = renaming
    _crash_after_step_3(ts, source, target)

    assert ts.entries.read(source) is None  # reading the moved source settles its target
    assert ts.entries.read_raw(target).pointer.state == "active"
    assert ts.entries.read_raw(source).pointer.state == "moved"
    assert ts.load_table(target).metadata_location == table.metadata_location
    # The source's tombstone is a free name: a new table can be created there.
    fresh = _create(ts, source)
    assert ts.load_table(source).metadata_location == fresh.metadata_location
    assert ts.load_table(target).metadata_location == table.metadata_location


def test_crash_after_step_3_listing_settles(renaming):
    ts, source, target, table = renaming
    _crash_after_step_3(ts, source, target)
    assert ts.list_tables(("db",)) == ["dst"]
    assert ts.entries.read_raw(target).pointer.state == "active"


def test_commit_to_source_during_rename_aborts_the_rename(renaming):
    """A commit between step 2 and step 3 moves the source's etag: the rename's CAS fails, it
    aborts its pending target and retries against the new source."""
    ts, source, target, table = renaming
    store = ts.objects
    original_put = MemoryStore.put
    injected = []

    def put(key, data, mode=OVERWRITE):
        if key == entry_key(source) and isinstance(mode, Update) and Pointer.from_bytes(data).state == "moved" and not injected:
            injected.append(_set(ts, source, during="rename"))
        return original_put(store, key, data, mode)

    store.put = put  # type: ignore[method-assign]
    ts.rename_table(source, target)
    del store.put

    assert injected
    moved = ts.load_table(target)
    assert moved.metadata_location == injected[0].metadata_location
    assert moved.metadata.properties == NEW_TABLE_PROPERTIES | {"k": "v", "during": "rename"}
    assert not ts.table_exists(source)


# -- namespaces ---------------------------------------------------------------------------------


def test_namespace_drop_racing_table_create_never_strands_a_table():
    ts = _store(JitterStore())
    outcomes = {"created": 0, "dropped": 0, "both_failed": 0}
    for round_ in range(40):
        namespace = (f"ns{round_}",)
        ident = Identifier(namespace, "t")
        ts.namespaces.create(namespace, {})
        metadata = ts.new_metadata(ident, SCHEMA)
        delays = [random.uniform(0, 0.006), random.uniform(0, 0.002)]  # [drop, create]

        def act(i: int):
            time.sleep(delays[i])  # vary who gets ahead, so every interleaving shows up
            if i == 0:
                ts.namespaces.drop(namespace)
                return "dropped"
            ts.create_table(ident, metadata)
            return "created"

        drop, create = _race(2, act)
        assert drop == "dropped" or isinstance(drop, NamespaceNotEmptyError), drop
        assert create == "created" or isinstance(create, NoSuchNamespaceError), create
        assert not (drop == "dropped" and create == "created"), "a table was created in a dropped namespace"

        exists = ts.namespaces.exists(namespace)
        # Live entries only: a withdrawn create leaves a tombstone, which is a free name, not a table.
        entries = [
            meta
            for meta in ts.objects.list(entries_prefix(namespace))
            if Pointer.from_bytes(ts.objects.get(meta.key).data).state not in TOMBSTONES
        ]
        if create == "created":
            assert exists and ts.table_exists(ident), "acknowledged table is gone"
            outcomes["created"] += 1
        elif drop == "dropped":
            assert not exists and entries == [], f"stranded entries: {entries}"
            outcomes["dropped"] += 1
        else:
            # Both lost (the create withdrew on seeing the drop's mark; the drop saw its entry).
            # Spurious, but consistent: the namespace is there and the table is not.
            assert exists and not ts.table_exists(ident) and entries == []
            outcomes["both_failed"] += 1
        # Either the namespace exists (with whatever was acknowledged) or nothing of it does.
        assert exists or not entries
        # The namespace is not left marked as dropping.
        if exists:
            ts.namespaces.require_open(namespace)
    # Both sides won sometimes, so the rounds really raced (the delays make each a near-coin-flip).
    assert outcomes["created"] > 0 and outcomes["dropped"] > 0, outcomes


def test_drop_non_empty_namespace_keeps_it_open():
    ts = _store()
    ident = Identifier(("db",), "t")
    _create(ts, ident)
    with pytest.raises(NamespaceNotEmptyError):
        ts.namespaces.drop(("db",))
    ts.namespaces.require_open(("db",))  # the dropping mark was reverted
    assert ts.table_exists(ident)


# -- metadata cleanup ---------------------------------------------------------------------------


def test_delete_after_commit_keeps_only_previous_versions_max():
    ts = _store()
    ident = Identifier(("db",), "t")
    created = _create(
        ts,
        ident,
        {"write.metadata.delete-after-commit.enabled": "true", "write.metadata.previous-versions-max": "2"},
    )
    locations = [created.metadata_location]
    for i in range(5):
        locations.append(_set(ts, ident, **{f"k{i}": "v"}).metadata_location)

    current = ts.load_table(ident)
    assert current.metadata_location == locations[-1]
    assert [e.metadata_file for e in current.metadata.metadata_log] == locations[-3:-1]
    assert _metadata_keys(ts, current) == {ts.objects.key_of(x) for x in locations[-3:]}
    for gone in locations[:-3]:
        assert not ts.files.exists(gone)


def test_without_delete_after_commit_old_metadata_stays():
    ts = _store()
    ident = Identifier(("db",), "t")
    created = _create(ts, ident, {"write.metadata.previous-versions-max": "2"})
    locations = [created.metadata_location]
    for i in range(5):
        locations.append(_set(ts, ident, **{f"k{i}": "v"}).metadata_location)
    current = ts.load_table(ident)
    assert [e.metadata_file for e in current.metadata.metadata_log] == locations[-3:-1]
    assert _metadata_keys(ts, current) == {ts.objects.key_of(x) for x in locations}


# -- the history's time order ---------------------------------------------------------------------


def _append(ident: Identifier, metadata, snapshot_id: int, timestamp_ms: int) -> TableChange:
    """A client's append on ``metadata``'s head, stamped ``timestamp_ms`` (no files: only the log counts)."""
    parent = metadata.current_snapshot_id
    snapshot = Snapshot(
        snapshot_id=snapshot_id,
        parent_snapshot_id=parent,
        sequence_number=metadata.last_sequence_number + 1,
        timestamp_ms=timestamp_ms,
        manifest_list=f"{metadata.location}/metadata/snap-{snapshot_id}.avro",
        summary=Summary(Operation.APPEND),
        schema_id=metadata.current_schema_id,
    )
    return TableChange(
        ident,
        (AssertRefSnapshotId(ref="main", snapshot_id=parent),),
        (AddSnapshotUpdate(snapshot=snapshot), SetSnapshotRefUpdate(ref_name="main", type="branch", snapshot_id=snapshot_id)),
    )


def test_a_change_out_of_time_order_is_refused_on_its_own_within_a_batch():
    """Java's checks run per change: in a group commit batch the change whose snapshot steps back more
    than a minute is 400, and the others land, with ``last-updated-ms`` never going back."""
    ts = _store()
    ident = Identifier(("db",), "t")
    _create(ts, ident)
    first = ts.commit(_append(ident, ts.load_table(ident).metadata, 1, iceshelf.tables.clock.now_ms()))
    head = first.metadata
    late = _append(ident, head, 2, head.snapshot_log[-1].timestamp_ms - 61_000)
    tickets = [Ticket(late), Ticket(TableChange(ident, (), (SetPropertiesUpdate(updates={"k": "v"}),)))]
    ts.committer.commit_batch(tickets)

    assert isinstance(tickets[0].error, BadRequestError)
    assert str(tickets[0].error) == "[BUG] Expected sorted snapshot log entries."
    assert tickets[1].error is None
    current = ts.load_table(ident).metadata
    assert current.properties == NEW_TABLE_PROPERTIES | {"k": "v"} and current.current_snapshot_id == 1
    assert current.last_updated_ms >= head.last_updated_ms
    assert current.metadata_log[-1].timestamp_ms == head.last_updated_ms



def test_a_server_made_snapshot_is_stamped_after_its_parent_even_on_a_slow_clock(monkeypatch):
    """A replica whose clock runs behind the one that wrote the head still stamps its snapshots (rebase,
    compaction, manifest rewrite) after the head and the log: the history never steps back."""
    ts = _store()
    ident = Identifier(("db",), "t")
    _create(ts, ident)
    head = ts.commit(_append(ident, ts.load_table(ident).metadata, 1, iceshelf.tables.clock.now_ms())).metadata
    parent = head.current_snapshot()
    monkeypatch.setattr(iceshelf.tables.clock, "now_ms", lambda: parent.timestamp_ms - 600_000)
    stamp = snapshot_timestamp(head, parent)
    assert stamp > parent.timestamp_ms and stamp >= head.last_updated_ms
    later = ts.commit(_append(ident, head, 2, stamp)).metadata
    assert [e.timestamp_ms for e in later.snapshot_log] == sorted(e.timestamp_ms for e in later.snapshot_log)
    assert later.last_updated_ms >= head.last_updated_ms and later.last_updated_ms >= stamp
