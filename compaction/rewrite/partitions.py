"""A partition spec's values in DuckDB SQL, so a rewrite can split rows into the spec's partitions.

Files written under an older partition spec are rewritten into the current one (Iceberg's
``RewriteDataFiles`` with its default ``output-spec-id``); each row's partition then has to be
computed from its values, exactly as Iceberg defines the transforms:

* ``identity`` and ``void`` are the column and ``NULL``;
* ``year``, ``month``, ``day`` and ``hour`` count calendar boundaries since 1970-01-01 (UTC for
  ``timestamptz``), which is DuckDB's ``date_diff`` -- floor semantics for dates before 1970 too;
* ``bucket`` (Murmur3) and ``truncate`` run pyiceberg's own transform in a vectorized Arrow UDF:
  a second implementation of the hash in SQL could drift from the one every reader prunes with.

The values come back as Python objects, turned into a partition ``Record`` by pyiceberg's
``partition_record_value`` (dates to days, timestamps to microseconds, as manifests store them).
"""

from __future__ import annotations

from typing import Any, Callable

import duckdb
import pyarrow as pa
from pyiceberg.partitioning import PartitionField, PartitionSpec, partition_record_value
from pyiceberg.schema import Schema
from pyiceberg.transforms import (
    BucketTransform,
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    TruncateTransform,
    VoidTransform,
    YearTransform,
)
from pyiceberg.typedef import Record
from pyiceberg.types import DateType, PrimitiveType, TimestampType, TimestamptzType

from iceshelf.compaction.rewrite.sqltypes import UnsupportedSchema, duckdb_type

_UNITS = {YearTransform: "year", MonthTransform: "month", DayTransform: "day", HourTransform: "hour"}


def column(field: PartitionField) -> str:
    """The SQL alias of a partition field's value (``p<partition field id>``: never a ``c<id>`` column)."""
    return f"p{field.field_id}"


def partition_sql(connection: duckdb.DuckDBPyConnection, spec: PartitionSpec, schema: Schema, source: str) -> list[str]:
    """``<expression> AS p<id>`` for each field of ``spec``, over the ``c<field id>`` columns of ``source``.

    Registers the UDFs the expressions call on ``connection``; refuses a transform or type this
    cannot compute exactly (``UnsupportedSchema``) before any work is done.
    """
    return [
        f"{_transform_sql(connection, field, schema, f'{source}.c{field.source_id}')} AS {column(field)}" for field in spec.fields
    ]


def partition_record(spec: PartitionSpec, schema: Schema, values: tuple[Any, ...]) -> Record:
    """The manifest's partition ``Record`` of one tuple of ``p<id>`` values as DuckDB returned them."""
    return Record(*(partition_record_value(field, value, schema) for field, value in zip(spec.fields, values)))


def _transform_sql(connection: duckdb.DuckDBPyConnection, field: PartitionField, schema: Schema, value: str) -> str:
    source_type = schema.find_type(field.source_id)
    transform = field.transform
    if not isinstance(source_type, PrimitiveType):
        raise UnsupportedSchema(f"Partition field {field.name} has a non-primitive source")
    if isinstance(transform, IdentityTransform):
        return value
    if isinstance(transform, VoidTransform):
        return f"CAST(NULL AS {duckdb_type(source_type)})"
    if type(transform) in _UNITS:
        unit = _UNITS[type(transform)]
        if isinstance(source_type, DateType) and unit != "hour":
            return f"date_diff('{unit}', DATE '1970-01-01', {value})"
        if isinstance(source_type, TimestampType):
            return f"date_diff('{unit}', TIMESTAMP '1970-01-01', {value})"
        if isinstance(source_type, TimestamptzType):
            return f"date_diff('{unit}', TIMESTAMP '1970-01-01', timezone('UTC', {value}))"
        raise UnsupportedSchema(f"Compaction cannot compute {transform} of a {source_type} column ({field.name})")
    if isinstance(transform, (BucketTransform, TruncateTransform)):
        return f"{_register_udf(connection, field, source_type)}({value})"
    raise UnsupportedSchema(f"Compaction cannot compute the partition transform {transform} ({field.name})")


def _register_udf(connection: duckdb.DuckDBPyConnection, field: PartitionField, source_type: PrimitiveType) -> str:
    """An Arrow UDF applying pyiceberg's transform: per batch, not per row (a row-wise Python UDF is ~30x slower)."""
    transform = field.transform
    try:
        apply = transform.transform(source_type)
        result_type = transform.result_type(source_type)
    except ValueError as err:
        raise UnsupportedSchema(f"Compaction cannot compute {transform} of a {source_type} column ({field.name})") from err
    sql_in, sql_out = duckdb_type(source_type), duckdb_type(result_type)
    # Partition field ids are unique within a table, and an engine serves one table.
    name = f"iceberg_partition_{field.field_id}"
    if not connection.execute("SELECT 1 FROM duckdb_functions() WHERE function_name = ?", [name]).fetchall():
        connection.create_function(
            name,
            _batch(apply, _arrow_type(connection, sql_out)),
            [duckdb.sqltype(sql_in)],
            duckdb.sqltype(sql_out),
            type="arrow",
            side_effects=False,
        )
    return name


def _arrow_type(connection: duckdb.DuckDBPyConnection, sql_type: str) -> pa.DataType:
    return connection.execute(f"SELECT CAST(NULL AS {sql_type}) AS v").to_arrow_table().schema.field("v").type


def _batch(apply: Callable[[Any], Any], out: pa.DataType) -> Callable[[pa.Array], pa.Array]:
    def run(values: pa.Array) -> pa.Array:
        return pa.array([apply(v) for v in values.to_pylist()], out)

    return run
