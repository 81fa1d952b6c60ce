"""Snapshot expiry: which snapshots go (pure, a table of cases), and what expiry does to a real table.

The integration test runs ``iceshelf expire`` on the test server's warehouse, then checks with
pyiceberg over HTTP that time travel to every kept snapshot still reads the same rows, and with
the object store that exactly the files only expired snapshots reached are gone.
"""

from __future__ import annotations

import httpx
import pyarrow as pa
import pytest
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadataV2
from pyiceberg.table.refs import SnapshotRef, SnapshotRefType
from pyiceberg.table.snapshots import Snapshot

from iceshelf.compaction.jobs.config import ExpiryPolicy, SnapshotManagementSettings
from iceshelf.compaction.jobs.expiry import AssertStillExpirable, snapshots_to_expire
from iceshelf.tables.errors import CommitFailedException
from tests.clients import CatalogEnv
from tests.compaction_support import warehouse_store

HOUR = 3_600_000
NOW = 1_000 * HOUR


def metadata(snapshots: list[tuple[int, int | None, int]], refs: dict[str, tuple[str, int, dict]]) -> TableMetadataV2:
    """``snapshots``: ``(id, parent, age in hours)``; ``refs``: name -> ``(branch|tag, snapshot id, retention)``."""
    return TableMetadataV2(
        location="s3://b/t",
        last_column_id=1,
        schemas=[{"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "x", "type": "long", "required": False}]}],
        partition_specs=[{"spec-id": 0, "fields": []}],
        last_partition_id=999,
        last_sequence_number=len(snapshots),
        snapshots=[
            Snapshot(
                **{
                    "snapshot-id": sid,
                    "parent-snapshot-id": parent,
                    "timestamp-ms": NOW - age * HOUR,
                    "manifest-list": f"s3://b/t/{sid}.avro",
                    "sequence-number": n + 1,
                }
            )
            for n, (sid, parent, age) in enumerate(snapshots)
        ],
        refs={
            name: SnapshotRef(**{"snapshot-id": sid, "type": SnapshotRefType(kind), **retention})
            for name, (kind, sid, retention) in refs.items()
        },
        current_snapshot_id=refs["main"][1] if "main" in refs else None,
    )


CHAIN = [(1, None, 50), (2, 1, 40), (3, 2, 30), (4, 3, 20), (5, 4, 10)]

CASES = [
    ("old ancestors go, the head stays", CHAIN, {"main": ("branch", 5, {})}, ExpiryPolicy(1, 5 * HOUR), {1, 2, 3, 4}),
    ("young ancestors stay", CHAIN, {"main": ("branch", 5, {})}, ExpiryPolicy(1, 35 * HOUR), {1, 2}),
    ("minSnapshotsToKeep keeps the newest ancestors", CHAIN, {"main": ("branch", 5, {})}, ExpiryPolicy(3, HOUR), {1, 2}),
    ("a tag head is never expired", CHAIN, {"main": ("branch", 5, {}), "v1": ("tag", 2, {})}, ExpiryPolicy(1, HOUR), {1, 3, 4}),
    (
        "a branch head and its own retention",
        CHAIN + [(6, 2, 45), (7, 6, 44)],
        {"main": ("branch", 5, {}), "b": ("branch", 7, {"min-snapshots-to-keep": 2})},
        ExpiryPolicy(1, HOUR),
        {1, 2, 3, 4},
    ),
    (
        "a branch's max-snapshot-age-ms overrides the table's",
        CHAIN,
        {"main": ("branch", 5, {"max-snapshot-age-ms": 25 * HOUR})},
        ExpiryPolicy(1, HOUR),
        {1, 2, 3},
    ),
    (
        "a snapshot on no ref goes only when old",
        CHAIN + [(8, 1, 2), (9, 1, 60)],
        {"main": ("branch", 5, {})},
        ExpiryPolicy(1, 5 * HOUR),
        {1, 2, 3, 4, 9},
    ),
    ("nothing to expire", CHAIN, {"main": ("branch", 5, {})}, ExpiryPolicy(5, HOUR), set()),
]


@pytest.mark.parametrize("snapshots, refs, policy, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_which_snapshots_expire(snapshots: list, refs: dict, policy: ExpiryPolicy, expected: set[int]) -> None:
    assert snapshots_to_expire(metadata(snapshots, refs), policy, NOW) == expected


def test_the_commit_requirement_fails_when_a_chosen_snapshot_became_a_ref_head() -> None:
    settings = SnapshotManagementSettings(minSnapshotsToKeep=1, maxSnapshotAgeHours=5)
    requirement = AssertStillExpirable(snapshot_ids=[1, 2], settings=settings, now_ms=NOW)
    requirement.validate(metadata(CHAIN + [(6, 5, 0)], {"main": ("branch", 6, {})}))  # an append meanwhile: still fine
    with pytest.raises(CommitFailedException, match=r"\[2\]"):
        requirement.validate(metadata(CHAIN, {"main": ("branch", 5, {}), "keep": ("tag", 2, {})}))


# -- on a real table -----------------------------------------------------------------------------


def snapshot_files(table: Table, snapshot: Snapshot) -> set[str]:
    """What reading ``snapshot`` needs: its manifest list, manifests and live data files (read by the client)."""
    files = {snapshot.manifest_list}
    files.update(m.manifest_path for m in snapshot.manifests(table.io))
    files.update(task.file.file_path for task in table.scan(snapshot_id=snapshot.snapshot_id).plan_files())
    return files


def test_expire_keeps_time_travel_and_deletes_only_expired_files(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog = catalog_env.catalog()
    name = f"{namespace}.events"
    table = catalog.create_table(name, schema=pa.schema([("id", pa.int64())]))
    for start in (0, 10):
        table.append(pa.table({"id": list(range(start, start + 10))}))
    table.delete("id < 10")  # the first file leaves the table: only s1 and s2 still read it
    for start in (20, 30):
        table.append(pa.table({"id": list(range(start, start + 10))}))
    table = catalog.load_table(name)
    s1, s2, s3, s4, s5 = table.metadata.snapshots
    table.manage_snapshots().create_tag(s3.snapshot_id, "audit").commit()
    with table.transaction() as tx:
        tx.set_properties({"history.expire.min-snapshots-to-keep": "2", "history.expire.max-snapshot-age-ms": "1"})
    table = catalog.load_table(name)
    rows = {s.snapshot_id: sorted(table.scan(snapshot_id=s.snapshot_id).to_arrow()["id"].to_pylist()) for s in (s3, s4, s5)}
    kept, expired = [s3, s4, s5], [s1, s2]
    needed = set().union(*(snapshot_files(table, s) for s in kept))
    only_expired = set().union(*(snapshot_files(table, s) for s in expired)) - needed
    first_file = next(t.file.file_path for t in table.scan(snapshot_id=s1.snapshot_id).plan_files())
    assert first_file in only_expired and s1.manifest_list in only_expired

    dry = catalog_env.cli("expire", name, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete" in dry.stdout
    assert len(catalog.load_table(name).metadata.snapshots) == 5

    done = catalog_env.cli("expire", name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "expired snapshots" in done.stdout

    table = catalog.load_table(name)
    assert {s.snapshot_id for s in table.metadata.snapshots} == {s.snapshot_id for s in kept}
    assert table.metadata.refs["audit"].snapshot_id == s3.snapshot_id
    for snapshot_id, expected in rows.items():
        assert sorted(table.scan(snapshot_id=snapshot_id).to_arrow()["id"].to_pylist()) == expected
    store = warehouse_store(catalog_env)
    assert not any(store.exists(store.key_of(f)) for f in only_expired)
    assert all(store.exists(store.key_of(f)) for f in needed)
    jobs = httpx.get(f"{catalog_env.url}/v1/default/namespaces/{namespace}/tables/events/maintenance/jobs").json()
    assert jobs["status"]["icebergSnapshotManagement"]["status"] == "Successful"
    assert jobs["history"][0]["filesIn"] == len(only_expired)
    assert jobs["history"][0]["detail"] == {"expiredSnapshots": 2}
