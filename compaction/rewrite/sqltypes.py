"""Iceberg schemas as DuckDB SQL: the field-id read schema and the field-id write clause.

DuckDB's ``read_parquet(..., schema = MAP {id: {name, type, default_value}})`` binds Parquet
columns by field id, not by name, which is what Iceberg requires: a renamed column, or a file
written before a column was added, still reads right. Top-level columns are read under the
alias ``c<field id>`` so no table column can collide with DuckDB's virtual ``filename`` column.
``COPY ... (FIELD_IDS {...})`` writes the ids back.

Only types DuckDB writes the way Iceberg expects are accepted; the rest raise
``UnsupportedSchema`` before any work is done (``fixed`` would come back as variable-length
binary, DuckDB has no nanosecond timestamp with time zone).
"""

from __future__ import annotations

from pyiceberg.schema import Schema
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    NestedField,
    StringType,
    StructType,
    TimestampNanoType,
    TimestampType,
    TimestamptzType,
    TimeType,
    UUIDType,
)

_PRIMITIVES: dict[type, str] = {
    BooleanType: "BOOLEAN",
    IntegerType: "INTEGER",
    LongType: "BIGINT",
    FloatType: "FLOAT",
    DoubleType: "DOUBLE",
    DateType: "DATE",
    TimeType: "TIME",
    TimestampType: "TIMESTAMP",
    TimestamptzType: "TIMESTAMPTZ",
    TimestampNanoType: "TIMESTAMP_NS",
    StringType: "VARCHAR",
    UUIDType: "UUID",
    BinaryType: "BLOB",
}

#: v3 row lineage columns (reserved field ids), materialized by a rewrite so row ids survive it.
ROW_ID = NestedField(2147483540, "_row_id", LongType(), required=False)
LAST_UPDATED_SEQUENCE_NUMBER = NestedField(2147483539, "_last_updated_sequence_number", LongType(), required=False)


class UnsupportedSchema(ValueError):
    """The table has a column type or default this rewriter cannot carry over exactly."""


def identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def alias(field: NestedField) -> str:
    return f"c{field.field_id}"


def duckdb_type(field_type: IcebergType) -> str:
    if isinstance(field_type, DecimalType):
        return f"DECIMAL({field_type.precision}, {field_type.scale})"
    if isinstance(field_type, StructType):
        return "STRUCT(" + ", ".join(f"{identifier(f.name)} {duckdb_type(f.field_type)}" for f in field_type.fields) + ")"
    if isinstance(field_type, ListType):
        return f"{duckdb_type(field_type.element_type)}[]"
    if isinstance(field_type, MapType):
        return f"MAP({duckdb_type(field_type.key_type)}, {duckdb_type(field_type.value_type)})"
    sql = _PRIMITIVES.get(type(field_type))
    if sql is None:
        raise UnsupportedSchema(f"Compaction does not support columns of type {field_type}")
    return sql


def read_schema_sql(schema: Schema, field_ids: tuple[int, ...] | None = None, extra: tuple[NestedField, ...] = ()) -> str:
    """The ``schema =`` argument of ``read_parquet`` for the top-level ``field_ids`` (all by default)."""
    fields = [f for f in schema.fields if field_ids is None or f.field_id in field_ids]
    if field_ids is not None and len(fields) != len(field_ids):
        raise UnsupportedSchema(f"Equality field ids {field_ids} are not all top-level columns of the schema")
    entries = []
    for f in (*fields, *extra):
        if getattr(f, "initial_default", None) is not None:
            raise UnsupportedSchema(f"Compaction does not support column defaults yet ({f.name})")
        sql_type = duckdb_type(f.field_type).replace("'", "''")
        entries.append(f"{f.field_id}: {{name: '{alias(f)}', type: '{sql_type}', default_value: NULL}}")
    return "MAP {" + ", ".join(entries) + "}"


def field_ids_sql(fields: tuple[NestedField, ...]) -> str:
    """The ``FIELD_IDS`` option of ``COPY``: nested ids under ``__duckdb_field_id``."""
    return "{" + ", ".join(f"{identifier(f.name)}: {_ids(f.field_id, f.field_type)}" for f in fields) + "}"


def _ids(field_id: int, field_type: IcebergType) -> str:
    if isinstance(field_type, StructType):
        children = [f"{identifier(f.name)}: {_ids(f.field_id, f.field_type)}" for f in field_type.fields]
    elif isinstance(field_type, ListType):
        children = [f"element: {_ids(field_type.element_id, field_type.element_type)}"]
    elif isinstance(field_type, MapType):
        children = [
            f"key: {_ids(field_type.key_id, field_type.key_type)}",
            f"value: {_ids(field_type.value_id, field_type.value_type)}",
        ]
    else:
        return str(field_id)
    return "{__duckdb_field_id: " + str(field_id) + ", " + ", ".join(children) + "}"
