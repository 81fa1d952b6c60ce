"""Trino's client protocol, driven by the ``trino`` package from PyPI: DB-API, SQLAlchemy, cancel.

Run on the local and the S3 warehouse; the Trino catalog is the warehouse, the schema the namespace.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal
from urllib.parse import urlparse

import pyarrow as pa
import pytest
import sqlalchemy as sa
import trino
from trino.auth import JWTAuthentication
from trino.exceptions import TrinoAuthError, TrinoUserError

from bench.servers.iceshelf import start_iceshelf
from iceshelf.tables.access import Grant, PrincipalStore
from iceshelf.tables.objectstore import open_store
from iceshelf.tables.settings import S3Settings
from tests.clients import CatalogEnv
from tests.sql_client import SqlClient

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("name", pa.string()),
        pa.field("price", pa.decimal128(12, 3)),
        pa.field("day", pa.date32()),
        pa.field("at", pa.timestamp("us")),
        pa.field("at_utc", pa.timestamp("us", tz="UTC")),
        pa.field("score", pa.float64()),
        pa.field("ok", pa.bool_()),
    ]
)
ROWS = [
    {"id": 1, "name": "a", "price": Decimal("1.250"), "day": dt.date(2024, 2, 29), "at": dt.datetime(2024, 2, 29, 1, 2, 3, 456789),
     "at_utc": dt.datetime(2024, 2, 29, 1, 2, 3, tzinfo=dt.timezone.utc), "score": 0.5, "ok": True},
    {"id": 2, "name": None, "price": None, "day": None, "at": None, "at_utc": None, "score": None, "ok": None},
]  # fmt: skip


@pytest.fixture
def items(catalog_env: CatalogEnv, namespace: str) -> str:
    catalog_env.catalog().create_table(f"{namespace}.items", SCHEMA).append(pa.Table.from_pylist(ROWS, schema=SCHEMA))
    return namespace


def connect(env: CatalogEnv, schema: str) -> trino.dbapi.Connection:
    url = urlparse(env.url)
    return trino.dbapi.connect(host=url.hostname, port=url.port, user="tester", catalog="default", schema=schema, http_scheme="http")


def test_dbapi_types_parameters_and_show(catalog_env: CatalogEnv, items: str) -> None:
    cursor = connect(catalog_env, items).cursor()
    cursor.execute("SELECT id, name, price, day, at, at_utc, score, ok FROM items ORDER BY id")
    rows = cursor.fetchall()
    assert rows == [[r[c] for c in SCHEMA.names] for r in ROWS]
    assert [(d.name, d.type_code) for d in cursor.description] == [
        ("id", "bigint"), ("name", "varchar"), ("price", "decimal(12,3)"), ("day", "date"), ("at", "timestamp(6)"),
        ("at_utc", "timestamp(6) with time zone"), ("score", "double"), ("ok", "boolean"),
    ]  # fmt: skip

    cursor.execute("SELECT name FROM items WHERE id = ? AND price > ?", (1, Decimal("1.0")))
    assert cursor.fetchall() == [["a"]]
    cursor.execute("SHOW TABLES")
    assert cursor.fetchall() == [["items"]]
    cursor.execute(f"SHOW SCHEMAS LIKE '{items}'")
    assert cursor.fetchall() == [[items]]
    cursor.execute("DESCRIBE items")
    assert [row[:2] for row in cursor.fetchall()][:3] == [["id", "bigint"], ["name", "varchar"], ["price", "decimal(12,3)"]]


def test_dbapi_writes_and_paging(catalog_env: CatalogEnv, items: str) -> None:
    cursor = connect(catalog_env, items).cursor()
    cursor.execute("INSERT INTO items (id, name) SELECT x, 'bulk' FROM UNNEST(sequence(10, 25009)) AS t(x)")
    assert cursor.fetchall() == [[25000]]
    assert cursor.update_type == "INSERT"
    cursor.execute("SELECT id FROM items ORDER BY id")
    ids = [row[0] for row in cursor.fetchall()]  # three pages of 10 000 rows
    assert ids == [1, 2, *range(10, 25010)]
    table = catalog_env.catalog().load_table(f"{items}.items")
    assert table.scan().count() == 25002


@pytest.mark.parametrize(
    "statement, error_name",
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "NOT_SUPPORTED"),
        ('SELECT * FROM "/etc/passwd"', "NOT_SUPPORTED"),
        ("SET SESSION query_max_run_time = '1h'", "NOT_SUPPORTED"),
        ("SELECT frobnicate(1)", "NOT_SUPPORTED"),
        ("SELEC 1", "SYNTAX_ERROR"),
        ("SELECT * FROM no_such_table", "TABLE_NOT_FOUND"),
    ],
)
def test_errors_are_trino_errors(catalog_env: CatalogEnv, items: str, statement: str, error_name: str) -> None:
    cursor = connect(catalog_env, items).cursor()
    with pytest.raises(TrinoUserError) as failed:
        cursor.execute(statement)
        cursor.fetchall()
    assert failed.value.error_name == error_name


# The dialect reads "t$partitions" to guess a Hive table's partition keys; for an Iceberg table whose
# $partitions lacks Trino's ``data`` column it warns that the guessed keys are not columns.
@pytest.mark.filterwarnings("ignore:index key .* was not located")
def test_sqlalchemy_inspect_and_reflect(catalog_env: CatalogEnv, items: str) -> None:
    url = urlparse(catalog_env.url)
    engine = sa.create_engine(f"trino://tester@{url.hostname}:{url.port}/default/{items}")
    try:
        inspector = sa.inspect(engine)
        assert items in inspector.get_schema_names()
        assert inspector.get_table_names(items) == ["items"]
        assert inspector.has_table("items", items) and not inspector.has_table("nope", items)
        columns = inspector.get_columns("items", items)
        assert [c["name"] for c in columns] == SCHEMA.names
        assert [type(c["type"]).__name__ for c in columns] == ["BIGINT", "VARCHAR", "DECIMAL", "DATE", "TIMESTAMP", "TIMESTAMP", "DOUBLE", "BOOLEAN"]
        assert all(c["nullable"] for c in columns)
        reflected = sa.Table("items", sa.MetaData(), schema=items, autoload_with=engine)
        with engine.connect() as connection:
            count = connection.execute(sa.select(sa.func.count()).select_from(reflected).where(reflected.c.ok)).scalar()
            version = connection.execute(sa.text("SELECT version()")).scalar()
        assert count == 1 and version
    finally:
        engine.dispose()


def test_cancel_a_running_statement(catalog_env: CatalogEnv, items: str) -> None:
    cursor = connect(catalog_env, items).cursor()
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            cursor.execute("SELECT count(*) FROM UNNEST(sequence(1, 100000)) a(x) CROSS JOIN UNNEST(sequence(1, 10000000)) b(y) WHERE x + y < 0")
            cursor.fetchall()
            outcome.append(None)
        except BaseException as err:  # noqa: BLE001 - inspected below
            outcome.append(err)

    worker = threading.Thread(target=run)
    worker.start()
    api = SqlClient(catalog_env.url)
    try:
        running = []
        for _ in range(600):
            running = [q for q in api.http.get("/v1/sql/queries", params={"limit": 20}).json()["queries"] if q["state"] == "RUNNING" and "CROSS JOIN" in q["sql"]]
            if running:
                break
            time.sleep(0.05)
        assert running, "the statement never started running"
        cursor.cancel()
        worker.join(timeout=60)
        assert not worker.is_alive()
        assert api.wait(running[0]["query_id"])["state"] == "CANCELLED"
        assert outcome and outcome[0] is not None  # the blocked execute() did not return rows
    finally:
        api.close()


def test_token_recipes_of_docs_sql_md(tmp_path) -> None:
    """docs/sql.md's recipes for a server with authentication on, as written there.

    The ``trino`` client refuses to send credentials over plain HTTP (a ``TrinoAuthError`` before any
    request): against ``http://`` it needs ``allow_insecure_auth=True`` (loopback, or TLS terminated in
    front of Iceshelf), or the token sent as a header; over TLS ``JWTAuthentication`` works unchanged.
    """
    warehouse = str(tmp_path / "warehouse")
    key = PrincipalStore(open_store(warehouse, S3Settings()), cache_s=0).create("me", [Grant.parse("admin:warehouse:*")]).api_key
    server = start_iceshelf(warehouse, tmp_path, {"ICESHELF_AUTH": "on"})
    try:
        url = urlparse(server.url)
        where = dict(host=url.hostname, port=url.port, user="me", catalog="default")

        def select_one(**how) -> list:
            cursor = trino.dbapi.connect(**where, **how).cursor()
            cursor.execute("SELECT 1")
            return cursor.fetchall()

        with pytest.raises(TrinoAuthError, match="TLS/SSL is required"):
            select_one(http_scheme="http", auth=JWTAuthentication(key))
        assert select_one(http_scheme="http", auth=JWTAuthentication(key), allow_insecure_auth=True) == [[1]]
        assert select_one(http_scheme="http", http_headers={"Authorization": f"Bearer {key}"}) == [[1]]
        with pytest.raises(trino.exceptions.HttpError, match="401"):
            select_one(http_scheme="http")
    finally:
        server.stop()
