"""Table metadata as Java's ``TableMetadata.Builder`` makes it: create keeps column defaults and sets the
reference's new-table properties, sort-order ids are proposals, removing absent statistics is a no-op.

Over real HTTP (raw httpx for the exact JSON, pyiceberg and DuckDB as the clients that care).
"""

from __future__ import annotations

import pyarrow as pa
from tests.clients import CatalogEnv, unique_name
from tests.test_bad_input import assert_error, commit, create_namespace, http, load, metadata_location, ns  # noqa: F401

V3 = {"format-version": "3"}


def _field(field_id: int, name: str, field_type, **extra) -> dict:
    return {"id": field_id, "name": name, "type": field_type, "required": False, **extra}


def _create(http, ns, name: str, fields: list[dict], **extra):
    schema = {"type": "struct", "schema-id": 0, "fields": fields}
    return http.post(f"/namespaces/{ns[0]}/tables", json={"name": name, "schema": schema, **extra})


def _fields(metadata: dict) -> list[dict]:
    return next(s for s in metadata["schemas"] if s["schema-id"] == metadata["current-schema-id"])["fields"]


# -- column defaults ------------------------------------------------------------------------------


def test_create_keeps_column_defaults_including_nested_ones(http, ns, local_env: CatalogEnv) -> None:
    nested = {"type": "struct", "fields": [_field(11, "x", "long", **{"initial-default": 5, "write-default": 6})]}
    fields = [
        _field(7, "a", "int"),
        _field(8, "b", "int", **{"initial-default": 7, "write-default": 8}),
        _field(9, "s", "string", **{"write-default": "none"}),
        _field(10, "inner", nested),
    ]
    created = _create(http, ns, "defaults", fields, properties=V3)
    assert created.status_code == 200, created.text
    for metadata in (created.json()["metadata"], load(http, ns, "defaults").json()["metadata"]):
        loaded = _fields(metadata)
        assert [f["id"] for f in loaded] == [1, 2, 3, 4]  # fresh ids, as the spec requires ...
        assert (loaded[1]["initial-default"], loaded[1]["write-default"]) == (7, 8)  # ... and the defaults kept
        assert "initial-default" not in loaded[2] and loaded[2]["write-default"] == "none"
        assert "initial-default" not in loaded[0]
        inner = loaded[3]["type"]["fields"][0]
        assert (inner["id"], inner["initial-default"], inner["write-default"]) == (5, 5, 6)
    field = local_env.catalog().load_table(f"{ns[0]}.defaults").schema().find_field("b")
    assert (field.initial_default, field.write_default) == (7, 8)


def test_defaults_before_v3_are_refused(http, ns) -> None:
    response = _create(http, ns, "old", [_field(1, "b", "int", **{"write-default": 7})], properties={"format-version": "2"})
    assert "not supported until v3" in assert_error(response, 400, "IllegalArgumentException")["message"]
    assert load(http, ns, "old").status_code == 404


def test_duckdb_default_column_writes_its_default(catalog_env: CatalogEnv) -> None:
    duck = catalog_env.duckdb()
    try:
        schema = unique_name("duck")
        duck.execute(f"CREATE SCHEMA lake.{schema}")
        duck.execute(f"CREATE TABLE lake.{schema}.t (a INT, b INT DEFAULT 7) WITH ('format-version' = '3')")
        duck.execute(f"INSERT INTO lake.{schema}.t (a) VALUES (1)")
        duck.execute(f"INSERT INTO lake.{schema}.t DEFAULT VALUES")
        assert sorted(duck.execute(f"SELECT a, b FROM lake.{schema}.t").fetchall(), key=str) == [(1, 7), (None, 7)]
    finally:
        duck.close()
    field = catalog_env.catalog().load_table(f"{schema}.t").schema().find_field("b")
    assert field.write_default == 7


# -- reference defaults at create -----------------------------------------------------------------


def test_new_table_gets_zstd_unless_the_client_chose(http, ns, local_env: CatalogEnv) -> None:
    plain = _create(http, ns, "plain", [_field(1, "a", "int")])
    assert plain.json()["metadata"]["properties"]["write.parquet.compression-codec"] == "zstd"
    chosen = _create(http, ns, "chosen", [_field(1, "a", "int")], properties={"write.parquet.compression-codec": "snappy"})
    assert chosen.json()["metadata"]["properties"]["write.parquet.compression-codec"] == "snappy"
    table = local_env.catalog().create_table(f"{ns[0]}.client", schema=pa.schema([pa.field("a", pa.int64())]))
    assert table.properties["write.parquet.compression-codec"] == "zstd"


# -- sort-order ids are proposals -----------------------------------------------------------------


def _order(order_id: int, source_id: int, direction: str = "asc") -> dict:
    field = {"transform": "identity", "source-id": source_id, "direction": direction, "null-order": "nulls-first"}
    return {"order-id": order_id, "fields": [field]}


def _orders(metadata: dict) -> dict[int, list[int]]:
    return {o["order-id"]: [f["source-id"] for f in o["fields"]] for o in metadata["sort-orders"]}


def _sort_commit(http, ns, name: str, order: dict, default: int = -1):
    updates = [{"action": "add-sort-order", "sort-order": order}, {"action": "set-default-sort-order", "sort-order-id": default}]
    return commit(http, ns, name, {"requirements": [], "updates": updates})


def test_add_sort_order_id_is_a_proposal(http, ns) -> None:
    created = _create(http, ns, "sorted", [_field(1, "a", "int"), _field(2, "b", "int")], **{"write-order": _order(1, 1)})
    assert created.status_code == 200, created.text

    # Id 1 is taken by a different order (a concurrent replace added it): the new one gets max+1.
    response = _sort_commit(http, ns, "sorted", _order(1, 2))
    assert response.status_code == 200, response.text
    metadata = response.json()["metadata"]
    assert _orders(metadata) == {1: [1], 2: [2]}
    assert metadata["default-sort-order-id"] == 2

    # An order equal to an existing one is reused, whatever id the client proposes.
    before = metadata_location(http, ns, "sorted")
    response = _sort_commit(http, ns, "sorted", _order(9, 1), default=1)
    assert response.status_code == 200, response.text
    metadata = response.json()["metadata"]
    assert _orders(metadata) == {1: [1], 2: [2]}
    assert metadata["default-sort-order-id"] == 1
    assert metadata_location(http, ns, "sorted") != before

    # As Java: -1 names an order this change added; a reused existing one is not "added".
    before = metadata_location(http, ns, "sorted")
    response = _sort_commit(http, ns, "sorted", _order(1, 2))
    assert response.status_code == 400 and "no sort order has been added" in response.json()["error"]["message"]
    assert metadata_location(http, ns, "sorted") == before


# -- removing absent statistics is a no-op --------------------------------------------------------


def _statistics(snapshot_id: int, location: str) -> dict:
    return {
        "snapshot-id": snapshot_id,
        "statistics-path": f"{location}/metadata/{snapshot_id}.stats",
        "file-size-in-bytes": 100,
        "file-footer-size-in-bytes": 10,
        "blob-metadata": [],
    }


def test_remove_snapshots_then_their_statistics_as_trino_expires(http, ns, local_env: CatalogEnv) -> None:
    table = local_env.catalog().create_table(f"{ns[0]}.stats", schema=pa.schema([pa.field("a", pa.int64())]))
    for value in (1, 2):
        table.append(pa.table({"a": [value]}))
    old, current = [s.snapshot_id for s in table.refresh().metadata.snapshots]
    location = table.metadata.location
    partition_statistics = {"snapshot-id": old, "statistics-path": f"{location}/metadata/p{old}.parquet", "file-size-in-bytes": 42}
    updates = [
        {"action": "set-statistics", "statistics": _statistics(old, location)},
        {"action": "set-partition-statistics", "partition-statistics": partition_statistics},
    ]
    assert commit(http, ns, "stats", {"requirements": [], "updates": updates}).status_code == 200

    # Trino's expire_snapshots: the snapshot goes first, taking its statistics with it; then the statistics.
    expire = [
        {"action": "remove-snapshots", "snapshot-ids": [old]},
        {"action": "remove-statistics", "snapshot-id": old},
        {"action": "remove-partition-statistics", "snapshot-id": old},
    ]
    response = commit(http, ns, "stats", {"requirements": [], "updates": expire})
    assert response.status_code == 200, response.text
    metadata = response.json()["metadata"]
    assert [s["snapshot-id"] for s in metadata["snapshots"]] == [current]
    assert metadata.get("statistics", []) == [] and metadata.get("partition-statistics", []) == []

    # Removing statistics nobody set changes nothing: no new metadata version.
    before = metadata_location(http, ns, "stats")
    response = commit(http, ns, "stats", {"requirements": [], "updates": [{"action": "remove-statistics", "snapshot-id": current}]})
    assert response.status_code == 200, response.text
    assert metadata_location(http, ns, "stats") == before
