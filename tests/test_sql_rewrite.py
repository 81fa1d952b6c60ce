"""Pure tables of cases for the SQL layer: statement -> DuckDB SQL, statement -> refusal, and the
Trino type mapping. No I/O: the catalog is a dict."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pytest

from iceshelf.sql.check import check
from iceshelf.sql.errors import SqlRefusedError
from iceshelf.sql.history import new_query_id
from iceshelf.sql.rewrite import Condition, Plan, TableInfo, Virtual, rewrite
from iceshelf.sql.types import rows_json, trino_type
from iceshelf.tables.errors import NoSuchTableError
from iceshelf.tables.names import Identifier

T = "file:///w/ns/t/metadata/00002.metadata.json"
U = "s3://bucket/ns/u/metadata/00001.metadata.json"
NESTED = "file:///w/a/b/t/metadata/00000.metadata.json"
OTHER = "s3://other/ns/t/metadata/00003.metadata.json"


class DictCatalog:
    default_warehouse = "main"
    tables = {
        ("main", ("ns",), "t"): TableInfo(T, frozenset({11, 22}), ((1_700_000_000_000, 11), (1_700_000_100_000, 22)), {"main": 22, "v1": 11}),
        ("main", ("ns",), "u"): TableInfo(U),
        ("main", ("a", "b"), "t"): TableInfo(NESTED),
        ("wh2", ("ns",), "t"): TableInfo(OTHER, frozenset({33}), ((5, 33),)),
    }

    def is_warehouse(self, name: str) -> bool:
        return name in ("main", "wh2")

    def table(self, warehouse: str, ident: Identifier) -> TableInfo | None:
        return self.tables.get((warehouse, ident.namespace, ident.name))


def plan(sql: str, dialect: str = "duckdb", namespace: str | None = "ns", read_only: bool = False) -> Plan:
    levels = tuple(namespace.split(".")) if namespace else None
    return rewrite(check(sql, dialect, read_only=read_only, namespace=namespace), DictCatalog(), levels)


def scan(location: str, alias: str = '"t"', snapshot: int | None = None) -> str:
    travel = f", snapshot_from_id = {snapshot}" if snapshot is not None else ""
    return f"ICEBERG_SCAN('{location}'{travel}) AS {alias}"


REWRITES = [
    # names: default namespace, namespace.table, nested namespaces, warehouse.namespace.table
    ("duckdb", "SELECT * FROM t", f"SELECT * FROM {scan(T)}"),
    ("duckdb", "SELECT x FROM ns.t WHERE ns.t.y > 1", f"SELECT x FROM {scan(T)} WHERE t.y > 1"),
    ("duckdb", "SELECT * FROM a.b.t", f"SELECT * FROM {scan(NESTED)}"),
    ("duckdb", "SELECT * FROM wh2.ns.t AS o JOIN main.ns.u USING (id)", f"SELECT * FROM {scan(OTHER, 'o')} JOIN {scan(U, chr(34) + 'u' + chr(34))} USING (id)"),
    ("duckdb", "WITH t AS (SELECT 1 AS x) SELECT * FROM t", "WITH t AS (SELECT 1 AS x) SELECT * FROM t"),
    ("duckdb", "SELECT * FROM range(3)", "SELECT * FROM RANGE(0, 3)"),
    # time travel, each dialect's form
    ("trino", "SELECT * FROM ns.t FOR VERSION AS OF 11", f"SELECT * FROM {scan(T, snapshot=11)}"),
    ("athena", "SELECT * FROM t FOR VERSION AS OF 'v1'", f"SELECT * FROM {scan(T, snapshot=11)}"),
    ("trino", "SELECT * FROM t FOR TIMESTAMP AS OF TIMESTAMP '2023-11-14 22:14:00 UTC'", f"SELECT * FROM {scan(T, snapshot=11)}"),
    ("trino", "SELECT * FROM t FOR TIMESTAMP AS OF TIMESTAMP '2023-11-14 23:16:00 +01:00'", f"SELECT * FROM {scan(T, snapshot=22)}"),
    ("spark", "SELECT * FROM ns.t VERSION AS OF 22", f"SELECT * FROM {scan(T, snapshot=22)}"),
    ("spark", "SELECT * FROM ns.t TIMESTAMP AS OF '2023-11-14 22:15:00'", f"SELECT * FROM {scan(T, snapshot=22)}"),
    ("duckdb", "SELECT * FROM t AT (VERSION => 11)", f"SELECT * FROM {scan(T, snapshot=11)}"),
    ("duckdb", "SELECT * FROM t AT (TIMESTAMP => TIMESTAMP '2023-11-14 22:13:21')", f"SELECT * FROM {scan(T, snapshot=11)}"),
    # dialects transpiled
    ("trino", "SELECT approx_distinct(x), date_add('day', 1, d) FROM t", f'SELECT APPROX_COUNT_DISTINCT(x) AS "_col0", d + INTERVAL 1 DAY AS "_col1" FROM {scan(T)}'),
    # Trino's names for unnamed result columns
    ("trino", "SELECT x, t.y, count(*), 1 AS one FROM t GROUP BY 1, 2 UNION SELECT 1, 2, 3, 4", f'SELECT x, t.y, COUNT(*) AS "_col2", 1 AS one FROM {scan(T)} GROUP BY 1, 2 UNION SELECT 1, 2, 3, 4'),
    ("duckdb", "SELECT count(*) FROM t", f"SELECT COUNT(*) FROM {scan(T)}"),
    ("spark", "SELECT `x` FROM ns.t LIMIT 1", f"SELECT \"x\" FROM {scan(T)} LIMIT 1"),
    # parameters as the trino client sends them
    ("trino", "EXECUTE IMMEDIATE 'SELECT * FROM t WHERE k = ? AND n > ?' USING 'it''s', 3", f"SELECT * FROM {scan(T)} WHERE k = 'it''s' AND n > 3"),
    # EXPLAIN
    ("duckdb", "EXPLAIN SELECT * FROM t", f"EXPLAIN SELECT * FROM {scan(T)}"),
    # writes go to the ATTACHed catalog, reads of the same table stay pinned scans
    ("duckdb", "INSERT INTO ns.t SELECT * FROM ns.u", f'INSERT INTO "iceshelf_main"."ns"."t" SELECT * FROM {scan(U, chr(34) + "u" + chr(34))}'),
    ("duckdb", "DELETE FROM t WHERE id IN (SELECT id FROM u)", f'DELETE FROM "iceshelf_main"."ns"."t" WHERE id IN (SELECT id FROM {scan(U, chr(34) + "u" + chr(34))})'),
    ("trino", "UPDATE wh2.ns.t SET x = 1", 'UPDATE "iceshelf_wh2"."ns"."t" SET x = 1'),
    ("duckdb", "CREATE TABLE ns.new AS SELECT 1 AS x", 'INSERT INTO "iceshelf_main"."ns"."new" SELECT 1 AS x'),
]


@pytest.mark.parametrize("dialect, sql, expected", REWRITES, ids=[f"{d}:{s[:50]}" for d, s, _ in REWRITES])
def test_rewrite(dialect: str, sql: str, expected: str) -> None:
    assert plan(sql, dialect).statements[-1] == expected


VIRTUALS = [
    ("trino", 'SELECT * FROM "t$snapshots"', Virtual("main", "snapshots", Identifier(("ns",), "t"), T), '"t$snapshots"'),
    ("trino", 'SELECT * FROM ns."t$history"', Virtual("main", "history", Identifier(("ns",), "t"), T), '"t$history"'),
    ("athena", 'SELECT * FROM "ns"."t$files"', Virtual("main", "files", Identifier(("ns",), "t"), T), '"t$files"'),
    ("spark", "SELECT * FROM ns.t.manifests", Virtual("main", "manifests", Identifier(("ns",), "t"), T), '"manifests"'),
    ("spark", "SELECT * FROM wh2.ns.t.refs", Virtual("wh2", "refs", Identifier(("ns",), "t"), OTHER), '"refs"'),
    ("duckdb", 'SELECT * FROM a.b."t$partitions"', Virtual("main", "partitions", Identifier(("a", "b"), "t"), NESTED), '"t$partitions"'),
    ("trino", "SELECT * FROM information_schema.columns", Virtual("main", "information_schema.columns"), '"columns"'),
    ("trino", "SELECT * FROM wh2.information_schema.tables", Virtual("wh2", "information_schema.tables"), '"tables"'),
    ("trino", "SELECT * FROM system.jdbc.columns", Virtual("main", "system.jdbc.columns"), '"columns"'),
    ("trino", "SELECT * FROM system.metadata.catalogs", Virtual("main", "system.metadata.catalogs"), '"catalogs"'),
]


@pytest.mark.parametrize("dialect, sql, virtual, alias", VIRTUALS, ids=[s for _, s, _, _ in VIRTUALS])
def test_metadata_and_information_schema_tables(dialect: str, sql: str, virtual: Virtual, alias: str) -> None:
    planned = plan(sql, dialect)
    assert planned.virtuals == {"__iceshelf_0": virtual}
    assert planned.statements == (f'SELECT * FROM "__iceshelf_0" AS {alias}',)


SHOW = [
    ("SHOW SCHEMAS", 'SELECT schema_name AS "Schema" FROM "__iceshelf_0" AS "schemata" ORDER BY 1', "information_schema.schemata"),
    ("SHOW TABLES", 'SELECT table_name AS "Table" FROM "__iceshelf_0" AS "tables" WHERE table_schema = \'ns\' ORDER BY 1', "information_schema.tables"),
    ("SHOW TABLES FROM a LIKE 'x%'", "SELECT table_name AS \"Table\" FROM \"__iceshelf_0\" AS \"tables\" WHERE table_schema = 'a' AND table_name LIKE 'x%' ORDER BY 1", "information_schema.tables"),
    ("DESCRIBE ns.t", 'SELECT column_name AS "Column", data_type AS "Type", \'\' AS "Extra", comment AS "Comment" FROM "__iceshelf_0" AS "columns" WHERE table_schema = \'ns\' AND table_name = \'t\' ORDER BY ordinal_position', "information_schema.columns"),
    ("SHOW COLUMNS FROM t", 'SELECT column_name AS "Column", data_type AS "Type", \'\' AS "Extra", comment AS "Comment" FROM "__iceshelf_0" AS "columns" WHERE table_schema = \'ns\' AND table_name = \'t\' ORDER BY ordinal_position', "information_schema.columns"),
]


@pytest.mark.parametrize("sql, expected, kind", SHOW, ids=[s for s, _, _ in SHOW])
def test_show_statements_read_information_schema(sql: str, expected: str, kind: str) -> None:
    planned = plan(sql, "trino")
    assert planned.statements == (expected,)
    assert planned.virtuals["__iceshelf_0"].kind == kind


FILTERS = [
    ("SELECT table_name FROM information_schema.tables WHERE table_schema = 'ns' AND table_type = 'BASE TABLE'", (Condition("schema", "ns"),)),
    ('SELECT * FROM "information_schema"."columns" WHERE "table_schema" = \'a.b\' AND \'t\' = "table_name"', (Condition("schema", "a.b"), Condition("table", "t"))),
    ("SELECT schema_name FROM information_schema.schemata WHERE schema_name = 'ns'", (Condition("schema", "ns"),)),
    ("SELECT * FROM information_schema.tables WHERE table_schema = 'ns' OR table_name = 'x'", ()),
    ("SELECT * FROM information_schema.tables AS x JOIN information_schema.columns AS c USING (table_name) WHERE table_schema = 'ns'", ()),
    ("SELECT * FROM information_schema.tables WHERE table_schema LIKE 'n%'", (Condition("schema", "n%", like=True),)),
    # what the Trino JDBC driver's DatabaseMetaData.getColumns sends
    ("SELECT TABLE_CAT, COLUMN_NAME FROM system.jdbc.columns WHERE TABLE_CAT = 'main' AND TABLE_SCHEM LIKE 'n\\_s' ESCAPE '\\' "
     "AND TABLE_NAME LIKE '%' ESCAPE '\\' ORDER BY TABLE_CAT, ORDINAL_POSITION",
     (Condition("catalog", "main"), Condition("schema", "n\\_s", like=True, escape="\\"), Condition("table", "%", like=True, escape="\\"))),
    ("SELECT * FROM system.jdbc.tables WHERE TABLE_TYPE IN ('TABLE') AND upper(TABLE_NAME) = 'T'", ()),
]  # fmt: skip


@pytest.mark.parametrize("sql, filters", FILTERS, ids=[s[:70] for s, _ in FILTERS])
def test_information_schema_reads_only_what_the_where_selects(sql: str, filters: tuple) -> None:
    assert [v.filters for v in plan(sql, "trino").virtuals.values()][0] == filters


def test_write_kinds_and_ctas_plan() -> None:
    assert plan("SELECT 1").statement.update_type is None
    assert [plan(s).statement.update_type for s in ("INSERT INTO t VALUES (1)", "DELETE FROM t", "UPDATE t SET x = 1")] == ["INSERT", "DELETE", "UPDATE"]
    ctas = plan("CREATE TABLE ns.new AS SELECT * FROM t")
    assert ctas.statement.update_type == "CREATE TABLE"
    assert ctas.create == ('"iceshelf_main"."ns"."new"', f"SELECT * FROM {scan(T)}")
    assert ctas.writes == {"main"}
    assert plan("SELECT * FROM t FOR VERSION AS OF 11", "trino").scans[0].snapshot_id == 11


#: Everything that must not run, in every dialect and quoting: file access, engine state, other statements.
FILE_AND_ENGINE_ATTACKS = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM READ_CSV_AUTO('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_parquet('s3://other-bucket/x.parquet')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM '/etc/passwd'",
    'SELECT * FROM "/etc/passwd"',
    "SELECT * FROM ns.\"/etc/passwd\"",
    "SELECT * FROM 'data.csv'",
    "SELECT * FROM iceberg_scan('file:///etc/x.metadata.json')",
    "SELECT * FROM query('SELECT 1')",
    "SELECT * FROM duckdb_secrets()",
    "SELECT getenv('HOME')",
    "SELECT GetEnv('AWS_SECRET_ACCESS_KEY')",
    "SELECT current_setting('allowed_directories')",
    "SELECT (SELECT content FROM read_text('/etc/passwd'))",
    "WITH x AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM x",
    "ATTACH '/tmp/x.db' AS x",
    "ATTACH 'default' AS lake (TYPE iceberg)",
    "DETACH lake",
    "COPY (SELECT 1) TO '/tmp/out.csv'",
    "COPY t TO '/tmp/out.parquet'",
    "EXPORT DATABASE '/tmp/x'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "FORCE INSTALL x FROM 'http://example.com'",
    "SET enable_external_access = true",
    "SET GLOBAL memory_limit = '100GB'",
    "RESET lock_configuration",
    "PRAGMA database_list",
    "CALL pragma_version()",
    "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 's')",
    "CREATE VIEW v AS SELECT 1",
    "CREATE TEMP TABLE x AS SELECT 1",
    "CREATE OR REPLACE TABLE ns.x AS SELECT 1",
    "CREATE TABLE ns.x (a INT)",
    "DROP TABLE ns.t",
    "ALTER TABLE ns.t ADD COLUMN y INT",
    "USE ns",
    "BEGIN",
    "CHECKPOINT",
    "VACUUM",
    "SELECT 1; SELECT 2",
    "SELECT 1; COPY (SELECT 1) TO '/tmp/x'",
    "EXPLAIN ANALYZE DELETE FROM t",
    "INSERT INTO ns.t SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM t WHERE x = ?",
]


@pytest.mark.parametrize("dialect", ["duckdb", "trino", "spark"])
@pytest.mark.parametrize("sql", FILE_AND_ENGINE_ATTACKS)
def test_refused(sql: str, dialect: str) -> None:
    with pytest.raises(SqlRefusedError):
        plan(sql, dialect)


REFUSALS = [
    ("trino", "SELECT my_udf(x) FROM t", "no known DuckDB translation"),
    ("spark", "SELECT some_spark_only_fn(x) FROM t", "no known DuckDB translation"),
    ("duckdb", "SELECT * FROM t FOR VERSION AS OF 999", "no snapshot 999"),
    ("trino", "SELECT * FROM t FOR VERSION AS OF 'nope'", "no branch or tag 'nope'"),
    ("trino", "SELECT * FROM t FOR TIMESTAMP AS OF TIMESTAMP '2000-01-01 00:00:00 UTC'", "had no snapshot"),
    ("trino", "SELECT * FROM t FOR TIMESTAMP AS OF current_timestamp", "timestamp literal"),
    ("trino", 'SELECT * FROM "t$snapshots" FOR VERSION AS OF 11', "metadata tables"),
    ("trino", 'SELECT * FROM "t$nope"', "Unknown metadata table"),
    ("duckdb", "INSERT INTO a.b.t VALUES (1)", "nested namespaces"),
    ("duckdb", "CREATE TABLE ns.t AS SELECT 1", "already exists"),
    ("duckdb", "SELECT 1 +", "Syntax error"),
    # A misspelt keyword parses as a bare column alias: still a syntax error, and where it is.
    ("trino", "SELEC kind FROM t", "Syntax error"),
    ("duckdb", "SELEC kind", "Syntax error: 'SELEC' does not start a SQL statement. Line 1, Col: 1."),
    ("trino", "\n  foo", "Syntax error: 'foo' does not start a SQL statement. Line 2, Col: 3."),
    ("duckdb", "", "Exactly one"),
    ("postgres", "SELECT 1", "Unknown dialect"),
]


@pytest.mark.parametrize("dialect, sql, message", REFUSALS, ids=[s or "empty" for _, s, _ in REFUSALS])
def test_refusal_messages(dialect: str, sql: str, message: str) -> None:
    with pytest.raises(SqlRefusedError, match=message):
        plan(sql, dialect)


def test_writes_refused_when_read_only() -> None:
    for sql in ("INSERT INTO t VALUES (1)", "DELETE FROM t", "UPDATE t SET x = 1", "CREATE TABLE ns.n AS SELECT 1"):
        with pytest.raises(SqlRefusedError, match="read-only"):
            plan(sql, read_only=True)
    assert plan("SELECT * FROM t", read_only=True).statement.update_type is None


def test_unknown_names() -> None:
    with pytest.raises(NoSuchTableError):
        plan("SELECT * FROM ns.missing")
    with pytest.raises(NoSuchTableError):
        plan("UPDATE ns.missing SET x = 1")
    with pytest.raises(SqlRefusedError, match="needs a namespace"):
        plan("SELECT * FROM t", namespace=None)


TYPES = [
    (pa.bool_(), "boolean", "boolean"),
    (pa.int32(), "integer", "integer"),
    (pa.int64(), "bigint", "bigint"),
    (pa.float32(), "real", "real"),
    (pa.float64(), "double", "double"),
    (pa.decimal128(10, 2), "decimal(10,2)", "decimal"),
    (pa.string(), "varchar", "varchar"),
    (pa.large_string(), "varchar", "varchar"),
    (pa.binary(), "varbinary", "varbinary"),
    (pa.date32(), "date", "date"),
    (pa.time64("us"), "time(6)", "time"),
    (pa.timestamp("us"), "timestamp(6)", "timestamp"),
    (pa.timestamp("us", tz="UTC"), "timestamp(6) with time zone", "timestamp with time zone"),
    (pa.timestamp("ms"), "timestamp(3)", "timestamp"),
    (pa.list_(pa.int64()), "array(bigint)", "array"),
    (pa.map_(pa.string(), pa.float64()), "map(varchar, double)", "map"),
    (pa.struct([("a", pa.int32()), ("b c", pa.string())]), 'row(a integer, "b c" varchar)', "row"),
]


@pytest.mark.parametrize("arrow_type, name, raw", TYPES, ids=[n for _, n, _ in TYPES])
def test_trino_type_names(arrow_type: pa.DataType, name: str, raw: str) -> None:
    assert trino_type(arrow_type).name == name
    assert trino_type(arrow_type).signature["rawType"] == raw


def test_trino_json_values() -> None:
    table = pa.table(
        {
            "d": pa.array([decimal.Decimal("1.50"), None], pa.decimal128(10, 2)),
            "f": pa.array([float("nan"), float("-inf")]),
            "ts": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 6), None], pa.timestamp("us")),
            "tz": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), None], pa.timestamp("ms", tz="UTC")),
            "b": pa.array([b"\x00\xff", None]),
            "m": pa.array([[("k", 1)], None], pa.map_(pa.string(), pa.int64())),
            "r": pa.array([{"a": 1, "b": dt.date(2024, 1, 1)}, None], pa.struct([("a", pa.int64()), ("b", pa.date32())])),
        }
    )
    assert rows_json(table) == [
        ["1.50", "NaN", "2024-01-02 03:04:05.000006", "2024-01-02 03:04:05.000 UTC", "AP8=", {"k": 1}, [1, "2024-01-01"]],
        [None, "-Infinity", None, None, None, None, None],
    ]


def test_query_ids_list_newest_first() -> None:
    ids = [new_query_id(now_ms) for now_ms in (1_000, 2_000, 3_000)]
    assert sorted(ids) == ids[::-1]
