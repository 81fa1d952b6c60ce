"""Orphan file removal: never a referenced file, never a young one; noncurrent files wait their turn.

Writers and readers are real clients over HTTP; orphans are planted in the same object store the
test server uses (local directory or SeaweedFS). That orphan removal cleans up after a compaction
crashed at any of its writes is tested with the crashes, in ``test_compaction_concurrency.py``.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone

import pyarrow as pa
import pytest

from iceshelf.compaction.jobs.orphans import Noncurrent, UnmappableLocation, referenced_key, remove_orphans
from iceshelf.compaction.jobs.records import MaintenanceStore
from iceshelf.tables import clock
from iceshelf.tables.names import Identifier
from iceshelf.tables.objectstore.memory import MemoryStore
from tests.clients import CatalogEnv
from tests.compaction_support import referenced_files, table_objects, table_store, warehouse_store

DAY_MS = 86_400_000


def make_table(env: CatalogEnv, namespace: str, appends: int = 3):
    catalog = env.catalog()
    table = catalog.create_table(f"{namespace}.t", schema=pa.schema([("id", pa.int64()), ("v", pa.string())]))
    for n in range(appends):
        table.append(pa.table({"id": list(range(n * 10, n * 10 + 10)), "v": [f"r{n}"] * 10}))
    return catalog, catalog.load_table(f"{namespace}.t")


def rows(table) -> Counter:
    return Counter(tuple(r.values()) for r in table.scan().to_arrow().to_pylist())


def plant(store, location: str, name: str) -> str:
    key = store.key_of(f"{location}/{name}")
    store.put(key, b"not referenced by anything")
    return store.uri(key)


def test_removal_spares_referenced_and_young_files(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog, table = make_table(catalog_env, namespace)
    table.delete("id < 5")  # a DELETED manifest entry and a rewritten file: referenced history stays
    table = catalog.load_table(f"{namespace}.t")
    before = rows(table)
    store = warehouse_store(catalog_env)
    old = [
        plant(store, table.metadata.location, "data/stale.parquet"),
        plant(store, table.metadata.location, "metadata/stale.avro"),
    ]
    outside = plant(store, table.metadata.location.rsplit("/", 1)[0], "beside-the-table.txt")
    time.sleep(1.1)  # S3 stamps objects to the second
    cutoff = datetime.now(timezone.utc).isoformat()
    time.sleep(1.1)
    young = plant(store, table.metadata.location, "data/in-flight.parquet")
    referenced = referenced_files(table)

    dry = catalog_env.cli("remove-orphans", f"{namespace}.t", "--older-than", cutoff, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert all(store.exists(store.key_of(f)) for f in old)

    done = catalog_env.cli("remove-orphans", f"{namespace}.t", "--older-than", cutoff)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not any(store.exists(store.key_of(f)) for f in old)
    assert store.exists(store.key_of(young)) and store.exists(store.key_of(outside))
    assert table_objects(store, table) == referenced | {young}
    assert rows(catalog.load_table(f"{namespace}.t")) == before


def test_noncurrent_orphans_are_deleted_only_after_noncurrent_days(catalog_env: CatalogEnv, namespace: str) -> None:
    _, table = make_table(catalog_env, namespace, appends=1)
    ident, store = Identifier((namespace,), "t"), warehouse_store(catalog_env)
    orphan = plant(store, table.metadata.location, "data/abandoned.parquet")
    tables, documents = table_store(catalog_env), MaintenanceStore(store)
    now = clock.now_ms() + 1

    marked = remove_orphans(tables, ident, now, Noncurrent(documents, 10 * DAY_MS, now))
    assert (marked.orphans, marked.marked, marked.removed.files) == (1, 1, 0)
    assert store.exists(store.key_of(orphan))
    assert documents.noncurrent(str(table.metadata.table_uuid)).marked == {orphan: now}

    later = now + 10 * DAY_MS
    deleted = remove_orphans(tables, ident, later, Noncurrent(documents, 10 * DAY_MS, later))
    assert (deleted.orphans, deleted.marked, deleted.removed.files) == (1, 0, 1)
    assert not store.exists(store.key_of(orphan))
    assert documents.noncurrent(str(table.metadata.table_uuid)).marked == {}


KEYS = [
    ("s3://bucket/wh/ns/t/data/a.parquet", "s3://bucket/wh", "ns/t/data/a.parquet"),
    ("s3a://bucket/wh/ns/t/data/a.parquet", "s3://bucket/wh", "ns/t/data/a.parquet"),
    ("file:///srv/wh/ns/t/a.avro", "file:///srv/wh", "ns/t/a.avro"),
    ("file:/srv/wh/ns/t/a.avro", "file:///srv/wh", "ns/t/a.avro"),
    ("/srv/wh/ns/t/a.avro", "file:///srv/wh", "ns/t/a.avro"),
]


@pytest.mark.parametrize("location, root, key", KEYS)
def test_referenced_locations_map_to_keys_however_a_writer_spelled_them(location: str, root: str, key: str) -> None:
    assert referenced_key(MemoryStore(root), location) == key


def test_a_location_outside_the_warehouse_stops_removal() -> None:
    with pytest.raises(UnmappableLocation):
        referenced_key(MemoryStore("s3://bucket/wh"), "s3://elsewhere/t/a.parquet")
