"""pyiceberg's RestCatalog against a real server, on the local warehouse and on SeaweedFS."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import EqualTo, GreaterThanOrEqual
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import LongType, NestedField, StringType

from iceshelf.tables.objectstore import open_store
from iceshelf.tables.settings import S3Settings
from tests.clients import CatalogEnv, unique_name

SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("category", pa.string())])


def rows(table) -> list[tuple]:
    data = table.scan().to_arrow().sort_by("id").to_pydict()
    return list(zip(*data.values()))


def batch(ids: list[int], category: str = "a") -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "category": pa.array([category] * len(ids), pa.string())})


def store_of(env: CatalogEnv):
    s3 = env.seaweed.s3_settings() if env.seaweed else S3Settings()
    return open_store(env.warehouse, s3)


def test_namespaces(catalog_env: CatalogEnv) -> None:
    catalog = catalog_env.catalog()
    name = unique_name()
    catalog.create_namespace(name, {"owner": "analytics"})
    catalog.create_namespace((name, "child"))
    assert (name,) in catalog.list_namespaces()
    assert catalog.list_namespaces(name) == [(name, "child")]
    # Unless the namespace sets one, the namespace's default location is reported: <warehouse root>/<name>.
    root = store_of(catalog_env).root_uri
    assert catalog.load_namespace_properties(name) == {"owner": "analytics", "location": f"{root.rstrip('/')}/{name}"}
    assert catalog.load_namespace_properties((name, "child"))["location"] == f"{root.rstrip('/')}/{name}/child"
    catalog.create_namespace(f"{name}_placed", {"location": "s3://elsewhere/x"})
    assert catalog.load_namespace_properties(f"{name}_placed") == {"location": "s3://elsewhere/x"}
    catalog.drop_namespace(f"{name}_placed")
    summary = catalog.update_namespace_properties(name, removals={"owner", "nope"}, updates={"tier": "gold"})
    assert (summary.removed, summary.updated, summary.missing) == (["owner"], ["tier"], ["nope"])
    assert catalog.namespace_exists((name, "child"))
    catalog.drop_namespace((name, "child"))
    catalog.drop_namespace(name)
    assert not catalog.namespace_exists(name)


@pytest.mark.parametrize("partitioned", [False, True], ids=["unpartitioned", "partitioned"])
def test_table_lifecycle(catalog_env: CatalogEnv, namespace: str, partitioned: bool) -> None:
    catalog = catalog_env.catalog()
    spec = PartitionSpec(PartitionField(2, 1000, IdentityTransform(), "category")) if partitioned else PartitionSpec()
    iceberg_schema = Schema(NestedField(1, "id", LongType()), NestedField(2, "category", StringType()))
    table = catalog.create_table(f"{namespace}.events", iceberg_schema, partition_spec=spec)
    assert table.spec().is_unpartitioned() is not partitioned

    for i in range(3):
        table.append(batch([3 * i, 3 * i + 1, 3 * i + 2], "a" if i % 2 == 0 else "b"))
    assert len(table.metadata.snapshots) == 3
    assert [r[0] for r in rows(catalog.load_table(f"{namespace}.events"))] == list(range(9))
    after_appends = table.current_snapshot().snapshot_id

    table.overwrite(batch([100, 101], "c"), overwrite_filter=EqualTo("category", "b"))
    assert [r[0] for r in rows(catalog.load_table(f"{namespace}.events"))] == [0, 1, 2, 6, 7, 8, 100, 101]

    table.delete(GreaterThanOrEqual("id", 100))
    reloaded = catalog.load_table(f"{namespace}.events")
    assert [r[0] for r in rows(reloaded)] == [0, 1, 2, 6, 7, 8]

    # Time travel: the snapshot after the three appends still reads as it was.
    old = reloaded.scan(snapshot_id=after_appends).to_arrow()
    assert sorted(old["id"].to_pylist()) == list(range(9))
    # The metadata log records every previous version, each a readable file.
    assert len(reloaded.metadata.metadata_log) >= 5


def test_schema_and_partition_evolution(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog = catalog_env.catalog()
    table = catalog.create_table(f"{namespace}.evolving", SCHEMA)
    table.append(batch([1, 2]))
    with table.update_schema() as update:
        update.add_column("score", LongType())
    with table.update_spec() as update:
        update.add_identity("category")
    table.append(pa.table({"id": pa.array([3], pa.int64()), "category": ["z"], "score": pa.array([7], pa.int64())}))

    reloaded = catalog.load_table(f"{namespace}.evolving")
    assert [f.name for f in reloaded.schema().fields] == ["id", "category", "score"]
    assert len(reloaded.metadata.schemas) == 2 and len(reloaded.metadata.partition_specs) == 2
    assert reloaded.spec().fields[0].name == "category"
    data = reloaded.scan().to_arrow().sort_by("id").to_pydict()
    assert data["score"] == [None, None, 7]


def test_rename_and_drop(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog = catalog_env.catalog()
    other = unique_name()
    catalog.create_namespace(other)
    table = catalog.create_table(f"{namespace}.before", SCHEMA)
    table.append(batch([1, 2, 3]))

    catalog.rename_table(f"{namespace}.before", f"{other}.after")
    assert not catalog.table_exists(f"{namespace}.before")
    assert catalog.list_tables(namespace) == []
    assert catalog.list_tables(other) == [(other, "after")]
    moved = catalog.load_table(f"{other}.after")
    assert [r[0] for r in rows(moved)] == [1, 2, 3]
    moved.append(batch([4]))  # commits keep working under the new name
    assert [r[0] for r in rows(catalog.load_table(f"{other}.after"))] == [1, 2, 3, 4]

    # The old name is free again.
    catalog.create_table(f"{namespace}.before", SCHEMA)
    assert catalog.table_exists(f"{namespace}.before")

    # Drop without purge keeps the files; the table is gone from the catalog.
    store = store_of(catalog_env)
    kept_prefix = store.key_of(moved.metadata.location + "/")
    catalog.drop_table(f"{other}.after")
    with pytest.raises(NoSuchTableError):
        catalog.load_table(f"{other}.after")
    assert any(True for _ in store.list(kept_prefix))

    # Drop with purge removes every file under the table's location.
    doomed = catalog.load_table(f"{namespace}.before")
    doomed.append(batch([9]))
    purged_prefix = store.key_of(doomed.metadata.location + "/")
    assert any(True for _ in store.list(purged_prefix))
    catalog.purge_table(f"{namespace}.before")
    assert list(store.list(purged_prefix)) == []
    assert not catalog.table_exists(f"{namespace}.before")
