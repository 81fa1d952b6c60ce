"""Views against a real Iceshelf server: pyiceberg's RestCatalog where it has the operation, httpx otherwise.

pyiceberg 0.12 has no view replace or rename, so those go over the wire as the spec's JSON bodies.
Every test checks what a client would observe: the returned metadata, the metadata files on disk,
the ErrorModel of each refusal.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import NoSuchTableError, NoSuchViewError, TableAlreadyExistsError, ViewAlreadyExistsError
from pyiceberg.schema import Schema
from pyiceberg.types import IntegerType, LongType, NestedField, StringType
from pyiceberg.view.metadata import SQLViewRepresentation, ViewVersion

from bench.servers.iceshelf import IceshelfServer, running_iceshelf

SCHEMA = Schema(NestedField(1, "id", LongType(), required=False), NestedField(2, "name", StringType(), required=False))
#: Distinct, increasing client timestamps, so a log entry can be matched to the version it records.
CLOCK = itertools.count(1_700_000_000_000, 1000)
METADATA_FILE = re.compile(r"/metadata/(\d{5})-[0-9a-f-]{36}\.metadata\.json$")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IceshelfServer]:
    root = tmp_path_factory.mktemp("views")
    with running_iceshelf(str(root / "warehouse"), root) as running:
        yield running


@pytest.fixture
def http(server: IceshelfServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/v1/default", timeout=30) as client:
        yield client


@pytest.fixture
def catalog(server: IceshelfServer) -> RestCatalog:
    return RestCatalog("views", uri=server.url, **{"rest-page-size": "2"})


@pytest.fixture
def namespace(catalog: RestCatalog) -> str:
    name = f"ns_{uuid.uuid4().hex[:10]}"
    catalog.create_namespace(name)
    return name


def sql_version(sql: str, namespace: str) -> ViewVersion:
    representation = SQLViewRepresentation(type="sql", sql=sql, dialect="spark")
    return ViewVersion(schema_id=0, representations=[representation], default_namespace=[namespace])


def version_doc(sql: str, namespace: str, dialects: tuple[str, ...] = ("spark",), schema_id: int = 0) -> dict:
    return {
        "version-id": 1,
        "schema-id": schema_id,
        "timestamp-ms": next(CLOCK),
        "summary": {"engine-name": "test"},
        "representations": [{"type": "sql", "sql": sql, "dialect": d} for d in dialects],
        "default-namespace": [namespace],
    }


def create_doc(name: str, namespace: str, **overrides: object) -> dict:
    body = {
        "name": name,
        "schema": {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "type": "long", "required": False}]},
        "view-version": version_doc("select id from t", namespace),
        "properties": {},
    }
    return {**body, **overrides}


def replace_to(http: httpx.Client, namespace: str, view: str, sql: str, view_uuid: str | None = None) -> httpx.Response:
    """The replace a Java client sends: add a version, make the last added one current."""
    body: dict = {
        "updates": [
            {"action": "add-view-version", "view-version": version_doc(sql, namespace)},
            {"action": "set-current-view-version", "view-version-id": -1},
        ]
    }
    if view_uuid is not None:
        body["requirements"] = [{"type": "assert-view-uuid", "uuid": view_uuid}]
    return http.post(f"/namespaces/{namespace}/views/{view}", json=body)


def assert_error(response: httpx.Response, status: int, type_name: str, text: str = "") -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["type"]) == (status, type_name)
    assert text in error["message"]


def file_of(location: str) -> Path:
    assert location.startswith("file://")
    return Path(location.removeprefix("file://"))


def test_config_advertises_every_view_endpoint(server: IceshelfServer) -> None:
    endpoints = set(httpx.get(f"{server.url}/v1/config").json()["endpoints"])
    view = "/v1/{prefix}/namespaces/{namespace}/views"
    assert {
        f"GET {view}",
        f"POST {view}",
        f"GET {view}/{{view}}",
        f"POST {view}/{{view}}",
        f"DELETE {view}/{{view}}",
        f"HEAD {view}/{{view}}",
        "POST /v1/{prefix}/views/rename",
        "POST /v1/{prefix}/namespaces/{namespace}/register-view",
    } <= endpoints


def test_view_lifecycle_through_pyiceberg(catalog: RestCatalog, namespace: str) -> None:
    ident = f"{namespace}.recent"
    view = catalog.create_view(ident, SCHEMA, sql_version("select * from events", namespace), properties={"owner": "bi"})
    metadata = view.metadata
    assert metadata.format_version == 1
    assert metadata.properties == {"owner": "bi"}
    assert [v.version_id for v in metadata.versions] == [metadata.current_version_id] == [1]
    assert view.current_version().representations[0].root.sql == "select * from events"
    assert view.schema().schema_id == view.current_version().schema_id == 0
    assert [f.name for f in view.schema().fields] == ["id", "name"]
    assert [(e.version_id, e.timestamp_ms) for e in metadata.version_log] == [(1, view.current_version().timestamp_ms)]

    loaded = catalog.load_view(ident)
    assert loaded.metadata == metadata
    assert catalog.view_exists(ident)
    assert not catalog.table_exists(ident)
    assert catalog.list_views(namespace) == [(namespace, "recent")]
    assert catalog.list_tables(namespace) == []

    catalog.drop_view(ident)
    assert not catalog.view_exists(ident)
    assert catalog.list_views(namespace) == []
    with pytest.raises(NoSuchViewError):
        catalog.load_view(ident)
    with pytest.raises(NoSuchViewError):
        catalog.drop_view(ident)
    # The name is free again.
    again = catalog.create_view(ident, SCHEMA, sql_version("select 1", namespace))
    assert again.metadata.view_uuid != metadata.view_uuid


def test_metadata_files_are_written_per_version(http: httpx.Client, namespace: str) -> None:
    created = http.post(f"/namespaces/{namespace}/views", json=create_doc("v", namespace, location=None))
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["config"] == {}
    location = body["metadata"]["location"]
    assert f"/{namespace}/v-" in location
    first = body["metadata-location"]
    assert first.startswith(location + "/metadata/") and METADATA_FILE.search(first).group(1) == "00000"
    assert json.loads(file_of(first).read_bytes()) == body["metadata"]

    replaced = replace_to(http, namespace, "v", "select id + 1 from t", body["metadata"]["view-uuid"])
    assert replaced.status_code == 200, replaced.text
    second = replaced.json()["metadata-location"]
    assert METADATA_FILE.search(second).group(1) == "00001"
    assert json.loads(file_of(second).read_bytes()) == replaced.json()["metadata"]
    assert file_of(first).exists()  # immutable: the old version stays readable


def test_replace_adds_reuses_and_logs_versions(http: httpx.Client, catalog: RestCatalog, namespace: str) -> None:
    created = http.post(f"/namespaces/{namespace}/views", json=create_doc("v", namespace)).json()["metadata"]
    view_uuid = created["view-uuid"]

    second = replace_to(http, namespace, "v", "select id * 2 from t", view_uuid).json()["metadata"]
    assert second["current-version-id"] == 2
    assert [v["version-id"] for v in second["versions"]] == [1, 2]
    assert second["version-log"] == [
        {"version-id": 1, "timestamp-ms": created["versions"][0]["timestamp-ms"]},
        {"version-id": 2, "timestamp-ms": second["versions"][1]["timestamp-ms"]},
    ]
    assert catalog.load_view(f"{namespace}.v").current_version().representations[0].root.sql == "select id * 2 from t"

    # Re-adding the first definition reuses version 1 instead of duplicating it; the log says when it came back.
    back = replace_to(http, namespace, "v", "select id from t", view_uuid).json()["metadata"]
    assert [v["version-id"] for v in back["versions"]] == [1, 2]
    assert back["current-version-id"] == 1
    assert [e["version-id"] for e in back["version-log"]] == [1, 2, 1]
    assert back["version-log"][-1]["timestamp-ms"] > second["version-log"][-1]["timestamp-ms"]

    # A new schema and a version on it: ids are one past the highest, -1 means "the one just added".
    evolved = http.post(
        f"/namespaces/{namespace}/views/v",
        json={
            "requirements": [{"type": "assert-view-uuid", "uuid": view_uuid}],
            "updates": [
                {"action": "add-schema", "schema": {"type": "struct", "schema-id": 7, "fields": [
                    {"id": 1, "name": "id", "type": "long", "required": False},
                    {"id": 2, "name": "n", "type": "int", "required": False},
                ]}},
                {"action": "add-view-version", "view-version": version_doc("select id, 1 as n from t", namespace, schema_id=-1)},
                {"action": "set-current-view-version", "view-version-id": -1},
                {"action": "set-properties", "updates": {"comment": "two columns"}},
            ],
        },
    ).json()["metadata"]
    assert [s["schema-id"] for s in evolved["schemas"]] == [0, 1]
    assert evolved["current-version-id"] == 3
    assert evolved["versions"][-1]["schema-id"] == 1
    assert evolved["properties"] == {"comment": "two columns"}
    view = catalog.load_view(f"{namespace}.v")
    assert [f.field_type for f in view.schema().fields] == [LongType(), IntegerType()]

    # Updates that change nothing write nothing: the metadata location stays.
    before = http.get(f"/namespaces/{namespace}/views/v").json()["metadata-location"]
    same = {"updates": [{"action": "set-current-view-version", "view-version-id": 3}]}
    noop = http.post(f"/namespaces/{namespace}/views/v", json=same)
    assert noop.json()["metadata-location"] == before


def test_version_history_is_bounded(http: httpx.Client, namespace: str) -> None:
    doc = create_doc("v", namespace, properties={"version.history.num-entries": "2"})
    view_uuid = http.post(f"/namespaces/{namespace}/views", json=doc).json()["metadata"]["view-uuid"]
    for i in range(4):
        metadata = replace_to(http, namespace, "v", f"select {i}", view_uuid).json()["metadata"]
    assert [v["version-id"] for v in metadata["versions"]] == [4, 5]
    assert metadata["current-version-id"] == 5
    assert [e["version-id"] for e in metadata["version-log"]] == [4, 5]


def test_assert_view_uuid_conflict_is_409_and_changes_nothing(http: httpx.Client, namespace: str) -> None:
    before = http.post(f"/namespaces/{namespace}/views", json=create_doc("v", namespace)).json()
    response = replace_to(http, namespace, "v", "select 2", str(uuid.uuid4()))
    assert_error(response, 409, "CommitFailedException", "view UUID does not match")
    after = http.get(f"/namespaces/{namespace}/views/v").json()
    assert after["metadata-location"] == before["metadata-location"]
    assert after["metadata"] == before["metadata"]
    metadata_dir = file_of(before["metadata-location"]).parent
    assert [p.name for p in metadata_dir.iterdir()] == [file_of(before["metadata-location"]).name]


def test_concurrent_replaces_all_land(http: httpx.Client, server: IceshelfServer, namespace: str) -> None:
    """Each replace wins its pointer swing eventually: lost races re-read, re-validate and reapply."""
    writers = 8
    doc = create_doc("v", namespace, properties={"version.history.num-entries": "100"})
    view_uuid = http.post(f"/namespaces/{namespace}/views", json=doc).json()["metadata"]["view-uuid"]

    def replace(i: int) -> int:
        with httpx.Client(base_url=f"{server.url}/v1/default", timeout=60) as client:
            return replace_to(client, namespace, "v", f"select {i}", view_uuid).status_code

    with ThreadPoolExecutor(writers) as pool:
        assert list(pool.map(replace, range(writers))) == [200] * writers
    body = http.get(f"/namespaces/{namespace}/views/v").json()
    metadata = body["metadata"]
    sqls = sorted(v["representations"][0]["sql"] for v in metadata["versions"])
    assert sqls == sorted(["select id from t", *(f"select {i}" for i in range(writers))])
    assert [v["version-id"] for v in metadata["versions"]] == list(range(1, writers + 2))
    assert len(metadata["version-log"]) == writers + 1
    assert METADATA_FILE.search(body["metadata-location"]).group(1) == f"{writers:05d}"
    # Files written by attempts that lost their swing were deleted: one file per landed version.
    assert len(list(file_of(body["metadata-location"]).parent.iterdir())) == writers + 1


def test_replace_may_not_drop_a_dialect_unless_allowed(http: httpx.Client, namespace: str) -> None:
    doc = create_doc("v", namespace)
    doc["view-version"] = version_doc("select 1", namespace, dialects=("spark", "trino"))
    http.post(f"/namespaces/{namespace}/views", json=doc).raise_for_status()
    assert_error(replace_to(http, namespace, "v", "select 2"), 400, "BadRequestException", "loss of view dialects")

    allow = {"action": "set-properties", "updates": {"replace.drop-dialect.allowed": "true"}}
    response = http.post(f"/namespaces/{namespace}/views/v", json={"updates": [allow]})
    assert response.status_code == 200, response.text
    replaced = replace_to(http, namespace, "v", "select 2").json()["metadata"]
    assert [r["dialect"] for r in replaced["versions"][-1]["representations"]] == ["spark"]


def test_views_and_tables_share_names(http: httpx.Client, catalog: RestCatalog, namespace: str) -> None:
    catalog.create_table(f"{namespace}.t", SCHEMA)
    catalog.create_view(f"{namespace}.v", SCHEMA, sql_version("select 1", namespace))

    onto_table = http.post(f"/namespaces/{namespace}/views", json=create_doc("t", namespace))
    assert_error(onto_table, 409, "AlreadyExistsException", f"Table with same name already exists: {namespace}.t")
    onto_view = http.post(f"/namespaces/{namespace}/tables", json={"name": "v", "schema": json.loads(SCHEMA.model_dump_json())})
    assert_error(onto_view, 409, "AlreadyExistsException", f"View with same name already exists: {namespace}.v")
    with pytest.raises(ViewAlreadyExistsError):
        catalog.create_view(f"{namespace}.t", SCHEMA, sql_version("select 1", namespace))
    with pytest.raises(TableAlreadyExistsError, match="AlreadyExistsException"):
        catalog.create_table(f"{namespace}.v", SCHEMA)

    with pytest.raises(NoSuchViewError):
        catalog.load_view(f"{namespace}.t")
    with pytest.raises(NoSuchTableError):
        catalog.load_table(f"{namespace}.v")
    assert not catalog.view_exists(f"{namespace}.t")
    assert_error(http.delete(f"/namespaces/{namespace}/views/t"), 404, "NoSuchViewException")
    assert catalog.table_exists(f"{namespace}.t")

    assert catalog.list_views(namespace) == [(namespace, "v")]
    assert catalog.list_tables(namespace) == [(namespace, "t")]


def test_rename(http: httpx.Client, catalog: RestCatalog, namespace: str) -> None:
    view = catalog.create_view(f"{namespace}.v", SCHEMA, sql_version("select 1", namespace))
    catalog.create_table(f"{namespace}.t", SCHEMA)
    other = f"ns_{uuid.uuid4().hex[:10]}"
    catalog.create_namespace(other)

    def rename(source: tuple[str, str], target: tuple[str, str]) -> httpx.Response:
        return http.post(
            "/views/rename",
            json={
                "source": {"namespace": [source[0]], "name": source[1]},
                "destination": {"namespace": [target[0]], "name": target[1]},
            },
        )

    assert rename((namespace, "v"), (other, "w")).status_code == 204
    assert not catalog.view_exists(f"{namespace}.v")
    assert catalog.load_view(f"{other}.w").metadata == view.metadata
    assert catalog.list_views(other) == [(other, "w")]

    assert_error(
        rename((other, "w"), (namespace, "t")), 409, "AlreadyExistsException", f"Cannot rename {other}.w to {namespace}.t. Table already exists"
    )
    assert_error(rename((namespace, "t"), (namespace, "t2")), 404, "NoSuchViewException")
    assert_error(rename((namespace, "gone"), (namespace, "x")), 404, "NoSuchViewException")
    assert_error(rename((other, "w"), ("no_such_ns", "x")), 404, "NoSuchNamespaceException")
    assert catalog.load_view(f"{other}.w").metadata == view.metadata
    assert catalog.table_exists(f"{namespace}.t")

    # A renamed view still takes replaces under its new name.
    replaced = replace_to(http, other, "w", "select 2", view.metadata.view_uuid)
    assert replaced.status_code == 200 and replaced.json()["metadata"]["current-version-id"] == 2


def test_register_view(http: httpx.Client, catalog: RestCatalog, namespace: str) -> None:
    original = http.post(f"/namespaces/{namespace}/views", json=create_doc("v", namespace)).json()
    location = original["metadata-location"]
    catalog.drop_view(f"{namespace}.v")

    registered = http.post(f"/namespaces/{namespace}/register-view", json={"name": "back", "metadata-location": location})
    assert registered.status_code == 200, registered.text
    assert registered.json()["metadata-location"] == location
    assert registered.json()["metadata"] == original["metadata"]
    assert catalog.load_view(f"{namespace}.back").metadata.view_uuid == original["metadata"]["view-uuid"]

    again = http.post(f"/namespaces/{namespace}/register-view", json={"name": "back", "metadata-location": location})
    assert_error(again, 409, "AlreadyExistsException", "View already exists")
    catalog.create_table(f"{namespace}.t", SCHEMA)
    onto_table = http.post(f"/namespaces/{namespace}/register-view", json={"name": "t", "metadata-location": location})
    assert_error(onto_table, 409, "AlreadyExistsException", f"Table with same name already exists: {namespace}.t")
    missing = http.post(
        f"/namespaces/{namespace}/register-view", json={"name": "x", "metadata-location": location.replace("00000-", "00009-")}
    )
    assert_error(missing, 400, "BadRequestException", "does not exist")
    table_metadata = catalog.load_table(f"{namespace}.t").metadata_location
    not_a_view = http.post(f"/namespaces/{namespace}/register-view", json={"name": "x", "metadata-location": table_metadata})
    assert_error(not_a_view, 400, "BadRequestException", "Not a view metadata file")
    assert catalog.list_views(namespace) == [(namespace, "back")]


def test_missing_views_and_namespaces_are_404(http: httpx.Client, namespace: str) -> None:
    path = f"/namespaces/{namespace}/views/nope"
    assert_error(http.get(path), 404, "NoSuchViewException", "View does not exist")
    assert_error(replace_to(http, namespace, "nope", "select 1"), 404, "NoSuchViewException")
    assert_error(http.delete(path), 404, "NoSuchViewException")
    assert http.head(path).status_code == 404
    assert_error(http.get("/namespaces/no_such_ns/views"), 404, "NoSuchNamespaceException")
    # A load in a missing namespace is the spec's NoSuchViewException, as in Java.
    assert_error(http.get("/namespaces/no_such_ns/views/v"), 404, "NoSuchViewException", "View does not exist: no_such_ns.v")
    assert_error(http.post("/namespaces/no_such_ns/views", json=create_doc("v", "no_such_ns")), 404, "NoSuchNamespaceException")


@pytest.mark.parametrize(
    ("body", "error_type", "message"),
    [
        pytest.param({"name": "v", "view-version": version_doc("select 1", "ns")}, "BadRequestException", "schema: Field required", id="no-schema"),
        pytest.param({"name": "v", "schema": {"type": "struct", "fields": []}}, "BadRequestException", "view-version: Field required", id="no-version"),
        pytest.param(
            {**create_doc("v", "ns"), "view-version": version_doc("select 1", "ns", dialects=("spark", "Spark"))},
            "IllegalArgumentException",  # as Java's reference catalog answers it
            "Invalid view version: Cannot add multiple queries for dialect spark",
            id="duplicate-dialect",
        ),
        pytest.param({**create_doc("v", "ns"), "location": "file:///elsewhere"}, "BadRequestException", "must lie inside the warehouse", id="outside"),
        pytest.param(create_doc("bad/name", "ns"), "BadRequestException", "Invalid view name", id="bad-name"),
    ],
)
def test_invalid_create_is_400(http: httpx.Client, namespace: str, body: dict, error_type: str, message: str) -> None:
    assert_error(http.post(f"/namespaces/{namespace}/views", json=body), 400, error_type, message)
    assert http.get(f"/namespaces/{namespace}/views").json()["identifiers"] == []


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        pytest.param(None, "updates: Field required", id="missing-updates"),
        pytest.param([{"action": "add-spec", "spec": {"spec-id": 1, "fields": []}}], "does not match", id="table-update"),
        pytest.param([{"view-version-id": 1}], "Unable to extract tag", id="no-action"),
        pytest.param(
            [{"action": "set-current-view-version", "view-version-id": 42}], "unknown version: 42", id="unknown-version"
        ),
        pytest.param(
            [{"action": "set-current-view-version", "view-version-id": -1}], "no view version has been added", id="no-last-added"
        ),
        pytest.param(
            [{"action": "add-view-version", "view-version": version_doc("select 2", "ns", schema_id=9)}],
            "unknown schema: 9",
            id="unknown-schema",
        ),
        pytest.param([{"action": "assign-uuid", "uuid": str(uuid.uuid4())}], "Cannot reassign view uuid", id="reassign-uuid"),
        pytest.param([{"action": "upgrade-format-version", "format-version": 2}], "Unsupported view format", id="format-2"),
        pytest.param(
            [{"action": "set-properties", "updates": {"version.history.num-entries": "0"}}], "must be positive", id="zero-history"
        ),
    ],
)
def test_invalid_replace_is_400(http: httpx.Client, namespace: str, updates: list | None, message: str) -> None:
    before = http.post(f"/namespaces/{namespace}/views", json=create_doc("v", namespace)).json()
    body = {} if updates is None else {"updates": updates}
    assert_error(http.post(f"/namespaces/{namespace}/views/v", json=body), 400, "BadRequestException", message)
    assert http.get(f"/namespaces/{namespace}/views/v").json()["metadata-location"] == before["metadata-location"]


def test_listing_pages(http: httpx.Client, catalog: RestCatalog, namespace: str) -> None:
    names = [f"v{i}" for i in range(5)]
    for name in reversed(names):
        catalog.create_view(f"{namespace}.{name}", SCHEMA, sql_version(f"select '{name}'", namespace))
    catalog.create_table(f"{namespace}.a_table", SCHEMA)

    pages, token = [], None
    while True:
        params = {"pageSize": 2, **({"pageToken": token} if token else {})}
        body = http.get(f"/namespaces/{namespace}/views", params=params).json()
        pages.append([i["name"] for i in body["identifiers"]])
        assert all(i["namespace"] == [namespace] for i in body["identifiers"])
        token = body.get("next-page-token")
        if token is None:
            break
    assert pages == [["v0", "v1"], ["v2", "v3"], ["v4"]]
    assert http.get(f"/namespaces/{namespace}/views").json() == {
        "identifiers": [{"namespace": [namespace], "name": n} for n in names]
    }
    # pyiceberg follows the tokens itself (rest-page-size is 2 on this client).
    assert catalog.list_views(namespace) == [(namespace, n) for n in names]
    assert_error(http.get(f"/namespaces/{namespace}/views", params={"pageSize": 0}), 400, "BadRequestException")


def test_a_view_location_never_nests_with_a_table_location(http: httpx.Client, catalog: RestCatalog, namespace: str) -> None:
    table_location = catalog.create_table((namespace, "t"), SCHEMA).metadata.location
    inside = http.post(f"/namespaces/{namespace}/views", json=create_doc("v", namespace, location=f"{table_location}/views/v"))
    assert_error(inside, 400, "BadRequestException", "overlaps")
    assert http.head(f"/namespaces/{namespace}/views/v").status_code == 404
