"""DuckDB 1.5.5's iceberg extension against a real Iceshelf server, on both kinds of warehouse.

DuckDB creates tables by stage-create plus a commit with ``assert-create``, and sends every
other write of a transaction in one ``POST /v1/{prefix}/transactions/commit`` (it does so only
when getConfig advertises that endpoint). Every read below compares exact rows, and every
DuckDB write is read back by pyiceberg (and every pyiceberg write by DuckDB) with identical rows.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest
from pyiceberg.manifest import DataFileContent, FileFormat
from pyiceberg.types import LongType, StringType

from tests.clients import CatalogEnv, unique_name

COLUMNS = ["id", "name", "amount", "score", "flag", "day", "ts", "big"]
DDL = "(id INTEGER, name VARCHAR, amount DECIMAL(10, 2), score DOUBLE, flag BOOLEAN, day DATE, ts TIMESTAMP, big BIGINT)"
ROWS = [
    (1, "one", Decimal("1.10"), 1.5, True, dt.date(2024, 1, 1), dt.datetime(2024, 1, 1, 1, 2, 3, 456789), 10_000_000_001),
    (2, "two", Decimal("-2.20"), -2.25, False, dt.date(1999, 12, 31), dt.datetime(1999, 12, 31, 23, 59, 59), -2),
    (3, None, None, None, None, None, None, None),
]


def sql_literal(row: tuple) -> str:
    def one(value) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return "'" + value.replace("'", "''") + "'"
        if isinstance(value, dt.datetime):
            return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
        if isinstance(value, dt.date):
            return f"DATE '{value.isoformat()}'"
        return str(value)

    return "(" + ", ".join(one(v) for v in row) + ")"


def duck_rows(con: duckdb.DuckDBPyConnection, table: str, at: int | None = None) -> list[tuple]:
    version = f" AT (VERSION => {at})" if at is not None else ""
    return con.execute(f"SELECT * FROM {table}{version} ORDER BY id").fetchall()


def py_rows(catalog, ident: str, columns: list[str], snapshot_id: int | None = None) -> list[tuple]:
    """The table's rows as pyiceberg reads them, as tuples in ``columns`` order, sorted by id."""
    table = catalog.load_table(ident)
    arrow = table.scan(snapshot_id=snapshot_id).to_arrow()
    assert arrow.column_names == columns
    return sorted((tuple(r[c] for c in columns) for r in arrow.to_pylist()), key=lambda r: r[0])


@pytest.fixture
def duck(catalog_env: CatalogEnv):
    con = catalog_env.duckdb()
    yield con
    con.close()


@pytest.fixture
def schema(duck: duckdb.DuckDBPyConnection) -> str:
    """A namespace created by DuckDB's ``CREATE SCHEMA``."""
    name = unique_name("duck")
    duck.execute(f"CREATE SCHEMA lake.{name}")
    return name


def test_create_schema_is_a_namespace(catalog_env: CatalogEnv, duck, schema: str) -> None:
    catalog = catalog_env.catalog()
    assert (schema,) in catalog.list_namespaces()
    assert catalog.load_namespace_properties(schema) is not None
    schemas = {r[0] for r in duck.execute("SELECT schema_name FROM information_schema.schemata WHERE catalog_name = 'lake'").fetchall()}
    assert schema in schemas
    with pytest.raises(duckdb.Error):
        duck.execute(f"CREATE SCHEMA lake.{schema}")
    duck.execute(f"DROP SCHEMA lake.{schema}")
    assert (schema,) not in catalog.list_namespaces()


@pytest.mark.parametrize("format_version", [2, 3])
def test_insert_update_delete_and_time_travel(catalog_env: CatalogEnv, duck, schema: str, format_version: int) -> None:
    catalog = catalog_env.catalog()
    name = f"lake.{schema}.t"
    ident = f"{schema}.t"
    duck.execute(f"CREATE TABLE {name} {DDL} WITH ('format-version' = '{format_version}')")
    assert duck_rows(duck, name) == []
    assert catalog.load_table(ident).metadata.format_version == format_version
    assert py_rows(catalog, ident, COLUMNS) == []

    history: list[list[tuple]] = []

    duck.execute(f"INSERT INTO {name} VALUES " + ", ".join(sql_literal(r) for r in ROWS))
    expected = list(ROWS)
    assert duck_rows(duck, name) == expected
    assert py_rows(catalog, ident, COLUMNS) == expected
    history.append(expected)

    duck.execute(f"UPDATE {name} SET name = 'TWO', amount = amount * 10 WHERE id = 2")
    expected = [ROWS[0], (2, "TWO", Decimal("-22.00"), *ROWS[1][3:]), ROWS[2]]
    assert duck_rows(duck, name) == expected
    assert py_rows(catalog, ident, COLUMNS) == expected
    history.append(expected)

    duck.execute(f"DELETE FROM {name} WHERE id = 1")
    expected = expected[1:]
    assert duck_rows(duck, name) == expected
    assert py_rows(catalog, ident, COLUMNS) == expected
    history.append(expected)

    # One snapshot per statement, in order; each one reads back as it was, in both clients.
    snapshots = duck.execute(
        f"SELECT snapshot_id, sequence_number FROM iceberg_snapshots({name}) ORDER BY sequence_number"
    ).fetchall()
    table = catalog.load_table(ident)
    assert [s[0] for s in snapshots] == [s.snapshot_id for s in table.metadata.snapshots]
    assert len(snapshots) == 3
    assert table.metadata.current_snapshot_id == snapshots[-1][0]
    for (snapshot_id, _), rows in zip(snapshots, history):
        assert duck_rows(duck, name, at=snapshot_id) == rows
        assert py_rows(catalog, ident, COLUMNS, snapshot_id=snapshot_id) == rows

    # What DuckDB wrote for UPDATE/DELETE: position-delete files in v2, deletion vectors (Puffin)
    # in v3. pyiceberg 0.12 applied both above, with identical rows.
    delete_files = {d.file_path: d for task in table.scan().plan_files() for d in task.delete_files}
    assert delete_files, "UPDATE/DELETE wrote no delete files"
    assert {d.content for d in delete_files.values()} == {DataFileContent.POSITION_DELETES}
    assert {d.file_format for d in delete_files.values()} == {FileFormat.PARQUET if format_version == 2 else FileFormat.PUFFIN}

    # A fresh DuckDB session (nothing cached) reads the same.
    with catalog_env.duckdb() as other:
        assert duck_rows(other, name) == expected
        assert duck_rows(other, name, at=snapshots[0][0]) == history[0]


def test_two_table_transaction_commits_both_once(catalog_env: CatalogEnv, duck, schema: str) -> None:
    catalog = catalog_env.catalog()
    a, b = f"lake.{schema}.a", f"lake.{schema}.b"
    duck.execute(f"CREATE TABLE {a} (id BIGINT, v VARCHAR)")
    duck.execute(f"CREATE TABLE {b} (id BIGINT, v VARCHAR)")
    duck.execute(f"INSERT INTO {a} VALUES (1, 'a1')")
    duck.execute(f"INSERT INTO {b} VALUES (1, 'b1')")
    before = {t: catalog.load_table(f"{schema}.{t}") for t in ("a", "b")}

    duck.execute("BEGIN")
    duck.execute(f"INSERT INTO {a} VALUES (2, 'a2')")
    duck.execute(f"INSERT INTO {b} VALUES (2, 'b2'), (3, 'b3')")
    assert duck_rows(duck, a) == [(1, "a1"), (2, "a2")]  # the transaction sees its own writes
    duck.execute("COMMIT")

    with catalog_env.duckdb() as other:  # a fresh session: nothing cached
        assert duck_rows(other, a) == [(1, "a1"), (2, "a2")]
        assert duck_rows(other, b) == [(1, "b1"), (2, "b2"), (3, "b3")]
    assert py_rows(catalog, f"{schema}.a", ["id", "v"]) == [(1, "a1"), (2, "a2")]
    assert py_rows(catalog, f"{schema}.b", ["id", "v"]) == [(1, "b1"), (2, "b2"), (3, "b3")]
    for t, old in before.items():
        new = catalog.load_table(f"{schema}.{t}")
        assert len(new.metadata.snapshots) == len(old.metadata.snapshots) + 1, t
        assert new.metadata.current_snapshot().parent_snapshot_id == old.metadata.current_snapshot_id, t
        # Exactly one commit: the new metadata's log ends with the old metadata file.
        assert new.metadata.metadata_log[-1].metadata_file == old.metadata_location, t
        assert len(new.metadata.metadata_log) == len(old.metadata.metadata_log) + 1, t


def test_rolled_back_transaction_changes_nothing(catalog_env: CatalogEnv, duck, schema: str) -> None:
    catalog = catalog_env.catalog()
    a, b = f"lake.{schema}.a", f"lake.{schema}.b"
    duck.execute(f"CREATE TABLE {a} (id BIGINT)")
    duck.execute(f"CREATE TABLE {b} (id BIGINT)")
    duck.execute(f"INSERT INTO {a} VALUES (1)")
    duck.execute(f"INSERT INTO {b} VALUES (1)")
    locations = {t: catalog.load_table(f"{schema}.{t}").metadata_location for t in ("a", "b")}

    duck.execute("BEGIN")
    duck.execute(f"INSERT INTO {a} VALUES (2)")
    duck.execute(f"DELETE FROM {b} WHERE id = 1")
    duck.execute(f"INSERT INTO {b} VALUES (20)")
    duck.execute("ROLLBACK")

    assert duck_rows(duck, a) == [(1,)]
    assert duck_rows(duck, b) == [(1,)]
    for t, location in locations.items():
        assert catalog.load_table(f"{schema}.{t}").metadata_location == location, t
        assert py_rows(catalog, f"{schema}.{t}", ["id"]) == [(1,)]


def test_conflicting_transaction_changes_neither_table(catalog_env: CatalogEnv, duck, schema: str) -> None:
    """A commit whose second table moved meanwhile under a delete fails as a whole: the first table is unchanged too."""
    catalog = catalog_env.catalog()
    a, b = f"lake.{schema}.a", f"lake.{schema}.b"
    duck.execute(f"CREATE TABLE {a} (id BIGINT)")
    duck.execute(f"CREATE TABLE {b} (id BIGINT)")
    duck.execute(f"INSERT INTO {a} VALUES (1)")
    duck.execute(f"INSERT INTO {b} VALUES (1)")
    location_a = catalog.load_table(f"{schema}.a").metadata_location

    duck.execute("BEGIN")
    duck.execute(f"INSERT INTO {a} VALUES (2)")
    duck.execute(f"DELETE FROM {b} WHERE id = 1")  # not a pure append: a moved head is a real conflict
    catalog.load_table(f"{schema}.b").append(pa.table({"id": pa.array([99], pa.int64())}))  # a concurrent writer
    with pytest.raises(duckdb.Error, match="CommitFailedException"):
        duck.execute("COMMIT")

    assert catalog.load_table(f"{schema}.a").metadata_location == location_a
    assert py_rows(catalog, f"{schema}.a", ["id"]) == [(1,)]
    assert py_rows(catalog, f"{schema}.b", ["id"]) == [(1,), (99,)]
    with catalog_env.duckdb() as other:  # a fresh session: nothing cached
        assert duck_rows(other, a) == [(1,)]
        assert duck_rows(other, b) == [(1,), (99,)]


def test_transaction_of_appends_is_rebased_over_a_concurrent_append(catalog_env: CatalogEnv, duck, schema: str) -> None:
    """Where the table opted in, pure appends are rebased in the server: a concurrent append to it is no
    conflict (by default it is one: ``tests/test_commit_semantics.py``)."""
    catalog = catalog_env.catalog()
    a, b = f"lake.{schema}.a", f"lake.{schema}.b"
    duck.execute(f"CREATE TABLE {a} (id BIGINT)")
    duck.execute(f"CREATE TABLE {b} (id BIGINT)")
    with catalog.load_table(f"{schema}.b").transaction() as opting_in:
        opting_in.set_properties({"iceshelf.commit.rebase-appends": "true"})
    duck.execute(f"INSERT INTO {b} VALUES (1)")

    duck.execute("BEGIN")
    duck.execute(f"INSERT INTO {a} VALUES (2)")
    duck.execute(f"INSERT INTO {b} VALUES (2)")
    catalog.load_table(f"{schema}.b").append(pa.table({"id": pa.array([99], pa.int64())}))  # a concurrent writer
    duck.execute("COMMIT")

    assert py_rows(catalog, f"{schema}.a", ["id"]) == [(2,)]
    table_b = catalog.load_table(f"{schema}.b")
    assert py_rows(catalog, f"{schema}.b", ["id"]) == [(1,), (2,), (99,)]
    head = table_b.current_snapshot()
    assert head.summary["total-records"] == "3"
    assert table_b.metadata.snapshot_by_id(head.parent_snapshot_id).summary["total-records"] == "2"
    with catalog_env.duckdb() as other:  # a fresh session: nothing cached
        assert duck_rows(other, b) == [(1,), (2,), (99,)]


def test_add_column(catalog_env: CatalogEnv, duck, schema: str) -> None:
    catalog = catalog_env.catalog()
    name, ident = f"lake.{schema}.t", f"{schema}.t"
    duck.execute(f"CREATE TABLE {name} (id INTEGER, name VARCHAR)")
    duck.execute(f"INSERT INTO {name} VALUES (1, 'a'), (2, 'b')")
    old_schema_id = catalog.load_table(ident).metadata.current_schema_id

    duck.execute(f"ALTER TABLE {name} ADD COLUMN extra BIGINT")
    assert duck_rows(duck, name) == [(1, "a", None), (2, "b", None)]
    duck.execute(f"INSERT INTO {name} VALUES (3, 'c', 30)")
    assert duck_rows(duck, name) == [(1, "a", None), (2, "b", None), (3, "c", 30)]

    table = catalog.load_table(ident)
    assert table.metadata.current_schema_id != old_schema_id
    field = table.schema().find_field("extra")
    assert field.field_type == LongType() and not field.required
    assert [f.name for f in table.schema().fields] == ["id", "name", "extra"]
    assert py_rows(catalog, ident, ["id", "name", "extra"]) == [(1, "a", None), (2, "b", None), (3, "c", 30)]

    # And pyiceberg's schema change is seen by DuckDB.
    with table.update_schema() as update:
        update.add_column("note", StringType())
    table = catalog.load_table(ident)
    table.append(
        pa.table(
            {"id": pa.array([4], pa.int32()), "name": ["d"], "extra": pa.array([40], pa.int64()), "note": ["n"]},
            schema=table.schema().as_arrow(),
        )
    )
    assert duck_rows(duck, name) == [(1, "a", None, None), (2, "b", None, None), (3, "c", 30, None), (4, "d", 40, "n")]


def test_rename_table(catalog_env: CatalogEnv, duck, schema: str) -> None:
    """DuckDB 1.5.5's iceberg extension supports ``ALTER TABLE ... RENAME TO`` (via renameTable)."""
    catalog = catalog_env.catalog()
    duck.execute(f"CREATE TABLE lake.{schema}.old (id INTEGER)")
    duck.execute(f"INSERT INTO lake.{schema}.old VALUES (1), (2)")
    location = catalog.load_table(f"{schema}.old").metadata_location

    duck.execute(f"ALTER TABLE lake.{schema}.old RENAME TO new")
    assert duck_rows(duck, f"lake.{schema}.new") == [(1,), (2,)]
    with pytest.raises(duckdb.CatalogException):
        duck.execute(f"SELECT * FROM lake.{schema}.old")
    assert not catalog.table_exists(f"{schema}.old")
    assert catalog.load_table(f"{schema}.new").metadata_location == location
    assert py_rows(catalog, f"{schema}.new", ["id"]) == [(1,), (2,)]
    assert catalog.list_tables(schema) == [(schema, "new")]

    # The renamed table stays writable; a rename by pyiceberg is seen by DuckDB.
    duck.execute(f"INSERT INTO lake.{schema}.new VALUES (3)")
    catalog.rename_table(f"{schema}.new", f"{schema}.newer")
    with catalog_env.duckdb() as other:  # a fresh session: nothing cached
        assert duck_rows(other, f"lake.{schema}.newer") == [(1,), (2,), (3,)]
        with pytest.raises(duckdb.CatalogException):
            other.execute(f"SELECT * FROM lake.{schema}.new")

    duck.execute(f"DROP TABLE lake.{schema}.newer")  # DuckDB drops through the catalog too
    assert not catalog.table_exists(f"{schema}.newer")
    assert catalog.list_tables(schema) == []


def test_pyiceberg_written_data_read_by_duckdb(catalog_env: CatalogEnv, duck, namespace: str) -> None:
    catalog = catalog_env.catalog()
    arrow_schema = pa.schema(
        [
            pa.field("id", pa.int64()),
            pa.field("name", pa.string()),
            pa.field("amount", pa.decimal128(10, 2)),
            pa.field("day", pa.date32()),
            pa.field("ts", pa.timestamp("us")),
        ]
    )
    table = catalog.create_table(f"{namespace}.p", arrow_schema)
    name = f"lake.{namespace}.p"
    assert duck_rows(duck, name) == []

    rows = [
        (1, "a", Decimal("1.00"), dt.date(2020, 2, 29), dt.datetime(2020, 2, 29, 12, 0, 0, 1)),
        (2, "b", Decimal("-0.50"), dt.date(1970, 1, 1), dt.datetime(1970, 1, 1)),
        (3, None, None, None, None),
    ]
    columns = [f.name for f in arrow_schema]
    table.append(pa.Table.from_pylist([dict(zip(columns, r)) for r in rows], schema=arrow_schema))
    first_snapshot = catalog.load_table(f"{namespace}.p").metadata.current_snapshot_id
    assert duck_rows(duck, name) == rows

    table = catalog.load_table(f"{namespace}.p")
    table.delete("id = 2")
    assert duck_rows(duck, name) == [rows[0], rows[2]]
    assert py_rows(catalog, f"{namespace}.p", columns) == [rows[0], rows[2]]
    assert duck_rows(duck, name, at=first_snapshot) == rows

    table = catalog.load_table(f"{namespace}.p")
    table.append(pa.Table.from_pylist([dict(zip(columns, (4, "d", Decimal("4.44"), None, None)))], schema=arrow_schema))
    expected = [rows[0], rows[2], (4, "d", Decimal("4.44"), None, None)]
    assert duck_rows(duck, name) == expected

    # DuckDB writes on top of pyiceberg's history; pyiceberg reads them back.
    duck.execute(f"INSERT INTO {name} VALUES (5, 'e', 5.55, DATE '2025-05-05', TIMESTAMP '2025-05-05 05:05:05')")
    duck.execute(f"DELETE FROM {name} WHERE id = 3")
    expected = [rows[0], (4, "d", Decimal("4.44"), None, None), (5, "e", Decimal("5.55"), dt.date(2025, 5, 5), dt.datetime(2025, 5, 5, 5, 5, 5))]
    assert duck_rows(duck, name) == expected
    assert py_rows(catalog, f"{namespace}.p", columns) == expected


def test_default_attach_on_s3(s3_env: CatalogEnv) -> None:
    """``CatalogEnv.duckdb()`` as is, on SeaweedFS: write and read data through the default ATTACH."""
    con = s3_env.duckdb()
    try:
        schema = unique_name("duck")
        con.execute(f"CREATE SCHEMA lake.{schema}")
        con.execute(f"CREATE TABLE lake.{schema}.t (id INTEGER)")
        con.execute(f"INSERT INTO lake.{schema}.t VALUES (1)")
        assert duck_rows(con, f"lake.{schema}.t") == [(1,)]
    finally:
        con.close()


def test_create_table_as_and_create_then_insert_in_one_transaction(catalog_env: CatalogEnv, duck, schema: str) -> None:
    """DuckDB writes a staged table's first manifests before its create commits: the location must be ready."""
    duck.execute(f"CREATE TABLE lake.{schema}.squares AS SELECT range AS id, range * range AS y FROM range(5)")
    assert duck_rows(duck, f"lake.{schema}.squares") == [(i, i * i) for i in range(5)]
    duck.execute("BEGIN")
    duck.execute(f"CREATE TABLE lake.{schema}.fresh (a INTEGER)")
    duck.execute(f"INSERT INTO lake.{schema}.fresh VALUES (1), (2)")
    duck.execute("COMMIT")
    assert py_rows(catalog_env.catalog(), f"{schema}.fresh", ["a"]) == [(1,), (2,)]
