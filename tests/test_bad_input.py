"""The REST surface under bad and edge-case input, spoken raw with httpx.

Every error must come back as the Iceberg ``ErrorModel`` with the right status and type, and a
rejected request must change nothing (same metadata location before and after). Most tests run
against the local warehouse; the ones where storage matters run on SeaweedFS too.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from unittest.mock import ANY
from urllib.parse import quote, unquote, urlparse

import httpx
import pyarrow as pa
import pytest

from iceshelf.tables.metadata.builder import NEW_TABLE_PROPERTIES
from tests.clients import CatalogEnv, unique_name

SEP = "\x1f"
SCHEMA = {
    "type": "struct",
    "schema-id": 0,
    "fields": [
        {"id": 1, "name": "id", "type": "long", "required": False},
        {"id": 2, "name": "name", "type": "string", "required": False},
    ],
}
ARROW_SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])


# -- helpers --------------------------------------------------------------------------------------


def ns_path(*levels: str) -> str:
    """A namespace as a path segment: levels joined by the unit separator, percent-encoded (``%1F``)."""
    return quote(SEP.join(levels), safe="")


def assert_error(response: httpx.Response, status: int, type_name: str) -> dict:
    """The response is exactly an Iceberg ErrorModel with this status and type."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) >= {"message", "type", "code"}, error
    assert set(error) <= {"message", "type", "code", "stack"}, error
    assert error["code"] == status
    assert error["type"] == type_name, error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    return error


@pytest.fixture
def http(local_env: CatalogEnv):
    with httpx.Client(base_url=f"{local_env.url}/v1/default", timeout=30) as client:
        yield client


@pytest.fixture
def any_http(catalog_env: CatalogEnv):
    with httpx.Client(base_url=f"{catalog_env.url}/v1/default", timeout=30) as client:
        yield client


def create_namespace(http: httpx.Client, *levels: str, properties: dict | None = None) -> tuple[str, ...]:
    response = http.post("/namespaces", json={"namespace": list(levels), "properties": properties or {}})
    assert response.status_code == 200, response.text
    return levels


def create_table(http: httpx.Client, namespace: tuple[str, ...], name: str, **extra) -> dict:
    response = http.post(f"/namespaces/{ns_path(*namespace)}/tables", json={"name": name, "schema": SCHEMA, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def load(http: httpx.Client, namespace: tuple[str, ...], name: str, **params) -> httpx.Response:
    return http.get(f"/namespaces/{ns_path(*namespace)}/tables/{quote(name, safe='')}", params=params)


def metadata_location(http: httpx.Client, namespace: tuple[str, ...], name: str) -> str:
    response = load(http, namespace, name)
    assert response.status_code == 200, response.text
    return response.json()["metadata-location"]


def commit(http: httpx.Client, namespace: tuple[str, ...], name: str, body) -> httpx.Response:
    path = f"/namespaces/{ns_path(*namespace)}/tables/{quote(name, safe='')}"
    if isinstance(body, (bytes, str)):
        return http.post(path, content=body, headers={"content-type": "application/json"})
    return http.post(path, json=body)


@pytest.fixture
def ns(http: httpx.Client) -> tuple[str, ...]:
    return create_namespace(http, unique_name())


@pytest.fixture
def table(http: httpx.Client, ns: tuple[str, ...]) -> tuple[tuple[str, ...], str, dict]:
    created = create_table(http, ns, "t")
    return ns, "t", created


def files_under(env: CatalogEnv, location: str) -> list[str]:
    """Every object under a table location, on either kind of warehouse."""
    if env.kind == "local":
        root = Path(unquote(urlparse(location).path))
        return [str(p) for p in root.rglob("*") if p.is_file()] if root.exists() else []
    parsed = urlparse(location)
    client = env.seaweed.client()
    try:
        keys, token = [], None
        while True:
            kwargs = {"Bucket": parsed.netloc, "Prefix": parsed.path.lstrip("/") + "/"}
            if token:
                kwargs["ContinuationToken"] = token
            page = client.list_objects_v2(**kwargs)
            keys += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            token = page["NextContinuationToken"]
    finally:
        client.close()


# -- malformed requests ---------------------------------------------------------------------------


def test_malformed_json_body_is_bad_request(http, table):
    ns, name, _ = table
    response = http.post("/namespaces", content=b'{"namespace": ["x"', headers={"content-type": "application/json"})
    assert_error(response, 400, "BadRequestException")
    before = metadata_location(http, ns, name)
    assert_error(commit(http, ns, name, b"{not json at all"), 400, "BadRequestException")
    assert_error(commit(http, ns, name, b""), 400, "BadRequestException")
    assert_error(http.post("/transactions/commit", content=b"[1,", headers={"content-type": "application/json"}), 400, "BadRequestException")
    assert metadata_location(http, ns, name) == before


def test_wrongly_typed_body_is_bad_request(http, ns):
    assert_error(http.post("/namespaces", json={"namespace": "not-a-list"}), 400, "BadRequestException")
    assert_error(http.post("/namespaces", json={"properties": {}}), 400, "BadRequestException")
    response = http.post(f"/namespaces/{ns_path(*ns)}/tables", json={"name": "t", "schema": {"type": "struct", "fields": "nope"}})
    assert_error(response, 400, "BadRequestException")
    assert http.get(f"/namespaces/{ns_path(*ns)}/tables").json()["identifiers"] == []


def test_unknown_update_action_is_rejected_and_changes_nothing(http, table):
    ns, name, _ = table
    before = metadata_location(http, ns, name)
    body = {"requirements": [], "updates": [{"action": "set-properties", "updates": {"a": "1"}}, {"action": "explode-table"}]}
    assert_error(commit(http, ns, name, body), 400, "BadRequestException")
    body = {"requirements": [{"type": "assert-the-moon"}], "updates": [{"action": "set-properties", "updates": {"a": "1"}}]}
    assert_error(commit(http, ns, name, body), 400, "BadRequestException")
    after = load(http, ns, name).json()
    assert after["metadata-location"] == before
    assert "a" not in after["metadata"].get("properties", {})


def test_update_that_cannot_apply_is_rejected_and_changes_nothing(http, table):
    ns, name, _ = table
    before = metadata_location(http, ns, name)
    for update in (
        {"action": "set-current-schema", "schema-id": 42},
        {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": 5},
        {"action": "upgrade-format-version", "format-version": 9},
        {"action": "upgrade-format-version", "format-version": 1},
    ):
        body = {"updates": [{"action": "set-properties", "updates": {"a": "1"}}, update]}
        assert_error(commit(http, ns, name, body), 400, "BadRequestException")
        assert metadata_location(http, ns, name) == before, update


def test_no_op_commit_keeps_the_current_version(http, table):
    """Updates that change nothing commit nothing (as Java does); removing an unset property is no error."""
    ns, name, created = table
    before = created["metadata-location"]
    body = {"updates": [{"action": "remove-properties", "removals": ["never-set"]}, {"action": "set-properties", "updates": {}}]}
    response = commit(http, ns, name, body)
    assert response.status_code == 200, response.text
    assert response.json()["metadata-location"] == before
    assert metadata_location(http, ns, name) == before


def test_wrong_requirements_are_commit_failed_and_change_nothing(http, table):
    ns, name, created = table
    before = created["metadata-location"]
    set_props = {"action": "set-properties", "updates": {"k": "v"}}
    wrong = [
        {"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": 123456789},
        {"type": "assert-table-uuid", "uuid": str(uuid.uuid4())},
        {"type": "assert-current-schema-id", "current-schema-id": 5},
        {"type": "assert-create"},
    ]
    for requirement in wrong:
        response = commit(http, ns, name, {"requirements": [requirement], "updates": [set_props]})
        assert_error(response, 409, "CommitFailedException")
        assert metadata_location(http, ns, name) == before, requirement
    # With the right requirements the same commit lands.
    right = [
        {"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": None},
        {"type": "assert-table-uuid", "uuid": created["metadata"]["table-uuid"]},
    ]
    response = commit(http, ns, name, {"requirements": right, "updates": [set_props]})
    assert response.status_code == 200, response.text
    assert response.json()["metadata"]["properties"]["k"] == "v"
    assert metadata_location(http, ns, name) == response.json()["metadata-location"] != before


# -- names ----------------------------------------------------------------------------------------

BAD_LEVELS = ["", "a/b", "..", "a..b", "ctl\x01char", "tab\tname", "del\x7f"]


@pytest.mark.parametrize("level", BAD_LEVELS)
def test_invalid_namespace_names_are_rejected(http, level):
    assert_error(http.post("/namespaces", json={"namespace": [level]}), 400, "BadRequestException")
    ok = unique_name()
    assert_error(http.post("/namespaces", json={"namespace": [ok, level]}), 400, "BadRequestException")
    assert http.head(f"/namespaces/{ns_path(ok)}").status_code == 404  # nothing half-created


def test_empty_namespace_is_rejected(http):
    assert_error(http.post("/namespaces", json={"namespace": []}), 400, "BadRequestException")


@pytest.mark.parametrize("name", BAD_LEVELS)
def test_invalid_table_names_are_rejected(http, ns, name):
    response = http.post(f"/namespaces/{ns_path(*ns)}/tables", json={"name": name, "schema": SCHEMA})
    assert_error(response, 400, "BadRequestException")
    response = http.post(f"/namespaces/{ns_path(*ns)}/tables", json={"name": name, "schema": SCHEMA, "stage-create": True})
    assert_error(response, 400, "BadRequestException")
    assert http.get(f"/namespaces/{ns_path(*ns)}/tables").json()["identifiers"] == []


def test_invalid_names_in_paths_and_renames_are_rejected(http, table):
    ns, name, _ = table
    # An empty level inside a multi-level path namespace.
    assert_error(http.get(f"/namespaces/{ns_path(ns[0], '')}"), 400, "BadRequestException")
    assert_error(http.get(f"/namespaces/{ns_path(ns[0], '..')}/tables"), 400, "BadRequestException")
    assert_error(http.get(f"/namespaces/{ns_path(*ns)}/tables/{quote('a..b')}"), 400, "BadRequestException")
    response = http.post(
        "/tables/rename",
        json={"source": {"namespace": list(ns), "name": name}, "destination": {"namespace": list(ns), "name": "x/y"}},
    )
    assert_error(response, 400, "BadRequestException")
    assert http.get(f"/namespaces/{ns_path(*ns)}/tables").json()["identifiers"] == [{"namespace": list(ns), "name": name}]


def test_location_outside_the_warehouse_is_rejected(http, ns, tmp_path):
    response = http.post(
        f"/namespaces/{ns_path(*ns)}/tables", json={"name": "t", "schema": SCHEMA, "location": tmp_path.as_uri()}
    )
    assert_error(response, 400, "BadRequestException")
    assert http.head(f"/namespaces/{ns_path(*ns)}/tables/t").status_code == 404


# -- missing and existing things ------------------------------------------------------------------


def test_missing_namespace_and_table_are_404(any_http, catalog_env):
    http = any_http
    missing_ns = unique_name("missing")
    assert_error(http.get(f"/namespaces/{missing_ns}"), 404, "NoSuchNamespaceException")
    assert http.head(f"/namespaces/{missing_ns}").status_code == 404
    assert_error(http.delete(f"/namespaces/{missing_ns}"), 404, "NoSuchNamespaceException")
    assert_error(http.get(f"/namespaces/{missing_ns}/tables"), 404, "NoSuchNamespaceException")
    assert_error(http.post(f"/namespaces/{missing_ns}/properties", json={"updates": {"a": "b"}}), 404, "NoSuchNamespaceException")
    assert_error(http.get("/namespaces", params={"parent": missing_ns}), 404, "NoSuchNamespaceException")
    assert_error(
        http.post(f"/namespaces/{missing_ns}/tables", json={"name": "t", "schema": SCHEMA}), 404, "NoSuchNamespaceException"
    )
    assert_error(http.post("/namespaces", json={"namespace": [missing_ns, "child"]}), 404, "NoSuchNamespaceException")
    # The spec documents only NoSuchTableException for a load (Java's metadata-table fallback relies on it).
    assert assert_error(load(http, (missing_ns,), "t"), 404, "NoSuchTableException")["message"] == f"Table does not exist: {missing_ns}.t"
    assert_error(http.delete(f"/namespaces/{missing_ns}/tables/t"), 404, "NoSuchTableException")

    ns = create_namespace(http, unique_name())
    assert_error(load(http, ns, "nope"), 404, "NoSuchTableException")
    assert http.head(f"/namespaces/{ns_path(*ns)}/tables/nope").status_code == 404
    assert_error(http.delete(f"/namespaces/{ns_path(*ns)}/tables/nope"), 404, "NoSuchTableException")
    assert_error(commit(http, ns, "nope", {"updates": [{"action": "set-properties", "updates": {"a": "b"}}]}), 404, "NoSuchTableException")
    assert_error(http.get(f"/namespaces/{ns_path(*ns)}/tables/nope/credentials"), 404, "NoSuchTableException")
    response = http.post(
        "/tables/rename",
        json={"source": {"namespace": list(ns), "name": "nope"}, "destination": {"namespace": list(ns), "name": "other"}},
    )
    assert_error(response, 404, "NoSuchTableException")
    assert http.head(f"/namespaces/{ns_path(*ns)}/tables/other").status_code == 404


def test_create_existing_is_409(http, table):
    ns, name, created = table
    assert_error(http.post("/namespaces", json={"namespace": list(ns)}), 409, "AlreadyExistsException")
    response = http.post(f"/namespaces/{ns_path(*ns)}/tables", json={"name": name, "schema": SCHEMA})
    assert_error(response, 409, "AlreadyExistsException")
    response = http.post(f"/namespaces/{ns_path(*ns)}/tables", json={"name": name, "schema": SCHEMA, "stage-create": True})
    assert_error(response, 409, "AlreadyExistsException")
    create_table(http, ns, "other")
    response = http.post(
        "/tables/rename",
        json={"source": {"namespace": list(ns), "name": "other"}, "destination": {"namespace": list(ns), "name": name}},
    )
    assert_error(response, 409, "AlreadyExistsException")
    assert metadata_location(http, ns, name) == created["metadata-location"]
    assert http.head(f"/namespaces/{ns_path(*ns)}/tables/other").status_code == 204


def test_drop_non_empty_namespace_is_409(any_http):
    http = any_http
    ns = create_namespace(http, unique_name())
    create_table(http, ns, "t")
    assert_error(http.delete(f"/namespaces/{ns_path(*ns)}"), 409, "NamespaceNotEmptyException")
    assert http.head(f"/namespaces/{ns_path(*ns)}").status_code == 204
    # Still usable: a table can still be created in it, and it drops once empty.
    create_table(http, ns, "u")
    child = create_namespace(http, *ns, "child")
    for t in ("t", "u"):
        assert http.delete(f"/namespaces/{ns_path(*ns)}/tables/{t}").status_code == 204
    assert_error(http.delete(f"/namespaces/{ns_path(*ns)}"), 409, "NamespaceNotEmptyException")  # the child
    assert http.delete(f"/namespaces/{ns_path(*child)}").status_code == 204
    assert http.delete(f"/namespaces/{ns_path(*ns)}").status_code == 204
    assert http.head(f"/namespaces/{ns_path(*ns)}").status_code == 404


def test_unknown_warehouse_prefix_is_404(local_env, http, ns):
    fresh = unique_name()
    with httpx.Client(base_url=f"{local_env.url}/v1/no-such-warehouse", timeout=30) as other:
        assert_error(other.get("/namespaces"), 404, "NoSuchWarehouseException")
        assert_error(other.post("/namespaces", json={"namespace": [fresh]}), 404, "NoSuchWarehouseException")
        assert_error(other.get(f"/namespaces/{ns_path(*ns)}"), 404, "NoSuchWarehouseException")
    assert_error(httpx.get(f"{local_env.url}/v1/config", params={"warehouse": "no-such-warehouse"}), 404, "NoSuchWarehouseException")
    # Nothing was created in the real warehouse by the misdirected create.
    assert http.head(f"/namespaces/{fresh}").status_code == 404


def test_unknown_endpoint_is_error_model(local_env):
    assert_error(httpx.get(f"{local_env.url}/v1/default/no/such/endpoint"), 404, "NoSuchEndpointException")


def test_bearer_none_authorization_is_tolerated(local_env, http, table):
    ns, name, created = table
    headers = {"Authorization": "Bearer None"}
    config = httpx.get(f"{local_env.url}/v1/config", headers=headers)
    assert config.status_code == 200 and config.json()["overrides"]["prefix"] == "default"
    response = http.get(f"/namespaces/{ns_path(*ns)}/tables/{name}", headers=headers)
    assert response.status_code == 200
    assert response.json()["metadata-location"] == created["metadata-location"]
    response = http.post(
        f"/namespaces/{ns_path(*ns)}/tables/{name}", headers=headers, json={"updates": [{"action": "set-properties", "updates": {"a": "1"}}]}
    )
    assert response.status_code == 200 and response.json()["metadata"]["properties"] == NEW_TABLE_PROPERTIES | {"a": "1"}


# -- loadTable: ETags and snapshot selection ------------------------------------------------------


def test_load_table_etag_and_if_none_match(any_http, catalog_env):
    http = any_http
    ns = create_namespace(http, unique_name())
    create_table(http, ns, "t")
    first = load(http, ns, "t")
    etag = first.headers["etag"]
    assert etag
    assert load(http, ns, "t").headers["etag"] == etag  # stable while the table is unchanged

    path = f"/namespaces/{ns_path(*ns)}/tables/t"
    not_modified = http.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert http.get(path, headers={"If-None-Match": f'"other", {etag}'}).status_code == 304
    assert http.get(path, headers={"If-None-Match": '"something-else"'}).status_code == 200

    assert commit(http, ns, "t", {"updates": [{"action": "set-properties", "updates": {"a": "1"}}]}).status_code == 200
    changed = http.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert changed.json()["metadata"]["properties"] == NEW_TABLE_PROPERTIES | {"a": "1"}
    assert http.get(path, headers={"If-None-Match": changed.headers["etag"]}).status_code == 304


def test_snapshots_refs_returns_only_referenced_snapshots(local_env, http, ns):
    catalog = local_env.catalog()
    tbl = catalog.create_table((*ns, "t"), ARROW_SCHEMA)
    for i in range(3):
        tbl.append(pa.table({"id": [i], "name": [f"r{i}"]}, schema=ARROW_SCHEMA))
    ids = [s.snapshot_id for s in tbl.metadata.snapshots]
    assert len(ids) == 3
    tbl.manage_snapshots().create_tag(ids[0], "first").commit()

    everything = load(http, ns, "t", snapshots="all").json()["metadata"]
    assert sorted(s["snapshot-id"] for s in everything["snapshots"]) == sorted(ids)
    default = load(http, ns, "t").json()["metadata"]
    assert sorted(s["snapshot-id"] for s in default["snapshots"]) == sorted(ids)

    refs = load(http, ns, "t", snapshots="refs").json()["metadata"]
    assert sorted(s["snapshot-id"] for s in refs["snapshots"]) == sorted([ids[0], ids[2]])
    assert refs["refs"] == everything["refs"]
    assert refs["current-snapshot-id"] == ids[2]

    assert_error(load(http, ns, "t", snapshots="some"), 400, "BadRequestException")


# -- transactions ---------------------------------------------------------------------------------


def _change(ns, name, requirements, properties):
    return {
        "identifier": {"namespace": list(ns), "name": name},
        "requirements": requirements,
        "updates": [{"action": "set-properties", "updates": properties}],
    }


def test_transaction_with_failing_second_requirement_changes_neither_table(any_http):
    http = any_http
    ns = create_namespace(http, unique_name())
    a = create_table(http, ns, "a")
    b = create_table(http, ns, "b")
    body = {
        "table-changes": [
            _change(ns, "a", [{"type": "assert-table-uuid", "uuid": a["metadata"]["table-uuid"]}], {"tx": "1"}),
            _change(ns, "b", [{"type": "assert-table-uuid", "uuid": str(uuid.uuid4())}], {"tx": "1"}),
        ]
    }
    assert_error(http.post("/transactions/commit", json=body), 409, "CommitFailedException")
    for name, created in (("a", a), ("b", b)):
        after = load(http, ns, name).json()
        assert after["metadata-location"] == created["metadata-location"], name
        assert "tx" not in after["metadata"].get("properties", {})

    # A missing second table: 404, and again the first table is untouched.
    body["table-changes"][1] = _change(ns, "missing", [], {"tx": "1"})
    assert_error(http.post("/transactions/commit", json=body), 404, "NoSuchTableException")
    assert metadata_location(http, ns, "a") == a["metadata-location"]

    # The same transaction with the right requirement commits both.
    body["table-changes"][1] = _change(ns, "b", [{"type": "assert-table-uuid", "uuid": b["metadata"]["table-uuid"]}], {"tx": "1"})
    response = http.post("/transactions/commit", json=body)
    assert response.status_code == 204, response.text
    for name, created in (("a", a), ("b", b)):
        after = load(http, ns, name).json()
        assert after["metadata"]["properties"] == NEW_TABLE_PROPERTIES | {"tx": "1"}
        assert [e["metadata-file"] for e in after["metadata"]["metadata-log"]] == [created["metadata-location"]]


def test_transaction_bad_shapes_are_rejected(http, table):
    ns, name, created = table
    assert_error(http.post("/transactions/commit", json={"table-changes": []}), 400, "BadRequestException")
    no_identifier = {"table-changes": [{"requirements": [], "updates": [{"action": "set-properties", "updates": {"a": "1"}}]}]}
    assert_error(http.post("/transactions/commit", json=no_identifier), 400, "BadRequestException")
    twice = {"table-changes": [_change(ns, name, [], {"a": "1"}), _change(ns, name, [], {"b": "1"})]}
    assert_error(http.post("/transactions/commit", json=twice), 400, "BadRequestException")
    assert metadata_location(http, ns, name) == created["metadata-location"]


# -- listing --------------------------------------------------------------------------------------


def _walk(http: httpx.Client, path: str, key: str, page_size: int, **params) -> tuple[list, int]:
    items, token, pages = [], None, 0
    while True:
        query = {"pageSize": page_size, **params}
        if token:
            query["pageToken"] = token
        response = http.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body[key]) <= page_size
        items += body[key]
        pages += 1
        token = body.get("next-page-token")
        if not token:
            return items, pages
        assert pages < 100, "pagination does not terminate"


def test_pagination_walks_every_namespace_and_table_exactly_once(http):
    parent = create_namespace(http, unique_name("page"))
    children = sorted(f"c{i:02d}" for i in range(7))
    for child in reversed(children):
        create_namespace(http, *parent, child)
    expected = [[*parent, c] for c in children]
    for size in (1, 2, 3, 7, 50):
        items, pages = _walk(http, "/namespaces", "namespaces", size, parent=SEP.join(parent))
        assert items == expected, size
        assert pages == -(-7 // size), (size, pages)  # no empty trailing page
    unpaged = http.get("/namespaces", params={"parent": SEP.join(parent)}).json()
    assert unpaged["namespaces"] == expected and "next-page-token" not in unpaged

    ns = (*parent, children[0])
    names = [f"t{i:02d}" for i in range(8)]
    for name in names:
        create_table(http, ns, name)
    for size in (1, 3, 8, 100):
        items, _ = _walk(http, f"/namespaces/{ns_path(*ns)}/tables", "identifiers", size)
        assert items == [{"namespace": list(ns), "name": n} for n in names], size

    # Top-level listing, paged, contains the parent exactly once.
    items, _ = _walk(http, "/namespaces", "namespaces", 5)
    assert items.count(list(parent)) == 1
    assert len(items) == len({tuple(i) for i in items})


def test_bad_page_parameters_are_rejected(http, ns):
    assert_error(http.get("/namespaces", params={"pageSize": 0}), 400, "BadRequestException")
    assert_error(http.get(f"/namespaces/{ns_path(*ns)}/tables", params={"pageSize": -1}), 400, "BadRequestException")
    assert_error(http.get("/namespaces", params={"pageToken": "***not-base64***"}), 400, "BadRequestException")
    assert_error(http.get("/namespaces", params={"pageSize": "many"}), 400, "BadRequestException")


def test_nested_namespaces_and_parent_listing(http):
    root = unique_name("nest")
    create_namespace(http, root)
    create_namespace(http, root, "b")
    create_namespace(http, root, "b", "c")
    create_namespace(http, root, "d")

    assert http.get("/namespaces", params={"parent": root}).json()["namespaces"] == [[root, "b"], [root, "d"]]
    assert http.get("/namespaces", params={"parent": f"{root}{SEP}b"}).json()["namespaces"] == [[root, "b", "c"]]
    assert http.get("/namespaces", params={"parent": f"{root}{SEP}b{SEP}c"}).json()["namespaces"] == []
    top = [n for n in http.get("/namespaces").json()["namespaces"] if n[0] == root]
    assert top == [[root]]  # only direct children of the root level

    loaded = http.get(f"/namespaces/{ns_path(root, 'b', 'c')}")
    assert loaded.status_code == 200 and loaded.json()["namespace"] == [root, "b", "c"]
    raw = http.get(f"/namespaces/{root}%1Fb")
    assert raw.status_code == 200 and raw.json()["namespace"] == [root, "b"]

    # Tables in a nested namespace, addressed with %1F in the path.
    create_table(http, (root, "b"), "t")
    listed = http.get(f"/namespaces/{root}%1Fb/tables").json()["identifiers"]
    assert listed == [{"namespace": [root, "b"], "name": "t"}]
    assert http.get(f"/namespaces/{ns_path(root)}/tables").json()["identifiers"] == []
    assert load(http, (root, "b"), "t").status_code == 200
    assert_error(load(http, (root,), "t"), 404, "NoSuchTableException")
    assert_error(http.post("/namespaces", json={"namespace": [root, "missing", "x"]}), 404, "NoSuchNamespaceException")


def test_update_namespace_properties(http):
    ns = create_namespace(http, unique_name(), properties={"keep": "1", "drop": "2", "change": "3"})
    path = f"/namespaces/{ns_path(*ns)}/properties"
    response = http.post(path, json={"removals": ["drop", "never-there"], "updates": {"change": "33", "new": "4"}})
    assert response.status_code == 200, response.text
    result = response.json()
    assert sorted(result["updated"]) == ["change", "new"]
    assert result["removed"] == ["drop"]
    assert result["missing"] == ["never-there"]
    properties = http.get(f"/namespaces/{ns_path(*ns)}").json()["properties"]
    # loadNamespace also reports the namespace's default location (Iceshelf stores no such property).
    assert properties.pop("location").endswith(f"/{ns[0]}")
    assert properties == {"keep": "1", "change": "33", "new": "4"}

    # A key both updated and removed is rejected as the spec says (422), and nothing changes.
    response = http.post(path, json={"removals": ["keep"], "updates": {"keep": "x"}})
    assert_error(response, 422, "UnprocessableEntityException")
    assert http.get(f"/namespaces/{ns_path(*ns)}").json()["properties"] == {**properties, "location": ANY}

    empty = http.post(path, json={})
    assert empty.status_code == 200 and empty.json() == {"updated": [], "removed": [], "missing": []}


# -- register and drop ----------------------------------------------------------------------------


def test_register_table_from_existing_metadata(catalog_env, any_http):
    http = any_http
    catalog = catalog_env.catalog()
    ns = create_namespace(http, unique_name())
    tbl = catalog.create_table((*ns, "orig"), ARROW_SCHEMA)
    tbl.append(pa.table({"id": [1, 2], "name": ["a", "b"]}, schema=ARROW_SCHEMA))
    location = metadata_location(http, ns, "orig")

    # Dropped without purge: the files stay, so the table can be registered again.
    assert http.delete(f"/namespaces/{ns_path(*ns)}/tables/orig").status_code == 204
    response = http.post(f"/namespaces/{ns_path(*ns)}/register", json={"name": "again", "metadata-location": location})
    assert response.status_code == 200, response.text
    assert response.json()["metadata-location"] == location
    assert metadata_location(http, ns, "again") == location
    rows = catalog.load_table((*ns, "again")).scan().to_arrow().sort_by("id").to_pylist()
    assert rows == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]

    assert_error(
        http.post(f"/namespaces/{ns_path(*ns)}/register", json={"name": "again", "metadata-location": location}),
        409,
        "AlreadyExistsException",
    )
    assert_error(
        http.post(f"/namespaces/{unique_name('missing')}/register", json={"name": "x", "metadata-location": location}),
        404,
        "NoSuchNamespaceException",
    )
    assert_error(
        http.post(f"/namespaces/{ns_path(*ns)}/register", json={"name": "x/y", "metadata-location": location}),
        400,
        "BadRequestException",
    )
    assert http.head(f"/namespaces/{ns_path(*ns)}/tables/orig").status_code == 404


def test_register_table_with_missing_metadata_file_is_an_error(local_env, http, ns):
    missing = f"{Path(local_env.warehouse).as_uri()}/{ns[0]}/nope/metadata/00000-{uuid.uuid4()}.metadata.json"
    response = http.post(f"/namespaces/{ns_path(*ns)}/register", json={"name": "ghost", "metadata-location": missing})
    assert_error(response, 400, "BadRequestException")  # was a 500 before register_table caught ObjectNotFound
    outside = http.post(f"/namespaces/{ns_path(*ns)}/register", json={"name": "ghost", "metadata-location": "file:///etc/passwd"})
    assert_error(outside, 400, "BadRequestException")
    assert http.head(f"/namespaces/{ns_path(*ns)}/tables/ghost").status_code == 404


def test_drop_table_purge_removes_files_and_plain_drop_keeps_them(catalog_env, any_http):
    http = any_http
    catalog = catalog_env.catalog()
    ns = create_namespace(http, unique_name())
    locations = {}
    for name in ("kept", "purged"):
        tbl = catalog.create_table((*ns, name), ARROW_SCHEMA)
        tbl.append(pa.table({"id": [1], "name": ["a"]}, schema=ARROW_SCHEMA))
        tbl.append(pa.table({"id": [2], "name": ["b"]}, schema=ARROW_SCHEMA))
        locations[name] = tbl.metadata.location
        files = files_under(catalog_env, tbl.metadata.location)
        assert any(f.endswith(".parquet") for f in files) and any(f.endswith(".metadata.json") for f in files), files

    kept_before = sorted(files_under(catalog_env, locations["kept"]))
    assert http.delete(f"/namespaces/{ns_path(*ns)}/tables/kept").status_code == 204
    assert sorted(files_under(catalog_env, locations["kept"])) == kept_before

    response = http.delete(f"/namespaces/{ns_path(*ns)}/tables/purged", params={"purgeRequested": "true"})
    assert response.status_code == 204
    assert files_under(catalog_env, locations["purged"]) == []
    # The sibling's files were not caught by the purge's prefix.
    assert sorted(files_under(catalog_env, locations["kept"])) == kept_before

    for name in ("kept", "purged"):
        assert_error(load(http, ns, name), 404, "NoSuchTableException")
    assert http.get(f"/namespaces/{ns_path(*ns)}/tables").json()["identifiers"] == []
    assert http.delete(f"/namespaces/{ns_path(*ns)}").status_code == 204


def test_table_locations_never_nest_or_coincide(http, ns):
    """Maintenance of one table (orphan removal, purge, expiry) would delete another's files inside its location."""
    first = create_table(http, ns, "first")["metadata"]["location"]
    path = f"/namespaces/{ns_path(*ns)}/tables"
    inside = http.post(path, json={"name": "inside", "schema": SCHEMA, "location": f"{first}/data/inside"})
    assert "overlaps" in assert_error(inside, 400, "BadRequestException")["message"]
    around = http.post(path, json={"name": "around", "schema": SCHEMA, "location": first.rsplit("/", 1)[0]})
    assert_error(around, 400, "BadRequestException")
    assert http.head(f"{path}/inside").status_code == 404 and http.head(f"{path}/around").status_code == 404

    own = f"{first.rsplit('/', 1)[0]}/elsewhere-{uuid.uuid4().hex[:8]}"
    assert create_table(http, ns, "second", location=own)["metadata"]["location"] == own
    before = metadata_location(http, ns, "second")
    moved = commit(http, ns, "second", {"requirements": [], "updates": [{"action": "set-location", "location": f"{first}/x"}]})
    assert_error(moved, 400, "BadRequestException")
    assert metadata_location(http, ns, "second") == before

    shared = http.post(f"/namespaces/{ns_path(*ns)}/register", json={"name": "twin", "metadata-location": metadata_location(http, ns, "first")})
    assert "overlaps" in assert_error(shared, 400, "BadRequestException")["message"]
