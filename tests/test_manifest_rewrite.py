"""Manifest rewrite: which manifests merge (pure), and that merging changes no row any client reads."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyiceberg.manifest import ManifestContent, ManifestFile

from iceshelf.compaction.manifests.codec import read_manifest_list
from iceshelf.compaction.manifests.merge import plan_manifest_rewrite, rewrite_manifests
from iceshelf.tables.names import Identifier
from iceshelf.tables.objectstore.fileio import StoreFileIO
from tests.clients import CatalogEnv
from tests.compaction_support import fresh_rows, table_store, warehouse_store

KB = 1024


def manifest(
    name: str, size: int, spec: int = 0, content: ManifestContent = ManifestContent.DATA, removals_only: bool = False
) -> ManifestFile:
    return ManifestFile.from_args(
        manifest_path=name,
        manifest_length=size,
        partition_spec_id=spec,
        content=content,
        sequence_number=1,
        min_sequence_number=1,
        added_snapshot_id=1,
        added_files_count=0 if removals_only else 1,
        existing_files_count=0,
        deleted_files_count=1 if removals_only else 0,
        added_rows_count=1,
        existing_rows_count=0,
        deleted_rows_count=0,
    )


CASES = [
    ("enough small manifests merge into one", [manifest(f"m{i}", 5 * KB) for i in range(4)], 4, [["m0", "m1", "m2", "m3"]]),
    ("too few stay as they are", [manifest(f"m{i}", 5 * KB) for i in range(3)], 4, []),
    (
        "big manifests are left alone",
        [manifest("big", 100 * KB), *(manifest(f"m{i}", 5 * KB) for i in range(4))],
        4,
        [["m0", "m1", "m2", "m3"]],
    ),
    ("groups stop at the target size", [manifest(f"m{i}", 20 * KB) for i in range(5)], 2, [["m0", "m1"], ["m2", "m3"]]),
    (
        "specs and contents never mix",
        [
            manifest("a0", KB),
            manifest("a1", KB),
            manifest("b0", KB, spec=1),
            manifest("b1", KB, spec=1),
            manifest("d0", KB, content=ManifestContent.DELETES),
        ],
        2,
        [["a0", "a1"], ["b0", "b1"]],
    ),
    (
        "a manifest of removals only is dropped on its own, even with nothing to merge",
        [manifest("gone", 600 * KB, removals_only=True), manifest("m0", KB)],
        4,
        [["gone"]],
    ),
]


@pytest.mark.parametrize("manifests, min_count, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_which_manifests_merge(manifests: list[ManifestFile], min_count: int, expected: list[list[str]]) -> None:
    groups = plan_manifest_rewrite(manifests, target_bytes=50 * KB, min_count=min_count)
    assert [[m.manifest_path for m in group] for group in groups] == expected


def test_small_manifests_merge_without_changing_any_row(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog = catalog_env.catalog()
    name = f"{namespace}.many"
    table = catalog.create_table(
        name, schema=pa.schema([("id", pa.int64())]), properties={"commit.manifest.min-count-to-merge": "4"}
    )
    for n in range(8):
        table.append(pa.table({"id": list(range(n * 10, n * 10 + 10))}))
    table.delete("id < 10")
    table = catalog.load_table(name)
    io = StoreFileIO(warehouse_store(catalog_env))
    before = len(read_manifest_list(io, table.current_snapshot().manifest_list))
    history = {
        s.snapshot_id: sorted(table.scan(snapshot_id=s.snapshot_id).to_arrow()["id"].to_pylist()) for s in table.snapshots()
    }
    seen_by_duckdb = fresh_rows(catalog_env, name)

    result = rewrite_manifests(table_store(catalog_env), Identifier((namespace,), "many"))

    table = catalog.load_table(name)
    head = table.current_snapshot()
    after = len(read_manifest_list(io, head.manifest_list))
    assert before >= 8 and after == 1 and (result.replaced, result.created) == (before, 1)
    assert head.summary.operation.value == "replace" and head.parent_snapshot_id in history
    parent = table.snapshot_by_id(head.parent_snapshot_id)
    totals = {k: v for k, v in parent.summary.additional_properties.items() if k.startswith("total-")}
    assert {k: v for k, v in head.summary.additional_properties.items() if k.startswith("total-")} == totals
    assert sorted(table.scan().to_arrow()["id"].to_pylist()) == history[parent.snapshot_id]
    for snapshot_id, expected in history.items():
        assert sorted(table.scan(snapshot_id=snapshot_id).to_arrow()["id"].to_pylist()) == expected
    assert fresh_rows(catalog_env, name) == seen_by_duckdb
    assert rewrite_manifests(table_store(catalog_env), Identifier((namespace,), "many")).created == 0  # nothing left to merge


def test_v3_table_written_by_duckdb_keeps_rows_row_ids_and_deletion_vectors(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog, name = catalog_env.catalog(), f"{namespace}.ducks"
    catalog.create_table(
        name,
        schema=pa.schema([("id", pa.int64()), ("name", pa.string())]),
        properties={"format-version": "3", "commit.manifest.min-count-to-merge": "2"},
    )
    con = catalog_env.duckdb()
    for n in range(5):
        con.execute(f"INSERT INTO lake.{name} SELECT range, 'duck ' || range FROM range({n * 10}, {n * 10 + 10})")
    con.execute(f"DELETE FROM lake.{name} WHERE id % 4 = 1")
    con.close()
    before = fresh_rows(catalog_env, name, "_row_id, id, name")

    result = rewrite_manifests(table_store(catalog_env), Identifier((namespace,), "ducks"))

    assert result.created == 1 and result.replaced >= 5
    assert fresh_rows(catalog_env, name, "_row_id, id, name") == before
    assert catalog.load_table(name).metadata.format_version == 3
