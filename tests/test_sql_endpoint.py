"""The SQL endpoint's Athena-style API over real HTTP, on the local and the S3 (SeaweedFS) warehouse.

Every result is compared with pyiceberg's own scan of the same snapshot: the endpoint reads with
DuckDB's Iceberg reader, pyiceberg with its own, so agreement means deletes, time travel and
types are all applied the same way.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.manifest import FileFormat

from bench.servers.iceshelf import running_iceshelf
from tests.clients import CatalogEnv
from tests.sql_client import SqlClient, SqlError

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("name", pa.string()),
        pa.field("amount", pa.decimal128(10, 2)),
        pa.field("day", pa.date32()),
        pa.field("ts", pa.timestamp("us")),
        pa.field("flag", pa.bool_()),
    ]
)
LONG_QUERY = "SELECT count(*) FROM range(1000000000) a, range(1000000) b WHERE a.range + b.range = -1"


def batch(ids: range) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "id": i,
                "name": None if i % 7 == 0 else f"n{i}",
                "amount": Decimal(i) / 4,
                "day": dt.date(2024, 1, 1) + dt.timedelta(days=i),
                "ts": dt.datetime(2024, 1, 1, 12) + dt.timedelta(minutes=i),
                "flag": i % 2 == 0,
            }
            for i in ids
        ],
        schema=SCHEMA,
    )


def sorted_rows(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda row: row["id"])


@pytest.fixture
def sql(catalog_env: CatalogEnv, namespace: str):
    client = SqlClient(catalog_env.url, namespace=namespace)
    yield client
    client.close()


@pytest.fixture
def events(catalog_env: CatalogEnv, namespace: str):
    """``events`` with two pyiceberg appends (two snapshots)."""
    table = catalog_env.catalog().create_table(f"{namespace}.events", SCHEMA)
    table.append(batch(range(0, 30)))
    table.append(batch(range(30, 45)))
    return catalog_env.catalog().load_table(f"{namespace}.events")


def test_results_equal_pyiceberg_at_every_snapshot_with_duckdb_deletes(catalog_env: CatalogEnv, namespace: str, sql: SqlClient, events) -> None:
    deleted = sql.run("DELETE FROM events WHERE id % 3 = 0")
    assert (deleted["state"], deleted["update_type"], deleted["update_count"]) == ("SUCCEEDED", "DELETE", 15)
    updated = sql.run("UPDATE events SET name = upper(name), amount = amount * 2 WHERE id > 40")
    assert updated["update_count"] == 3

    table = catalog_env.catalog().load_table(f"{namespace}.events")
    assert len(table.metadata.snapshots) == 4
    delete_files = [d for task in table.scan().plan_files() for d in task.delete_files]
    assert delete_files, "DuckDB's DELETE/UPDATE wrote no delete files"

    current = sql.query("SELECT * FROM events")
    assert current.schema == SCHEMA
    assert sorted_rows(current) == sorted_rows(table.scan().to_arrow())
    for snapshot in table.metadata.snapshots:
        expected = sorted_rows(table.scan(snapshot_id=snapshot.snapshot_id).to_arrow())
        for dialect, text in (
            ("trino", f"SELECT * FROM events FOR VERSION AS OF {snapshot.snapshot_id}"),
            ("spark", f"SELECT * FROM {namespace}.events VERSION AS OF {snapshot.snapshot_id}"),
            ("duckdb", f"SELECT * FROM events AT (VERSION => {snapshot.snapshot_id})"),
        ):
            assert sorted_rows(sql.query(text, dialect=dialect)) == expected, (dialect, snapshot.snapshot_id)

    record = sql.run("SELECT count(*) FROM events")
    files = table.inspect.files()
    assert record["bytes_scanned"] == sum(files["file_size_in_bytes"].to_pylist())
    assert record["rows"] == 1


def test_deletion_vectors_of_a_v3_table(catalog_env: CatalogEnv, namespace: str, sql: SqlClient) -> None:
    duck = catalog_env.duckdb()
    try:
        duck.execute(f"CREATE TABLE lake.{namespace}.v3 (id BIGINT, name VARCHAR) WITH ('format-version' = '3')")
        duck.execute(f"INSERT INTO lake.{namespace}.v3 SELECT range, 'n' || range FROM range(20)")
    finally:
        duck.close()
    assert sql.run("DELETE FROM v3 WHERE id % 4 = 1")["update_count"] == 5
    table = catalog_env.catalog().load_table(f"{namespace}.v3")
    assert table.metadata.format_version == 3
    assert {d.file_format for task in table.scan().plan_files() for d in task.delete_files} == {FileFormat.PUFFIN}
    assert sorted_rows(sql.query("SELECT * FROM v3")) == sorted_rows(table.scan().to_arrow())
    assert sql.rows("SELECT count(*) FROM v3") == [(15,)]


def test_time_travel_by_timestamp(catalog_env: CatalogEnv, namespace: str, sql: SqlClient, events) -> None:
    for entry in events.metadata.snapshot_log:
        at = dt.datetime.fromtimestamp(entry.timestamp_ms / 1000, dt.timezone.utc)
        expected = sorted_rows(events.scan(snapshot_id=entry.snapshot_id).to_arrow())
        text = at.strftime("%Y-%m-%d %H:%M:%S.%f")
        assert sorted_rows(sql.query(f"SELECT * FROM events FOR TIMESTAMP AS OF TIMESTAMP '{text} UTC'", dialect="trino")) == expected
        assert sorted_rows(sql.query(f"SELECT * FROM events TIMESTAMP AS OF '{text}'", dialect="spark")) == expected
        assert sorted_rows(sql.query(f"SELECT * FROM events AT (TIMESTAMP => TIMESTAMP '{text}')")) == expected
    with pytest.raises(SqlError) as refused:
        sql.start("SELECT * FROM events FOR TIMESTAMP AS OF TIMESTAMP '2001-01-01 00:00:00 UTC'", dialect="trino")
    assert refused.value.status == 400 and "had no snapshot" in refused.value.message


def test_metadata_tables(catalog_env: CatalogEnv, namespace: str, sql: SqlClient, events) -> None:
    inspect = events.inspect
    snapshots = sql.query('SELECT snapshot_id, parent_id, operation FROM "events$snapshots" ORDER BY committed_at', dialect="trino")
    assert snapshots.to_pylist() == inspect.snapshots().select(["snapshot_id", "parent_id", "operation"]).to_pylist()
    assert sql.rows("SELECT snapshot_id FROM events.history ORDER BY made_current_at", dialect="spark") == [
        (entry.snapshot_id,) for entry in events.metadata.snapshot_log
    ]
    files = sql.query(f'SELECT file_path, record_count FROM "{namespace}"."events$files" ORDER BY file_path', dialect="athena")
    assert files.to_pylist() == inspect.files().select(["file_path", "record_count"]).sort_by("file_path").to_pylist()
    assert sql.rows('SELECT count(*) FROM "events$manifests"', dialect="trino") == [(inspect.manifests().num_rows,)]
    assert sql.rows('SELECT sum(record_count) FROM "events$partitions"', dialect="trino") == [(45,)]
    assert sql.rows('SELECT name, snapshot_id FROM "events$refs"', dialect="trino") == [("main", events.metadata.current_snapshot_id)]


def test_writes_commit_through_the_catalog(catalog_env: CatalogEnv, namespace: str, sql: SqlClient, events) -> None:
    created = sql.run(f"CREATE TABLE {namespace}.big AS SELECT id, amount FROM events WHERE id >= 40")
    assert (created["state"], created["update_type"], created["update_count"]) == ("SUCCEEDED", "CREATE TABLE", 5)
    inserted = sql.run("INSERT INTO big VALUES (100, 1.25), (101, NULL)", dialect="trino")
    assert inserted["update_count"] == 2

    catalog = catalog_env.catalog()
    big = catalog.load_table(f"{namespace}.big")
    assert [f.name for f in big.schema().fields] == ["id", "amount"]
    assert sorted(big.scan().to_arrow().column("id").to_pylist()) == [40, 41, 42, 43, 44, 100, 101]
    assert len(big.metadata.snapshots) == 2  # one commit per statement, each a new metadata version
    # the CTAS was one creating commit: the table's first metadata version already held its data
    first = big.snapshot_by_id(big.metadata.snapshots[0].snapshot_id)
    assert len(big.metadata.metadata_log) == 1 and first.summary["added-records"] == "5"

    with pytest.raises(SqlError) as exists:
        sql.start(f"CREATE TABLE {namespace}.big AS SELECT 1 AS id")
    assert exists.value.status == 400 and "already exists" in exists.value.message


def test_a_failed_ctas_leaves_no_table(catalog_env: CatalogEnv, namespace: str, sql: SqlClient, events) -> None:
    catalog = catalog_env.catalog()
    failed = sql.run(f"CREATE TABLE {namespace}.broken AS SELECT id, CAST('x' || id AS INTEGER) AS n FROM events")
    assert failed["state"] == "FAILED" and "Could not convert" in failed["error"]["message"]
    slow = sql.start(f"CREATE TABLE {namespace}.slow AS {LONG_QUERY}", timeout_seconds=3)["query_id"]
    while sql.http.get(f"/v1/sql/queries/{slow}").json()["state"] == "QUEUED":
        time.sleep(0.05)
    time.sleep(1)  # well into the INSERT: the table is created (staged) and being filled, yet no one sees it
    assert not catalog.table_exists(f"{namespace}.slow")
    timed_out = sql.wait(slow)
    assert timed_out["state"] == "FAILED" and timed_out["error"]["type"] == "QueryTimeoutError"
    assert not catalog.table_exists(f"{namespace}.broken") and not catalog.table_exists(f"{namespace}.slow")
    assert catalog.list_tables(namespace) == [(namespace, "events")]
    # nothing half-created is in the way of the same name
    assert sql.run(f"CREATE TABLE {namespace}.broken AS SELECT id FROM events WHERE id < 3")["update_count"] == 3
    assert sorted(catalog.load_table(f"{namespace}.broken").scan().to_arrow().column("id").to_pylist()) == [0, 1, 2]


@pytest.mark.parametrize(
    "dialect, statement",
    [
        ("duckdb", "SELECT * FROM read_csv('/etc/passwd')"),
        ("trino", 'SELECT * FROM "/etc/passwd"'),
        ("spark", "SELECT * FROM csv.`/etc/passwd`"),
        ("duckdb", "SELECT * FROM '/etc/passwd'"),
        ("athena", "SELECT getenv('HOME')"),
        ("duckdb", "ATTACH '/tmp/iceshelf-attack.db' AS x"),
        ("trino", "COPY (SELECT 1) TO '/tmp/iceshelf-attack.csv'"),
        ("duckdb", "SET enable_external_access = true"),
        ("duckdb", "INSTALL httpfs"),
        ("spark", "SELECT 1; SELECT 2"),
    ],
)
def test_refused_over_http(catalog_env: CatalogEnv, sql: SqlClient, dialect: str, statement: str) -> None:
    with pytest.raises(SqlError) as refused:
        sql.start(statement, dialect=dialect)
    assert (refused.value.status, refused.value.type) == (400, "SqlRefusedException")
    assert not Path("/tmp/iceshelf-attack.csv").exists() and not Path("/tmp/iceshelf-attack.db").exists()


def test_unknown_names_and_queries(catalog_env: CatalogEnv, sql: SqlClient) -> None:
    with pytest.raises(SqlError) as missing:
        sql.start("SELECT * FROM nope")
    assert (missing.value.status, missing.value.type) == (404, "NoSuchTableException")
    with pytest.raises(SqlError) as warehouse:
        sql.start("SELECT 1", warehouse="no-such-warehouse")
    assert warehouse.value.status == 404
    assert sql.http.get(f"/v1/sql/queries/{uuid.uuid4()}").status_code == 404
    failed = sql.run("SELECT 1 / 'x'")
    assert failed["state"] == "FAILED" and failed["error"]["type"] == "QueryFailedError"
    assert sql.http.get(f"/v1/sql/queries/{failed['query_id']}/results").status_code == 409


def test_cancel_timeout_and_the_session_survives(catalog_env: CatalogEnv, sql: SqlClient) -> None:
    started = sql.start(LONG_QUERY)
    for _ in range(600):  # cancel it while it runs, not while it waits for a session
        if sql.http.get(f"/v1/sql/queries/{started['query_id']}").json()["state"] == "RUNNING":
            break
        time.sleep(0.05)
    cancelled = sql.http.delete(f"/v1/sql/queries/{started['query_id']}").raise_for_status().json()
    assert cancelled["query_id"] == started["query_id"]
    assert sql.wait(started["query_id"])["state"] == "CANCELLED"

    timed_out = sql.run(LONG_QUERY, timeout_seconds=1)
    assert timed_out["state"] == "FAILED" and timed_out["error"]["type"] == "QueryTimeoutError"
    assert sql.rows("SELECT 42 AS answer") == [(42,)]


def test_eight_queries_at_once(catalog_env: CatalogEnv, sql: SqlClient, events) -> None:
    results: dict[int, list[tuple]] = {}

    def one(k: int) -> None:
        client = SqlClient(catalog_env.url, namespace=sql.defaults["namespace"])
        try:
            results[k] = client.rows(f"SELECT count(*), sum(id) FROM events WHERE id % 8 = {k}")
        finally:
            client.close()

    threads = [threading.Thread(target=one, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == {k: [(len(range(k, 45, 8)), sum(range(k, 45, 8)))] for k in range(8)}


def test_json_pages_and_arrow_agree(catalog_env: CatalogEnv, sql: SqlClient, events) -> None:
    record = sql.run("SELECT id, name, amount, day, ts FROM events WHERE id < 5 ORDER BY id")
    pages, token = [], None
    while True:
        page = sql.page(record["query_id"], token, max_rows=2)
        pages.append(page["rows"])
        token = page["next_page_token"]
        if token is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert page["columns"] == [
        {"name": "id", "type": "bigint"},
        {"name": "name", "type": "varchar"},
        {"name": "amount", "type": "decimal(10,2)"},
        {"name": "day", "type": "date"},
        {"name": "ts", "type": "timestamp(6)"},
    ]
    arrow = sql.arrow(record["query_id"]).to_pylist()
    rows = [row for p in pages for row in p]
    assert [r[0] for r in rows] == [a["id"] for a in arrow] == [0, 1, 2, 3, 4]
    assert rows[1] == [1, "n1", "0.25", "2024-01-02", "2024-01-01 12:01:00.000000"]


def test_client_request_token_is_idempotent(catalog_env: CatalogEnv, sql: SqlClient) -> None:
    token = uuid.uuid4().hex
    first = sql.start("SELECT 1 AS x", client_request_token=token)
    again = sql.start("SELECT 1 AS x", client_request_token=token)
    assert again["query_id"] == first["query_id"]
    with pytest.raises(SqlError) as mismatch:
        sql.start("SELECT 2 AS x", client_request_token=token)
    assert mismatch.value.status == 409


def test_history_survives_a_restart_and_read_only_mode(catalog_env: CatalogEnv, tmp_path: Path) -> None:
    """A server on a fresh warehouse runs queries and stops; a read-only server on the same warehouse
    still answers their records and results, and refuses writes."""
    if catalog_env.seaweed is None:
        warehouse = str(tmp_path / "warehouse")
    else:
        warehouse = f"{catalog_env.warehouse.rsplit('/', 1)[0]}/restart-{uuid.uuid4().hex[:8]}"
    env = catalog_env.s3_env()
    with running_iceshelf(warehouse, tmp_path, env) as first:
        catalog_env.catalog(url=first.url).create_namespace("hist")
        client = SqlClient(first.url, namespace="hist")
        assert client.run("CREATE TABLE hist.t AS SELECT range AS id FROM range(3)")["state"] == "SUCCEEDED"
        selected = client.run("SELECT sum(id) AS total FROM t")
        client.close()
    with running_iceshelf(warehouse, tmp_path, {**env, "ICESHELF_SQL_READ_ONLY": "true"}) as second:
        client = SqlClient(second.url, namespace="hist")
        record = client.wait(selected["query_id"])
        assert record["state"] == "SUCCEEDED" and record["sql"] == "SELECT sum(id) AS total FROM t"
        assert client.arrow(selected["query_id"]).to_pylist() == [{"total": 3}]
        listed = client.http.get("/v1/sql/queries", params={"limit": 10}).raise_for_status().json()["queries"]
        assert [q["query_id"] for q in listed][:2] == [selected["query_id"], listed[1]["query_id"]]
        assert listed[1]["update_type"] == "CREATE TABLE"
        with pytest.raises(SqlError) as refused:
            client.start("INSERT INTO t VALUES (4)")
        assert refused.value.status == 400 and "read-only" in refused.value.message
        assert client.rows("SELECT count(*) FROM t") == [(3,)]
        client.close()
