"""What a commit is told, over real HTTP: requirements are assertions, worded as Java words them, and a
table's history stays in time order.

By default (the spec's) a stale requirement is a 409 ``CommitFailedException`` with the message of Java's
``UpdateRequirement``: pyiceberg sees it, DuckDB's second concurrent transaction sees it, and nothing of
the refused commit is applied. The server-side rebase of pure appends is an opt-in, per table
(``iceshelf.commit.rebase-appends``) or per server (``ICESHELF_REBASE_APPENDS``); a rebased snapshot is
stamped after its new parent, so DuckDB -- which reads the newest snapshot -- sees every acknowledged
append. A client commit that would break the history's order beyond Java's one-minute tolerance is 400.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
import pytest
from pyiceberg.exceptions import CommitFailedException

from bench.servers.iceshelf import running_iceshelf
from tests.clients import CatalogEnv, unique_name

SCHEMA = pa.schema([pa.field("id", pa.int64())])
NO_RETRIES = {"commit.retry.num-retries": "0"}  # pyiceberg would otherwise reload and retry the 409
REBASE = {"iceshelf.commit.rebase-appends": "true"}


def ids(*values: int) -> pa.Table:
    return pa.table({"id": pa.array(values, pa.int64())})


def rows(table) -> list[int]:
    return sorted(table.scan().to_arrow()["id"].to_pylist())


def rest(env: CatalogEnv) -> httpx.Client:
    return httpx.Client(base_url=f"{env.url}/v1/default", timeout=60)


def error_of(response: httpx.Response, status: int, type_name: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["type"]) == (status, type_name), error
    return error["message"]


def bad_request(response: httpx.Response) -> str:
    """The message of a 400 ErrorModel (its type name is the error map's business)."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == 400, error
    return error["message"]


def now_ms() -> int:
    return int(time.time() * 1000)


# -- the spec's default: a stale requirement is a 409 ---------------------------------------------


def test_a_stale_pyiceberg_append_is_409_and_not_applied(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog = catalog_env.catalog()
    stale = catalog.create_table(f"{namespace}.t", SCHEMA, properties=NO_RETRIES)
    stale.append(ids(1))
    seen = stale.current_snapshot().snapshot_id
    other = catalog_env.catalog().load_table(f"{namespace}.t")
    other.append(ids(2))
    head = other.current_snapshot().snapshot_id

    expected = f"Requirement failed: branch main has changed: expected id {seen} != {head}"
    with pytest.raises(CommitFailedException, match=re.escape(expected)):
        stale.append(ids(3))

    table = catalog.load_table(f"{namespace}.t")
    assert rows(table) == [1, 2] and len(table.metadata.snapshots) == 2
    # The same stale requirement by plain REST: 409 CommitFailedException, in Java's words.
    body = {
        "requirements": [{"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": seen}],
        "updates": [{"action": "set-properties", "updates": {"applied": "yes"}}],
    }
    with rest(catalog_env) as http:
        assert error_of(http.post(f"/namespaces/{namespace}/tables/t", json=body), 409, "CommitFailedException") == expected
    assert "applied" not in catalog.load_table(f"{namespace}.t").properties


def test_pyiceberg_retries_the_409_and_both_appends_land(catalog_env: CatalogEnv, namespace: str) -> None:
    """With its default retries, pyiceberg reloads and redoes the append: the spec's way to no conflict."""
    catalog = catalog_env.catalog()
    stale = catalog.create_table(f"{namespace}.t", SCHEMA)
    stale.append(ids(1))
    catalog_env.catalog().load_table(f"{namespace}.t").append(ids(2))
    stale.append(ids(3))
    assert rows(catalog.load_table(f"{namespace}.t")) == [1, 2, 3]


def test_two_duckdb_transactions_appending_to_one_table_the_second_fails(catalog_env: CatalogEnv) -> None:
    first, second = catalog_env.duckdb(), catalog_env.duckdb()
    try:
        schema = unique_name("duck")
        name = f"lake.{schema}.t"
        first.execute(f"CREATE SCHEMA lake.{schema}")
        first.execute(f"CREATE TABLE {name} (id BIGINT)")
        first.execute(f"INSERT INTO {name} VALUES (1)")
        first.execute("BEGIN")
        first.execute(f"INSERT INTO {name} VALUES (2)")
        second.execute("BEGIN")
        second.execute(f"INSERT INTO {name} VALUES (3)")
        first.execute("COMMIT")
        with pytest.raises(duckdb.Error, match="CommitFailedException"):
            second.execute("COMMIT")
    finally:
        first.close()
        second.close()
    assert rows(catalog_env.catalog().load_table(f"{schema}.t")) == [1, 2]
    with catalog_env.duckdb() as fresh:
        assert fresh.execute(f"SELECT id FROM {name} ORDER BY id").fetchall() == [(1,), (2,)]


# -- Java's words for every requirement -----------------------------------------------------------


def test_requirement_failures_use_javas_messages(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog = catalog_env.catalog()
    table = catalog.create_table(f"{namespace}.t", SCHEMA)
    table.append(ids(1))
    head = table.refresh().current_snapshot().snapshot_id
    other_uuid = str(uuid.uuid4())
    failed = "Requirement failed:"
    cases = [
        ({"type": "assert-create"}, f"{failed} table already exists"),
        ({"type": "assert-table-uuid", "uuid": other_uuid}, f"{failed} UUID does not match: expected {table.metadata.table_uuid} != {other_uuid}"),
        ({"type": "assert-current-schema-id", "current-schema-id": 7}, f"{failed} current schema changed: expected id 7 != 0"),
        ({"type": "assert-last-assigned-field-id", "last-assigned-field-id": 9}, f"{failed} last assigned field id changed: expected id 9 != 1"),
        (
            {"type": "assert-last-assigned-partition-id", "last-assigned-partition-id": 5},
            f"{failed} last assigned partition id changed: expected id 5 != {table.metadata.last_partition_id}",
        ),
        ({"type": "assert-default-spec-id", "default-spec-id": 3}, f"{failed} default partition spec changed: expected id 3 != 0"),
        ({"type": "assert-default-sort-order-id", "default-sort-order-id": 4}, f"{failed} default sort order changed: expected id 4 != 0"),
        ({"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": 12345}, f"{failed} branch main has changed: expected id 12345 != {head}"),
        ({"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": None}, f"{failed} branch main was created concurrently"),
        ({"type": "assert-ref-snapshot-id", "ref": "v1", "snapshot-id": 12345}, f"{failed} tag v1 has changed: expected id 12345 != {head}"),
        ({"type": "assert-ref-snapshot-id", "ref": "nope", "snapshot-id": 5}, f"{failed} branch or tag nope is missing, expected 5"),
    ]
    tag = {"action": "set-snapshot-ref", "ref-name": "v1", "type": "tag", "snapshot-id": head}
    with rest(catalog_env) as http:
        assert http.post(f"/namespaces/{namespace}/tables/t", json={"updates": [tag]}).status_code == 200
        before = http.get(f"/namespaces/{namespace}/tables/t").json()["metadata-location"]
        for requirement, message in cases:
            body = {"requirements": [requirement], "updates": [{"action": "set-properties", "updates": {"applied": "yes"}}]}
            response = http.post(f"/namespaces/{namespace}/tables/t", json=body)
            assert error_of(response, 409, "CommitFailedException") == message, requirement
        assert http.get(f"/namespaces/{namespace}/tables/t").json()["metadata-location"] == before


def _create_updates(staged: dict) -> list[dict]:
    """The updates a client commits with ``assert-create`` after a stage-create (what pyiceberg sends)."""
    return [
        {"action": "assign-uuid", "uuid": staged["table-uuid"]},
        {"action": "upgrade-format-version", "format-version": staged["format-version"]},
        {"action": "add-schema", "schema": staged["schemas"][0]},
        {"action": "set-current-schema", "schema-id": -1},
        {"action": "add-spec", "spec": staged["partition-specs"][0]},
        {"action": "set-default-spec", "spec-id": -1},
        {"action": "add-sort-order", "sort-order": staged["sort-orders"][0]},
        {"action": "set-default-sort-order", "sort-order-id": -1},
        {"action": "set-location", "location": staged["location"]},
    ]


def test_a_staged_create_over_a_view_is_409_already_exists(catalog_env: CatalogEnv, namespace: str) -> None:
    schema = {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "type": "long", "required": False}]}
    view = {
        "name": "v",
        "schema": schema,
        "view-version": {
            "version-id": 1,
            "schema-id": 0,
            "timestamp-ms": now_ms(),
            "summary": {"engine-name": "test"},
            "representations": [{"type": "sql", "sql": "select 1 as id", "dialect": "spark"}],
            "default-namespace": [namespace],
        },
        "properties": {},
    }
    with rest(catalog_env) as http:
        staged = {}
        for name in ("v", "free"):  # staged while the name is free
            response = http.post(f"/namespaces/{namespace}/tables", json={"name": name, "schema": schema, "stage-create": True})
            assert response.status_code == 200, response.text
            staged[name] = response.json()["metadata"]
        assert http.post(f"/namespaces/{namespace}/views", json=view).status_code == 200  # then a view takes it
        for name in ("v", "free"):
            body = {"requirements": [{"type": "assert-create"}], "updates": _create_updates(staged[name])}
            response = http.post(f"/namespaces/{namespace}/tables/{name}", json=body)
            if name == "free":
                assert response.status_code == 200, response.text  # the same commit creates a table
            else:
                message = error_of(response, 409, "AlreadyExistsException")
                assert message == f"View with same name already exists: {namespace}.v"
        assert http.get(f"/namespaces/{namespace}/views/v").status_code == 200
        assert http.get(f"/namespaces/{namespace}/tables/v").status_code == 404


# -- the opt-in rebase, and the history's time order ----------------------------------------------


def test_a_rebased_append_is_stamped_after_its_parent_and_duckdb_reads_every_row(catalog_env: CatalogEnv, namespace: str) -> None:
    """Client 1 builds an append, client 2 commits one, client 1 commits: the table opted in, so the
    server rebases client 1's; DuckDB (ATTACH and ``iceberg_scan``), which reads the newest snapshot,
    must see all three rows, as pyiceberg does."""
    catalog = catalog_env.catalog()
    catalog.create_table(f"{namespace}.t", SCHEMA, properties={**REBASE, **NO_RETRIES}).append(ids(0))
    building = catalog.load_table(f"{namespace}.t").transaction()
    building.append(ids(1))
    built_at = building.table_metadata.snapshots[-1].timestamp_ms
    time.sleep(0.01)
    second = catalog_env.catalog().load_table(f"{namespace}.t")
    second.append(ids(2))
    assert second.current_snapshot().timestamp_ms > built_at  # client 1's snapshot is the older one
    building.commit_transaction()  # stale, and rebased: no 409

    table = catalog.load_table(f"{namespace}.t")
    assert rows(table) == [0, 1, 2]
    head = table.current_snapshot()
    parent = table.metadata.snapshot_by_id(head.parent_snapshot_id)
    assert parent.snapshot_id == second.current_snapshot().snapshot_id and head.timestamp_ms > parent.timestamp_ms
    assert [e.timestamp_ms for e in table.metadata.snapshot_log] == sorted(e.timestamp_ms for e in table.metadata.snapshot_log)
    assert table.metadata.last_updated_ms >= head.timestamp_ms
    with catalog_env.duckdb() as duck:
        assert duck.execute(f"SELECT id FROM lake.{namespace}.t ORDER BY id").fetchall() == [(0,), (1,), (2,)]
        scanned = duck.execute(f"SELECT id FROM iceberg_scan('{table.metadata_location}') ORDER BY id").fetchall()
        assert scanned == [(0,), (1,), (2,)]


def test_the_server_setting_rebases_for_tables_that_do_not_say_false(local_env: CatalogEnv, tmp_path: Path) -> None:
    warehouse = str(tmp_path / "warehouse")
    with running_iceshelf(warehouse, tmp_path, {"ICESHELF_REBASE_APPENDS": "true"}) as server:
        env = CatalogEnv("local", server, warehouse)
        catalog = env.catalog()
        namespace = unique_name()
        catalog.create_namespace(namespace)
        for name, properties, lands in (("by_default", {}, True), ("opted_out", {"iceshelf.commit.rebase-appends": "false"}, False)):
            stale = catalog.create_table(f"{namespace}.{name}", SCHEMA, properties={**NO_RETRIES, **properties})
            stale.append(ids(1))
            env.catalog().load_table(f"{namespace}.{name}").append(ids(2))
            if lands:
                stale.append(ids(3))
            else:
                with pytest.raises(CommitFailedException, match="Requirement failed: branch main has changed"):
                    stale.append(ids(3))
            assert rows(catalog.load_table(f"{namespace}.{name}")) == ([1, 2, 3] if lands else [1, 2]), name


def _append_at(http: httpx.Client, path: str, timestamp_ms: int) -> httpx.Response:
    """A REST append on the current head stamped ``timestamp_ms`` (reusing the head's manifest list)."""
    metadata = http.get(path).json()["metadata"]
    head = next(s for s in metadata["snapshots"] if s["snapshot-id"] == metadata["current-snapshot-id"])
    snapshot_id = random.getrandbits(62)
    snapshot = {
        "snapshot-id": snapshot_id,
        "parent-snapshot-id": head["snapshot-id"],
        "sequence-number": metadata["last-sequence-number"] + 1,
        "timestamp-ms": timestamp_ms,
        "manifest-list": head["manifest-list"],
        "summary": {"operation": "append"},
        "schema-id": 0,
    }
    body = {
        "requirements": [{"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": head["snapshot-id"]}],
        "updates": [
            {"action": "add-snapshot", "snapshot": snapshot},
            {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": snapshot_id},
        ],
    }
    return http.post(path, json=body)


def test_a_commit_out_of_time_order_beyond_a_minute_is_400(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog = catalog_env.catalog()
    catalog.create_table(f"{namespace}.t", SCHEMA).append(ids(1))
    path = f"/namespaces/{namespace}/tables/t"
    with rest(catalog_env) as http:
        before = http.get(path).json()
        last = before["metadata"]["snapshot-log"][-1]["timestamp-ms"]

        too_old = bad_request(_append_at(http, path, last - 120_000))
        assert too_old == "[BUG] Expected sorted snapshot log entries."
        future = now_ms() + 120_000
        too_new = bad_request(_append_at(http, path, future))
        assert re.fullmatch(rf"Invalid update timestamp \d+: before last snapshot log entry at {future}", too_new), too_new
        assert http.get(path).json()["metadata-location"] == before["metadata-location"]  # nothing written

        within = _append_at(http, path, last - 30_000)  # a client clock half a minute slow: tolerated, as in Java
        assert within.status_code == 200, within.text
        assert within.json()["metadata"]["last-updated-ms"] >= before["metadata"]["last-updated-ms"]

