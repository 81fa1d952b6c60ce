"""Where compaction puts rows: files of an old partition spec move into the current spec's
partitions (partition evolution), and the z-order strategy clusters rows so files' min/max
bounds narrow on several columns at once. Writers and readers are real clients over HTTP.
"""

from __future__ import annotations

import datetime
from collections import Counter

import duckdb
import httpx
import pyarrow as pa
import pytest
from pyiceberg.conversions import from_bytes
from pyiceberg.expressions import GreaterThanOrEqual
from pyiceberg.partitioning import PartitionField, PartitionSpec, partition_record_value
from pyiceberg.schema import Schema
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import (
    BucketTransform,
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    Transform,
    TruncateTransform,
    YearTransform,
)
from pyiceberg.types import (
    BinaryType,
    DateType,
    DecimalType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestampType,
    TimestamptzType,
)

from iceshelf.compaction.jobs.compaction import CompactionJob
from iceshelf.compaction.jobs.records import MaintenanceStore
from iceshelf.compaction.rewrite.compact import CompactionOptions, compact_table
from iceshelf.compaction.rewrite.ordering import ZOrder, ordered
from iceshelf.compaction.rewrite.partitions import column, partition_sql
from iceshelf.compaction.rewrite.planner import PlanOptions
from iceshelf.tables.names import Identifier
from tests.clients import CatalogEnv, unique_name
from tests.compaction_support import append, data_files, fresh_rows, scanned_rows, table_store

EVENTS = pa.schema([pa.field("id", pa.int64()), pa.field("kind", pa.string()), pa.field("ts", pa.timestamp("us"))])
START = datetime.datetime(2024, 3, 1, 22, 0)


def events(start: int, count: int) -> pa.Table:
    """Rows spread over three kinds and, 37 minutes apart, over several days (``id`` decides both)."""
    ids = list(range(start, start + count))
    return pa.table(
        {"id": ids, "kind": [f"k{i % 3}" for i in ids], "ts": [START + datetime.timedelta(minutes=37 * i) for i in ids]},
        schema=EVENTS,
    )


def test_files_of_an_old_spec_move_into_the_current_specs_partitions(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog, name = catalog_env.catalog(), f"{namespace}.evolving"
    schema = Schema(NestedField(1, "id", LongType()), NestedField(2, "kind", StringType()), NestedField(3, "ts", TimestampType()))
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="kind"))
    table = catalog.create_table(name, schema=schema, partition_spec=spec)
    for n in range(3):
        append(catalog, name, events(n * 40, 40))  # spec 0: three files per append, one per kind
    catalog_env.duckdb().execute(f"DELETE FROM lake.{name} WHERE id % 7 = 0")  # position deletes on spec 0's files
    with catalog.load_table(name).update_spec() as update:
        update.add_field("ts", DayTransform(), "ts_day")
    # spec 1: one file per (kind, day); DuckDB writes it (pyiceberg 0.12 needs pyiceberg-core for a day transform)
    catalog_env.duckdb().execute(
        f"INSERT INTO lake.{name} SELECT range, 'k' || (range % 3), TIMESTAMP '{START}' + INTERVAL (37 * range) MINUTE "
        "FROM range(120, 160)"
    )
    before = catalog.load_table(name)
    old = [f for f in data_files(before) if f.spec_id == 0]
    assert len(old) == 9 and before.metadata.default_spec_id == 1
    live = fresh_rows(catalog_env, name)

    options = CompactionOptions(PlanOptions(min_input_files=2))
    result = compact_table(table_store(catalog_env), Identifier((namespace,), "evolving"), options)

    table = catalog.load_table(name)
    assert result.files_in >= 9 and sum(live.values()) == 160 - 18 and result.delete_files_removed > 0
    assert fresh_rows(catalog_env, name) == live  # DuckDB
    assert scanned_rows(table) == live  # pyiceberg
    for data_file in data_files(table):  # every file lies in one partition of spec 1: its bounds say so
        assert data_file.spec_id == 1
        kind, day = data_file.partition[0], data_file.partition[1]
        assert from_bytes(StringType(), data_file.lower_bounds[2]) == kind == from_bytes(StringType(), data_file.upper_bounds[2])
        days = {from_bytes(TimestampType(), b[3]) // 86_400_000_000 for b in (data_file.lower_bounds, data_file.upper_bounds)}
        assert days == {day}
    moved = [f for f in data_files(table) if "/compaction-" in f.file_path and "/kind=" in f.file_path.split("/compaction-")[1]]
    assert moved, "the rewritten old-spec files lie in the new spec's partition directories"
    # the new spec's partition values are right: a day filter prunes by them and still finds every row
    cutoff = START + datetime.timedelta(days=2)
    filtered = table.scan(row_filter=GreaterThanOrEqual("ts", cutoff.isoformat())).to_arrow()
    expected = Counter(row for row in live if row[2] >= cutoff)
    assert Counter(zip(*(filtered[c].to_pylist() for c in filtered.column_names))) == expected
    planned = [t for t in table.scan(row_filter=GreaterThanOrEqual("ts", cutoff.isoformat())).plan_files()]
    assert len(planned) < len(data_files(table))


TRANSFORM_CASES = [
    (
        DateType(),
        "DATE",
        ["1969-12-31", "1970-01-01", "2024-02-29", "1900-03-01"],
        [YearTransform(), MonthTransform(), DayTransform()],
    ),
    (
        TimestampType(),
        "TIMESTAMP",
        ["1969-12-31 23:59:59.999999", "1970-01-01 00:00:00", "2024-02-29 13:45:01.5", "1899-12-31 00:30:00"],
        [YearTransform(), MonthTransform(), DayTransform(), HourTransform()],
    ),
    (
        TimestamptzType(),
        "TIMESTAMPTZ",
        ["1970-01-01 00:30:00+01", "2024-02-29 23:30:00-02", "1969-12-31 23:59:59.999999+00"],
        [YearTransform(), MonthTransform(), DayTransform(), HourTransform(), BucketTransform(7)],
    ),
    (LongType(), "BIGINT", ["-1", "0", "7", "-123456789012", "9223372036854775807"], [BucketTransform(7), TruncateTransform(10)]),
    (IntegerType(), "INTEGER", ["-11", "0", "34"], [BucketTransform(16), TruncateTransform(5)]),
    (
        StringType(),
        "VARCHAR",
        ["", "héllo wörld", "abc", "日本語テキスト"],
        [BucketTransform(7), TruncateTransform(3), IdentityTransform()],
    ),
    (BinaryType(), "BLOB", ["\\x00\\xFF", "abc"], [BucketTransform(7), TruncateTransform(2)]),
    (DecimalType(9, 2), "DECIMAL(9, 2)", ["-1.25", "0.00", "12345.67"], [BucketTransform(7), TruncateTransform(10)]),
]


@pytest.mark.parametrize(("source_type", "sql_type", "values", "transforms"), TRANSFORM_CASES, ids=[c[1] for c in TRANSFORM_CASES])
def test_partition_values_in_sql_match_pyiceberg(source_type, sql_type: str, values: list[str], transforms: list[Transform]) -> None:
    """Every transform a repartitioning rewrite computes in DuckDB agrees with pyiceberg's, NULL included."""
    schema = Schema(NestedField(1, "v", source_type, required=False))
    fields = [PartitionField(1, 1000 + n, t, f"p{n}") for n, t in enumerate(transforms)]
    spec = PartitionSpec(*fields)
    con = duckdb.connect()
    rows = ", ".join(f"(CAST({_literal(v)} AS {sql_type}))" for v in values) + f", (CAST(NULL AS {sql_type}))"
    con.execute(f"CREATE TABLE t AS SELECT * FROM (VALUES {rows}) AS x(c1)")
    got = con.execute(f"SELECT c1, {', '.join(partition_sql(con, spec, schema, 'd'))} FROM t d").fetchall()
    for value, *computed in got:
        for field, result in zip(fields, computed):
            internal = partition_record_value(PartitionField(1, 1, IdentityTransform(), "v"), value, schema)
            expected = field.transform.transform(source_type)(internal)
            assert partition_record_value(field, result, schema) == expected, (field.transform, value)
    assert [column(f) for f in fields] == [f"p{f.field_id}" for f in fields]


def _literal(value: str) -> str:
    return "'" + value + "'" if not value.lstrip("-").replace(".", "").isdigit() else value


def test_zorder_narrows_file_bounds_on_both_columns(catalog_env: CatalogEnv, namespace: str) -> None:
    """Rows arrive in random order; after a z-order rewrite into ~10 files, each file spans a small
    box of (x, y), where a binpack leaves every file spanning both whole ranges."""
    catalog, name = catalog_env.catalog(), f"{namespace}.points"
    arrow = pa.schema([pa.field("id", pa.int64()), pa.field("x", pa.int32()), pa.field("y", pa.string())])
    properties = {"write.parquet.row-group-limit": "2048"}
    catalog.create_table(name, schema=arrow, properties=properties)
    con = duckdb.connect()
    for n in range(6):
        data = con.sql(
            f"SELECT range AS id, CAST(hash(range * 3) % 1000 AS INTEGER) AS x, "
            f"'user-' || lpad(CAST(hash(range * 7) % 1000 AS VARCHAR), 4, '0') AS y "
            f"FROM range({n * 4000}, {(n + 1) * 4000})"
        ).to_arrow_table().cast(arrow)
        append(catalog, name, data)
    live = fresh_rows(catalog_env, name)
    total = sum(f.file_size_in_bytes for f in data_files(catalog.load_table(name)))

    options = PlanOptions(
        strategy="z-order", zorder_columns=("x", "y"), target_file_size=total // 16, min_file_size=total, min_input_files=2
    )
    result = compact_table(table_store(catalog_env), Identifier((namespace,), "points"), CompactionOptions(options))

    table = catalog.load_table(name)
    assert result.strategy == "z-order" and result.files_out >= 6
    assert fresh_rows(catalog_env, name) == live and scanned_rows(table) == live
    spans = []
    for data_file in data_files(table):
        low_x, high_x = (from_bytes(IntegerType(), b[2]) for b in (data_file.lower_bounds, data_file.upper_bounds))
        low_y, high_y = (int(from_bytes(StringType(), b[3])[5:]) for b in (data_file.lower_bounds, data_file.upper_bounds))
        spans.append(((high_x - low_x) / 1000, (high_y - low_y) / 1000))
    # A file from a run of z-keys covers a small box: narrow in x AND in y on average (a binpack of
    # random rows spans ~1.0 in both; a sort by x would narrow x only, leaving y at ~1.0).
    mean_x, mean_y = (sum(span[n] for span in spans) / len(spans) for n in (0, 1))
    assert mean_x < 0.7 and mean_y < 0.7, spans
    assert sum(x * y for x, y in spans) / len(spans) < 0.3, spans


def test_zorder_keys_follow_the_curve() -> None:
    """The key interleaves the scaled columns' bits, x leading: in a 4x4 grid, the quadrants come in Z order."""
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT a AS c1, b AS c2 FROM range(4) r(a), range(4) s(b)")
    schema = Schema(NestedField(1, "x", LongType()), NestedField(2, "y", LongType()))
    relation, order_by = ordered(con, ZOrder((1, 2)), schema, "t")
    rows = con.execute(f"SELECT d.c1, d.c2 FROM {relation} d{order_by}").fetchall()
    quadrants = [(x // 2, y // 2) for x, y in rows]
    assert quadrants == [(0, 0)] * 4 + [(0, 1)] * 4 + [(1, 0)] * 4 + [(1, 1)] * 4
    assert rows[:4] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_zorder_configured_in_s3_tables_shape_uses_the_sort_order_columns(local_env: CatalogEnv) -> None:
    """``strategy: z-order`` is accepted over HTTP and the scheduler's job runs it over the table
    sort order's columns, as S3 Tables does; its manifest step then drops the compaction's removals."""
    catalog, namespace = local_env.catalog(), unique_name()
    catalog.create_namespace(namespace)
    schema = Schema(NestedField(1, "id", LongType()), NestedField(2, "x", LongType()), NestedField(3, "y", StringType()))
    order = SortOrder(SortField(source_id=2, transform=IdentityTransform()), SortField(source_id=3, transform=IdentityTransform()))
    table = catalog.create_table(f"{namespace}.t", schema=schema, sort_order=order)
    for n in range(5):
        ids = list(range(n * 10, n * 10 + 10))
        append(catalog, f"{namespace}.t", pa.table({"id": ids, "x": [i % 7 for i in ids], "y": [f"y{i % 5}" for i in ids]}))
    live = fresh_rows(local_env, f"{namespace}.t")
    url = f"{local_env.url}/v1/default/namespaces/{namespace}/tables/t/maintenance"
    value = {"status": "enabled", "settings": {"icebergCompaction": {"targetFileSizeMB": 64, "strategy": "z-order"}}}
    assert httpx.put(f"{url}/icebergCompaction", json={"value": value}).status_code == 200
    assert httpx.get(url).json()["configuration"]["icebergCompaction"] == value

    store = table_store(local_env)
    config = MaintenanceStore(store.objects).table_config(str(table.metadata.table_uuid)).icebergCompaction
    counts = CompactionJob(store).run(Identifier((namespace,), "t"), config)

    assert counts["detail"]["strategy"] == "z-order" and (counts["filesIn"], counts["filesOut"]) >= (5, 1)
    assert fresh_rows(local_env, f"{namespace}.t") == live
    (data_file,) = data_files(catalog.load_table(f"{namespace}.t"))
    rows = duckdb.sql(f"SELECT x, y FROM read_parquet('{data_file.file_path.removeprefix('file://')}')").fetchall()
    assert rows == sorted(rows, key=lambda r: _zkey(r[0], 6, int(r[1][1:]), 4)) and rows != sorted(rows)
    assert data_file.sort_order_id is None  # z-ordered, not in the table's sort order
    # the job's manifest step dropped the manifest recording the compaction's removals: readers skip reading it
    table = catalog.load_table(f"{namespace}.t")
    assert all(m.added_files_count or m.existing_files_count for m in table.current_snapshot().manifests(table.io))


def _zkey(x: int, x_max: int, y: int, y_max: int) -> tuple:
    """The z-key of the small test grid, as the rewriter scales it: bits of x and y interleaved, x leading."""
    scaled = [int(v * (((1 << 32) - 1) / top)) for v, top in ((x, x_max), (y, y_max))]  # floor(v * scale), in doubles
    return tuple((scaled[i] >> b) & 1 for b in reversed(range(32)) for i in range(2))
