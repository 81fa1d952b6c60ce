"""The spec's whole v3 type list, in schemas and column defaults, over real HTTP.

Create (raw REST, to check the exact JSON strings) -> load, from the server that wrote the file and
from a second server that parses it cold; DuckDB writes and reads the types it supports (variant,
timestamp_ns, geometry; DuckDB 1.5.5 has no timestamptz_ns and cannot write unknown). Wrongly typed
defaults and ids beyond a Java int are refused with a 400 ErrorModel and create nothing.
"""

from __future__ import annotations

import httpx
import pytest

from bench.servers.iceshelf import start_iceshelf
from tests.clients import CatalogEnv, unique_name
from tests.test_bad_input import assert_error, commit, create_namespace, http, load, metadata_location, ns  # noqa: F401
from tests.test_table_metadata import _field, _fields
from tests.test_views import version_doc

V3 = {"format-version": "3"}


def _create(http, ns, name: str, fields: list[dict], **extra) -> httpx.Response:
    schema = {"type": "struct", "schema-id": 0, "fields": fields}
    return http.post(f"/namespaces/{ns[0]}/tables", json={"name": name, "schema": schema, "properties": V3, **extra})


@pytest.fixture(scope="module")
def cold_reader(local_env: CatalogEnv, tmp_path_factory: pytest.TempPathFactory):
    """A second server on the same warehouse: its loads parse the metadata files written by the first."""
    server = start_iceshelf(local_env.warehouse, tmp_path_factory.mktemp("cold-reader"))
    with httpx.Client(base_url=f"{server.url}/v1/default", timeout=30) as client:
        yield client
    server.stop()


# -- types ----------------------------------------------------------------------------------------

#: (what the client sends, what Iceshelf writes: the spec's form, bare where every parameter is the default)
TYPES = [
    ("unknown", "unknown"),
    ("variant", "variant"),
    ("timestamp_ns", "timestamp_ns"),
    ("timestamptz_ns", "timestamptz_ns"),
    ("geometry", "geometry"),
    ("geometry(ogc:crs84)", "geometry"),
    ("geometry(srid:4269)", "geometry(srid:4269)"),
    ("geometry( EPSG:4326 )", "geometry(EPSG:4326)"),
    ("geometry('srid:4269')", "geometry(srid:4269)"),  # pyiceberg's quoted form, read without the quotes
    ("geography", "geography"),
    ("geography(OGC:CRS84, spherical)", "geography"),
    ("geography(srid:4269)", "geography(srid:4269, spherical)"),
    ("geography(srid:4269, Karney)", "geography(srid:4269, karney)"),
    ("geography(ogc:crs84, vincenty)", "geography(ogc:crs84, vincenty)"),
    ("geography('srid:4269', 'thomas')", "geography(srid:4269, thomas)"),
]


def test_v3_types_round_trip_in_the_spec_form(http, ns, cold_reader) -> None:
    fields = [_field(i + 1, f"c{i}", sent) for i, (sent, _) in enumerate(TYPES)]
    fields.append(_field(100, "list", {"type": "list", "element-id": 101, "element": "variant", "element-required": False}))
    map_type = {"type": "map", "key-id": 201, "key": "string", "value-id": 202, "value": "geography(srid:4269)", "value-required": False}
    fields.append(_field(200, "map", map_type))
    created = _create(http, ns, "types", fields)
    assert created.status_code == 200, created.text
    expected = [written for _, written in TYPES]
    for metadata in (created.json()["metadata"], load(http, ns, "types").json()["metadata"], load(cold_reader, ns, "types").json()["metadata"]):
        loaded = _fields(metadata)
        assert [f["type"] for f in loaded[: len(TYPES)]] == expected
        assert loaded[-2]["type"]["element"] == "variant"
        assert loaded[-1]["type"]["value"] == "geography(srid:4269, spherical)"

    # A commit on the table (the builder re-validates the whole metadata) keeps every type as it is.
    response = commit(http, ns, "types", {"updates": [{"action": "set-properties", "updates": {"k": "v"}}]})
    assert response.status_code == 200, response.text
    assert [f["type"] for f in _fields(response.json()["metadata"])[: len(TYPES)]] == expected


@pytest.mark.parametrize("field_type", ["variant", "geometry", "unknown", "timestamp_ns"])
def test_v3_types_need_format_v3(http, ns, field_type: str) -> None:
    name = unique_name("t")
    response = http.post(
        f"/namespaces/{ns[0]}/tables",
        json={"name": name, "schema": {"type": "struct", "fields": [_field(1, "c", field_type)]}, "properties": {"format-version": "2"}},
    )
    assert response.status_code == 400, response.text
    assert load(http, ns, name).status_code == 404


@pytest.mark.parametrize("bad", ["geometry(", "geography(srid:4269, planar)", "geometry()", "varient"])
def test_unparseable_type_strings_are_400(http, ns, bad: str) -> None:
    name = unique_name("t")
    assert _create(http, ns, name, [_field(1, "c", bad)]).status_code == 400
    assert load(http, ns, name).status_code == 404


def test_add_schema_with_v3_types(http, ns, cold_reader) -> None:
    assert _create(http, ns, "evolve", [_field(1, "a", "int")]).status_code == 200
    schema = {"type": "struct", "schema-id": 1, "fields": [_field(1, "a", "int"), _field(2, "v", "variant"), _field(3, "g", "geometry(srid:3857)")]}
    updates = [{"action": "add-schema", "schema": schema}, {"action": "set-current-schema", "schema-id": -1}]
    response = commit(http, ns, "evolve", {"updates": updates})
    assert response.status_code == 200, response.text
    for metadata in (response.json()["metadata"], load(cold_reader, ns, "evolve").json()["metadata"]):
        assert [f["type"] for f in _fields(metadata)] == ["int", "variant", "geometry(srid:3857)"]


# -- defaults -------------------------------------------------------------------------------------

#: (type, default in the JSON single-value form) -- written back exactly as sent.
DEFAULTS = [
    ("boolean", True),
    ("int", 34),
    ("long", 2**40),
    ("float", 1.5),
    ("double", -0.25),
    ("decimal(9, 2)", "14.20"),
    ("date", "2017-11-16"),
    ("time", "22:31:08.123456"),
    ("timestamp", "2017-11-16T22:31:08.123456"),
    ("timestamptz", "2017-11-16T22:31:08.123456+00:00"),
    ("timestamp_ns", "2017-11-16T22:31:08.123456789"),
    ("timestamp_ns", "2017-11-16T22:31:08.1"),
    ("timestamp_ns", "2017-11-16T22:31:08"),
    ("timestamptz_ns", "2017-11-16T22:31:08.123456789+00:00"),
    ("timestamptz_ns", "1969-12-31T23:59:59.999999999+00:00"),
    ("string", "iceberg"),
    ("uuid", "f79c3e09-677c-4bbd-a479-3f349cb785e7"),
    ("fixed[4]", "000102ff"),
    ("binary", "000102ff"),
]


def test_defaults_of_every_primitive_round_trip(http, ns, cold_reader) -> None:
    fields = [
        _field(i + 1, f"c{i}", field_type, **{"initial-default": value, "write-default": value})
        for i, (field_type, value) in enumerate(DEFAULTS)
    ]
    created = _create(http, ns, "defaults", fields)
    assert created.status_code == 200, created.text
    for metadata in (created.json()["metadata"], load(cold_reader, ns, "defaults").json()["metadata"]):
        got = [(f["type"], f["initial-default"], f["write-default"]) for f in _fields(metadata)]
        assert got == [(t, v, v) for t, v in DEFAULTS]


WRONG_DEFAULTS = [
    ("int", "7"),
    ("int", 7.0),
    ("int", 2**31),
    ("int", True),
    ("long", "1"),
    ("boolean", "true"),
    ("boolean", 1),
    ("float", 1),  # Java's parser wants a floating-point number
    ("double", "1.0"),
    ("string", 5),
    ("date", 17000),
    ("decimal(9, 2)", 14.2),
    ("timestamp", "not a timestamp"),
    ("timestamptz_ns", "2017-11-16T22:31:08.123456789"),  # no offset
    ("timestamp_ns", "2017-11-16T22:31:08.123456789+00:00"),  # an offset
    ("uuid", 1),
    ("binary", ["00"]),
    ("unknown", 1),  # unknown, variant and the geo types default to null only
    ("variant", {"a": 1}),
    ("geometry", "POINT (30 10)"),
    ("geography", "POINT (30 10)"),
]


@pytest.mark.parametrize(("field_type", "value"), WRONG_DEFAULTS, ids=[f"{t}={v!r}" for t, v in WRONG_DEFAULTS])
def test_wrongly_typed_defaults_are_400_and_create_nothing(http, ns, field_type: str, value) -> None:
    name = unique_name("t")
    response = _create(http, ns, name, [_field(1, "c", field_type, **{"write-default": value})])
    assert_error(response, 400, "IllegalArgumentException")
    assert load(http, ns, name).status_code == 404


def test_wrongly_typed_default_in_add_schema_changes_nothing(http, ns) -> None:
    assert _create(http, ns, "evolve_bad", [_field(1, "a", "int")]).status_code == 200
    before = metadata_location(http, ns, "evolve_bad")
    schema = {"type": "struct", "schema-id": 1, "fields": [_field(1, "a", "int"), _field(2, "b", "int", **{"initial-default": "7"})]}
    response = commit(http, ns, "evolve_bad", {"updates": [{"action": "add-schema", "schema": schema}]})
    assert_error(response, 400, "IllegalArgumentException")
    assert metadata_location(http, ns, "evolve_bad") == before


# -- ids are Java ints ----------------------------------------------------------------------------

TOO_BIG = 2**31


@pytest.mark.parametrize(
    "extra",
    [
        {"schema": {"type": "struct", "fields": [_field(TOO_BIG, "a", "int")]}},
        {"schema": {"type": "struct", "schema-id": TOO_BIG, "fields": [_field(1, "a", "int")]}},
        {"partition-spec": {"spec-id": TOO_BIG, "fields": []}},
        {"partition-spec": {"spec-id": 0, "fields": [{"source-id": 1, "field-id": 2**32, "name": "p", "transform": "identity"}]}},
        {"write-order": {"order-id": 2**40, "fields": []}},
    ],
    ids=["field-id", "schema-id", "spec-id", "partition-field-id", "order-id"],
)
def test_ids_beyond_32_bits_are_400_at_create(http, ns, extra: dict) -> None:
    name = unique_name("t")
    body = {"name": name, "schema": {"type": "struct", "fields": [_field(1, "a", "int")]}, **extra}
    response = http.post(f"/namespaces/{ns[0]}/tables", json=body)
    assert "integer" in assert_error(response, 400, "IllegalArgumentException")["message"]
    assert load(http, ns, name).status_code == 404


def test_ids_beyond_32_bits_are_400_in_commits(http, ns) -> None:
    assert _create(http, ns, "ids", [_field(1, "a", "int")]).status_code == 200
    before = metadata_location(http, ns, "ids")
    order = {"order-id": TOO_BIG, "fields": [{"transform": "identity", "source-id": 1, "direction": "asc", "null-order": "nulls-first"}]}
    for update in (
        {"action": "add-sort-order", "sort-order": order},
        {"action": "set-default-spec", "spec-id": TOO_BIG},
        {"action": "add-schema", "schema": {"type": "struct", "fields": [_field(1, "a", "int"), _field(TOO_BIG, "b", "int")]}},
    ):
        assert_error(commit(http, ns, "ids", {"updates": [update]}), 400, "IllegalArgumentException")
    assert metadata_location(http, ns, "ids") == before


# -- DuckDB ---------------------------------------------------------------------------------------


@pytest.fixture
def duck_schema(catalog_env: CatalogEnv):
    """DuckDB attached to the catalog, with a fresh schema (namespace) of its own."""
    duck = catalog_env.duckdb()
    schema = unique_name("duck")
    duck.execute(f"CREATE SCHEMA lake.{schema}")
    yield duck, schema
    duck.close()


def _loaded_fields(env: CatalogEnv, namespace: str, table: str) -> list[dict]:
    with httpx.Client(base_url=f"{env.url}/v1/default", timeout=30) as client:
        return _fields(client.get(f"/namespaces/{namespace}/tables/{table}").json()["metadata"])


def test_duckdb_writes_and_reads_v3_types(catalog_env: CatalogEnv, duck_schema) -> None:
    duck, schema = duck_schema
    table = f"lake.{schema}.v3"
    duck.execute(f"CREATE TABLE {table} (id INT, v VARIANT, t TIMESTAMP_NS, g GEOMETRY) WITH ('format-version' = '3')")
    duck.execute(f"INSERT INTO {table} VALUES (1, {{'x': 1}}::VARIANT, '2020-01-01 00:00:00.123456789', 'POINT (1 2)'::GEOMETRY)")
    duck.execute(f"INSERT INTO {table} VALUES (2, 'text'::VARIANT, NULL, NULL)")
    rows = duck.execute(f"SELECT id, v::VARCHAR, strftime(t, '%Y-%m-%d %H:%M:%S.%n'), g::VARCHAR FROM {table} ORDER BY id").fetchall()
    assert rows == [(1, "{'x': 1}", "2020-01-01 00:00:00.123456789", "POINT (1 2)"), (2, "text", None, None)]
    assert [f["type"] for f in _loaded_fields(catalog_env, schema, "v3")] == ["int", "variant", "timestamp_ns", "geometry"]


def test_duckdb_default_values_of_many_types(catalog_env: CatalogEnv, duck_schema) -> None:
    duck, schema = duck_schema
    table = f"lake.{schema}.d"
    duck.execute(
        f"CREATE TABLE {table} (a INT, t TIMESTAMP_NS DEFAULT '2020-01-01 00:00:00.123456789', s VARCHAR DEFAULT 'x', "
        "d DOUBLE DEFAULT 1.5, m DECIMAL(9,2) DEFAULT 3.25, dt DATE DEFAULT '2020-02-02', b BOOLEAN DEFAULT true, "
        "l BIGINT DEFAULT 9) WITH ('format-version' = '3')"
    )
    duck.execute(f"INSERT INTO {table} (a) VALUES (1)")
    row = duck.execute(f"SELECT a, strftime(t, '%Y-%m-%d %H:%M:%S.%n'), s, d, m::VARCHAR, dt::VARCHAR, b, l FROM {table}").fetchall()
    assert row == [(1, "2020-01-01 00:00:00.123456789", "x", 1.5, "3.25", "2020-02-02", True, 9)]
    fields = _loaded_fields(catalog_env, schema, "d")
    assert fields[1]["write-default"] == "2020-01-01T00:00:00.123456789" and fields[4]["write-default"] == "3.25"


def test_view_with_v3_types_round_trips(http, ns, cold_reader) -> None:
    schema = {"type": "struct", "schema-id": 0, "fields": [_field(1, "v", "variant"), _field(2, "g", "geography(srid:4269)")]}
    body = {"name": "v3_view", "schema": schema, "view-version": version_doc("select v, g from t", ns[0]), "properties": {}}
    created = http.post(f"/namespaces/{ns[0]}/views", json=body)
    assert created.status_code == 200, created.text
    for client in (http, cold_reader):
        metadata = client.get(f"/namespaces/{ns[0]}/views/v3_view").json()["metadata"]
        assert [f["type"] for f in metadata["schemas"][0]["fields"]] == ["variant", "geography(srid:4269, spherical)"]
