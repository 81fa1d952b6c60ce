"""Compaction end to end, on the local and the S3 warehouse: pyiceberg and DuckDB write, compaction
rewrites, both clients read back exactly the rows that were live -- deletes applied, row ids kept,
partitions, sort order and manifest metrics right -- and the ``iceshelf compact`` CLI does the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.conversions import from_bytes
from pyiceberg.manifest import DataFileContent, FileFormat, ManifestContent, ManifestEntry, ManifestEntryStatus
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.snapshots import Operation, Snapshot, Summary
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.table.update import AddSnapshotUpdate, AssertRefSnapshotId, SetSnapshotRefUpdate
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import LongType, NestedField, StringType

from iceshelf.compaction.manifests.codec import ContentManifestWriter, new_data_file, write_manifest_list_file
from iceshelf.compaction.rewrite.compact import CompactionOptions, compact_table
from iceshelf.compaction.rewrite.groups import RewriteCheckFailed
from iceshelf.compaction.rewrite.planner import PlanOptions
from iceshelf.tables.names import Identifier
from tests.clients import CatalogEnv
from tests.compaction_support import (
    append,
    data_files,
    delete_file_count,
    fresh_rows,
    table_objects,
    table_store,
    warehouse_store,
)

ROOT = Path(__file__).resolve().parents[1]
ARROW = pa.schema([pa.field("id", pa.int64()), pa.field("kind", pa.string())])


def batch(start: int, count: int) -> pa.Table:
    ids = list(range(start, start + count))
    return pa.table({"id": pa.array(ids, pa.int64()), "kind": [f"k{i % 3}" for i in ids]}, schema=ARROW)


def test_rewrite_applies_position_deletes_and_keeps_every_live_row(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog, name = catalog_env.catalog(), f"{namespace}.events"
    catalog.create_table(name, schema=ARROW)
    for n in range(6):
        append(catalog, name, batch(n * 50, 50))
    con = catalog_env.duckdb()
    con.execute(f"DELETE FROM lake.{name} WHERE id % 7 = 0 OR kind = 'k2' AND id < 100")
    before = catalog.load_table(name)
    live = fresh_rows(catalog_env, name)
    assert len(data_files(before)) == 6 and delete_file_count(before) > 0

    result = compact_table(table_store(catalog_env), Identifier((namespace,), "events"))

    after = catalog.load_table(name)
    assert after.current_snapshot().snapshot_id == result.snapshot_id
    assert after.current_snapshot().summary.operation == Operation.REPLACE
    assert after.current_snapshot().parent_snapshot_id == before.current_snapshot().snapshot_id
    assert fresh_rows(catalog_env, name) == live
    scanned = after.scan().to_arrow()
    assert sorted(zip(scanned["id"].to_pylist(), scanned["kind"].to_pylist())) == sorted(live.elements())
    assert (result.files_in, result.files_out, result.records_out) == (6, 1, sum(live.values()))
    assert result.delete_files_removed > 0 and delete_file_count(after) == 0
    # time travel to before the rewrite still reads the same rows, through the old files and deletes
    old = catalog.load_table(name).scan(snapshot_id=before.current_snapshot().snapshot_id).to_arrow()
    assert sorted(zip(old["id"].to_pylist(), old["kind"].to_pylist())) == sorted(live.elements())


def test_rewritten_files_carry_metrics_and_the_starting_sequence_number(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog, name = catalog_env.catalog(), f"{namespace}.metrics"
    catalog.create_table(name, schema=ARROW)
    for n in range(5):
        data = batch(n * 10, 10)
        if n == 2:
            data = pa.table({"id": data["id"], "kind": pa.array([None] * 10, pa.string())}, schema=ARROW)
        append(catalog, name, data)
    starting = catalog.load_table(name).current_snapshot()

    compact_table(table_store(catalog_env), Identifier((namespace,), "metrics"))

    entries = catalog.load_table(name).inspect.entries().to_pylist()
    added = [e for e in entries if e["status"] == ManifestEntryStatus.ADDED.value]
    removed = [e for e in entries if e["status"] == ManifestEntryStatus.DELETED.value]
    assert len(added) == 1 and len(removed) == 5
    entry = added[0]
    assert entry["sequence_number"] == starting.sequence_number  # the data sequence number of the rewrite's input
    data_file = entry["data_file"]
    assert data_file["record_count"] == 50
    assert dict(data_file["value_counts"]) == {1: 50, 2: 50}
    assert dict(data_file["null_value_counts"]) == {1: 0, 2: 10}
    lower, upper = dict(data_file["lower_bounds"]), dict(data_file["upper_bounds"])
    assert (from_bytes(LongType(), lower[1]), from_bytes(LongType(), upper[1])) == (0, 49)
    assert (from_bytes(StringType(), lower[2]), from_bytes(StringType(), upper[2])) == ("k0", "k2")
    assert data_file["column_sizes"] and data_file["split_offsets"]


def test_v3_deletion_vectors_are_applied_and_row_ids_survive(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog, name = catalog_env.catalog(), f"{namespace}.lineage"
    catalog.create_table(name, schema=ARROW, properties={"format-version": "3"})
    con = catalog_env.duckdb()
    for n in range(5):
        con.execute(f"INSERT INTO lake.{name} SELECT range, 'k' || (range % 3) FROM range({n * 40}, {n * 40 + 40})")
    con.execute(f"DELETE FROM lake.{name} WHERE id % 5 = 1")
    before = fresh_rows(catalog_env, name, "_row_id, id, kind")
    assert any(f.file_format == FileFormat.PUFFIN for t in catalog.load_table(name).scan().plan_files() for f in t.delete_files)

    result = compact_table(table_store(catalog_env), Identifier((namespace,), "lineage"))

    assert (result.files_in, result.files_out) == (5, 1)
    assert fresh_rows(catalog_env, name, "_row_id, id, kind") == before
    metadata = catalog.load_table(name).metadata
    assert metadata.format_version == 3 and metadata.next_row_id >= 200
    con.execute(f"INSERT INTO lake.{name} VALUES (1000, 'new')")  # row ids stay unique after the rewrite
    ids = fresh_rows(catalog_env, name, "_row_id")
    assert all(count == 1 for count in ids.values())


def test_partitioned_sorted_table_keeps_partitions_and_sorts_rows(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog, name = catalog_env.catalog(), f"{namespace}.sorted"
    schema = Schema(NestedField(1, "id", LongType()), NestedField(2, "kind", StringType()))
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="kind"))
    order = SortOrder(SortField(source_id=1, transform=IdentityTransform()))
    catalog.create_table(name, schema=schema, partition_spec=spec, sort_order=order)
    for n in range(6):  # ids arrive descending, so a concatenation would not be sorted
        append(catalog, name, batch(1000 - (n + 1) * 30, 30))
    live = fresh_rows(catalog_env, name)
    assert len(data_files(catalog.load_table(name))) == 18

    result = compact_table(table_store(catalog_env), Identifier((namespace,), "sorted"))

    table = catalog.load_table(name)
    assert result.strategy == "sort" and result.files_out == 3
    assert fresh_rows(catalog_env, name) == live
    con = catalog_env.duckdb()
    for data_file in data_files(table):
        assert data_file.sort_order_id == table.metadata.default_sort_order_id
        path = data_file.file_path.removeprefix("file://")
        contents = con.sql(f"SELECT id, kind FROM read_parquet('{path}') ORDER BY file_row_number").fetchall()
        assert {kind for _, kind in contents} == {data_file.partition[0]}
        assert [i for i, _ in contents] == sorted(i for i, _ in contents)
        assert f"/kind={data_file.partition[0]}/" in data_file.file_path


def test_equality_deletes_are_applied_then_dropped(catalog_env: CatalogEnv, namespace: str) -> None:
    """An equality delete file, as Flink or Spark write them, deletes by value; after the rewrite it is gone."""
    catalog, name = catalog_env.catalog(), f"{namespace}.upserts"
    catalog.create_table(name, schema=ARROW)
    for n in range(5):
        append(catalog, name, batch(n * 20, 20))
    _commit_equality_delete(catalog.load_table(name), ids=[3, 4, 50, 99, 12345])
    append(catalog, name, batch(3, 1))  # re-inserted after the delete: must survive it
    live = fresh_rows(catalog_env, name)
    assert (3, "k0") in live and (4, "k1") not in live and sum(live.values()) == 97

    options = CompactionOptions(PlanOptions(min_input_files=2))
    result = compact_table(table_store(catalog_env), Identifier((namespace,), "upserts"), options)

    table = catalog.load_table(name)
    assert fresh_rows(catalog_env, name) == live
    assert result.delete_files_removed == 1 and delete_file_count(table) == 0


def _commit_equality_delete(table, ids: list[int]) -> None:
    """Write an equality delete file on ``id`` and commit it over REST, as a streaming writer would."""
    location = f"{table.metadata.location}/data/eq-{ids[0]}.parquet"
    field = pa.field("id", pa.int64(), nullable=False, metadata={b"PARQUET:field_id": b"1"})
    with table.io.new_output(location).create(overwrite=True) as out:
        pq.write_table(pa.table({"id": pa.array(ids, pa.int64())}, schema=pa.schema([field])), out)
    size = len(table.io.new_input(location))
    metadata = table.metadata
    snapshot_id = abs(hash(location)) % (1 << 62) + 1
    seq = metadata.next_sequence_number()
    delete = new_data_file(
        content=DataFileContent.EQUALITY_DELETES, file_path=location, file_format=FileFormat.PARQUET, partition=None,
        record_count=len(ids), file_size_in_bytes=size, equality_ids=[1],
    )
    manifest_location = f"{metadata.location}/metadata/eq-{snapshot_id}-m0.avro"
    output = table.io.new_output(manifest_location)
    writer = ContentManifestWriter(2, ManifestContent.DELETES, metadata.spec(), metadata.schema(), output, snapshot_id)
    with writer:
        writer.add(ManifestEntry.from_args(status=ManifestEntryStatus.ADDED, snapshot_id=snapshot_id, data_file=delete))
    parent = table.current_snapshot()
    list_location = f"{metadata.location}/metadata/snap-{snapshot_id}-eq.avro"
    manifests = [writer.to_manifest_file(), *parent.manifests(table.io)]
    write_manifest_list_file(2, table.io.new_output(list_location), snapshot_id, parent.snapshot_id, seq, None, manifests)
    snapshot = Snapshot(
        snapshot_id=snapshot_id, parent_snapshot_id=parent.snapshot_id, sequence_number=seq, manifest_list=list_location,
        summary=Summary(Operation.DELETE), schema_id=metadata.current_schema_id,
    )
    with table.transaction() as tx:
        tx._apply(
            (AddSnapshotUpdate(snapshot=snapshot), SetSnapshotRefUpdate(ref_name="main", type="branch", snapshot_id=snapshot_id)),
            (AssertRefSnapshotId(ref="main", snapshot_id=parent.snapshot_id),),
        )


def test_files_without_field_ids_are_refused_rather_than_read_as_nulls(catalog_env: CatalogEnv, namespace: str) -> None:
    """Files added by ``add_files`` carry no field ids (readers map them by name); the rewrite reads
    by field id, so its null-count check must stop it before anything is committed."""
    catalog, name = catalog_env.catalog(), f"{namespace}.migrated"
    table = catalog.create_table(name, schema=ARROW)
    locations = [f"{table.metadata.location}/data/plain-{n}.parquet" for n in range(5)]
    for n, location in enumerate(locations):
        with table.io.new_output(location).create(overwrite=True) as out:
            pq.write_table(batch(n * 10, 10), out)
    table.add_files(locations)
    before = catalog.load_table(name)
    expected = sorted(tuple(r.values()) for r in before.scan().to_arrow().to_pylist())

    with pytest.raises(RewriteCheckFailed, match="field id"):
        compact_table(table_store(catalog_env), Identifier((namespace,), "migrated"))

    after = catalog.load_table(name)
    assert after.current_snapshot().snapshot_id == before.current_snapshot().snapshot_id
    assert sorted(tuple(r.values()) for r in after.scan().to_arrow().to_pylist()) == expected
    assert not [f for f in table_objects(warehouse_store(catalog_env), after) if "/compaction-" in f]


def test_nothing_to_do_commits_nothing(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog, name = catalog_env.catalog(), f"{namespace}.few"
    catalog.create_table(name, schema=ARROW)
    append(catalog, name, batch(0, 10))
    snapshot = catalog.load_table(name).current_snapshot().snapshot_id
    result = compact_table(table_store(catalog_env), Identifier((namespace,), "few"))
    assert result.snapshot_id is None and result.files_in == 0
    assert catalog.load_table(name).current_snapshot().snapshot_id == snapshot


def test_cli_dry_run_then_compact(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog, name = catalog_env.catalog(), f"{namespace}.cli"
    catalog.create_table(name, schema=ARROW)
    for n in range(5):
        append(catalog, name, batch(n * 10, 10))
    live = fresh_rows(catalog_env, name)
    snapshot = catalog.load_table(name).current_snapshot().snapshot_id

    def cli(table: str, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, **catalog_env.s3_env(), "COLUMNS": "200"}
        command = [sys.executable, "-m", "iceshelf.catalog.cli", "compact", table, "--warehouse", catalog_env.warehouse, *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    dry = cli(name, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "compaction plan" in dry.stdout and "small files" in dry.stdout and "nothing written" in dry.stdout
    assert catalog.load_table(name).current_snapshot().snapshot_id == snapshot

    done = cli(name)
    assert done.returncode == 0, done.stderr
    table = catalog.load_table(name)
    assert str(table.current_snapshot().snapshot_id) in done.stdout
    assert "data files" in done.stdout and "5" in done.stdout
    assert len(data_files(table)) == 1 and fresh_rows(catalog_env, name) == live
    jobs = httpx.get(f"{catalog_env.url}/v1/default/namespaces/{namespace}/tables/cli/maintenance/jobs").json()
    assert jobs["status"]["icebergCompaction"]["status"] == "Successful"
    run = jobs["history"][0]
    # 5 data files and the manifest recording their removal in, 1 data file out
    assert (run["type"], run["filesIn"], run["filesOut"]) == ("icebergCompaction", 6, 1)
    assert (run["detail"]["manifestsReplaced"], run["detail"]["manifestsCreated"]) == (1, 0)
    assert run["detail"]["snapshotId"] == table.current_snapshot().snapshot_id

    missing = cli(f"{namespace}.nope")
    assert missing.returncode == 1 and "does not exist" in missing.stdout


def test_a_later_compaction_drops_the_removals_of_an_earlier_one(catalog_env: CatalogEnv, namespace: str) -> None:
    """A compaction's removed entries sit in a manifest of their own, for that snapshot; the next
    replace does not carry that manifest along (readers like DuckDB would open it on every scan)."""
    catalog, name = catalog_env.catalog(), f"{namespace}.twice"
    schema = Schema(NestedField(1, "id", LongType()), NestedField(2, "kind", StringType()))
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="kind"))
    catalog.create_table(name, schema=schema, partition_spec=spec)
    for n in range(5):
        append(catalog, name, pa.table({"id": [n, 100 + n], "kind": ["a", "b" if n < 2 else "a"]}, schema=ARROW))
    live = fresh_rows(catalog_env, name)
    ident = Identifier((namespace,), "twice")

    first = compact_table(table_store(catalog_env), ident)  # kind=a has 5 files, kind=b only 2
    second = compact_table(table_store(catalog_env), ident, CompactionOptions(PlanOptions(min_input_files=2)))

    table = catalog.load_table(name)
    assert (first.files_in, second.files_in) == (5, 2) and fresh_rows(catalog_env, name) == live
    manifests = table.current_snapshot().manifests(table.io)
    removals = [m for m in manifests if m.deleted_files_count and not (m.added_files_count or m.existing_files_count)]
    assert [m.added_snapshot_id for m in removals] == [second.snapshot_id]
