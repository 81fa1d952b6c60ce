"""Relations answered from the catalog rather than from data files: Iceberg metadata tables, a
Trino-shaped ``information_schema`` and Trino's ``system`` tables.

Metadata tables (``"t$snapshots"``, ``t.files`` …) are pyiceberg's ``inspect`` tables, which already
follow Trino's and Spark's column names, read through the warehouse's own object store.
``information_schema`` lists this catalog's namespaces, tables and columns with Trino type names;
``system.metadata`` its catalogs and table comments; ``system.jdbc`` what the Trino JDBC driver's
``DatabaseMetaData`` selects (``getCatalogs``, ``getSchemas``, ``getTables``, ``getColumns``,
``getTableTypes``): what Trino clients (SQLAlchemy's ``inspect()``, the CLI's ``SHOW``, JDBC tools) query.
The query's conditions on name columns (``Condition``) decide what is listed and loaded, so a
lookup of one table's columns reads that table only; like the catalog's list operations, listings
show only what the caller may see (namespaces) and read (tables).
"""

from __future__ import annotations

import re
from typing import Iterator

import pyarrow as pa
from pyiceberg.io.pyarrow import schema_to_pyarrow

from iceshelf.sql.authorize import may_read, may_see
from iceshelf.sql.resolve import WarehouseCatalog
from iceshelf.sql.rewrite import Condition, Virtual
from iceshelf.sql.types import jdbc_column, trino_type
from iceshelf.tables.access import Principal
from iceshelf.tables.errors import BadRequestError
from iceshelf.tables.names import Identifier, Namespace, check_namespace
from iceshelf.tables.tablestore import TableStore

_SCHEMATA = pa.schema([("catalog_name", pa.string()), ("schema_name", pa.string())])
_TABLES = pa.schema(
    [("table_catalog", pa.string()), ("table_schema", pa.string()), ("table_name", pa.string()), ("table_type", pa.string())]
)
_COMMENTS = pa.schema(
    [("catalog_name", pa.string()), ("schema_name", pa.string()), ("table_name", pa.string()), ("comment", pa.string())]
)
_COLUMNS = pa.schema(
    [
        ("table_catalog", pa.string()),
        ("table_schema", pa.string()),
        ("table_name", pa.string()),
        ("column_name", pa.string()),
        ("ordinal_position", pa.int64()),
        ("column_default", pa.string()),
        ("is_nullable", pa.string()),
        ("data_type", pa.string()),
        ("comment", pa.string()),
    ]
)


def _strings(*names: str) -> list[tuple[str, pa.DataType]]:
    return [(name, pa.string()) for name in names]


def _longs(*names: str) -> list[tuple[str, pa.DataType]]:
    return [(name, pa.int64()) for name in names]


# The columns of Trino's system.jdbc tables, in order (the driver selects them by name).
_JDBC_CATALOGS = pa.schema(_strings("table_cat"))
_JDBC_SCHEMAS = pa.schema(_strings("table_schem", "table_catalog"))
_JDBC_TABLE_TYPES = pa.schema(_strings("table_type"))
_JDBC_TABLES = pa.schema(
    _strings("table_cat", "table_schem", "table_name", "table_type", "remarks", "type_cat", "type_schem", "type_name")
    + _strings("self_referencing_col_name", "ref_generation")
)
_JDBC_COLUMNS = pa.schema(
    _strings("table_cat", "table_schem", "table_name", "column_name")
    + _longs("data_type")
    + _strings("type_name")
    + _longs("column_size", "buffer_length", "decimal_digits", "num_prec_radix", "nullable")
    + _strings("remarks", "column_def")
    + _longs("sql_data_type", "sql_datetime_sub", "char_octet_length", "ordinal_position")
    + _strings("is_nullable", "scope_catalog", "scope_schema", "scope_table")
    + _longs("source_data_type")
    + _strings("is_autoincrement", "is_generatedcolumn")
)
#: java.sql.DatabaseMetaData.columnNoNulls / columnNullable
_NO_NULLS, _NULLABLE = 0, 1


def materialize(virtual: Virtual, catalog: WarehouseCatalog, caller: Principal) -> pa.Table:
    names = _Names(catalog, virtual.filters, caller)
    if virtual.kind.startswith("information_schema."):
        return _information_schema(virtual.kind.removeprefix("information_schema."), virtual.warehouse, names)
    if virtual.kind.startswith("system.jdbc."):
        return _jdbc(virtual.kind.removeprefix("system.jdbc."), names)
    if virtual.kind == "system.metadata.catalogs":
        warehouses = names.warehouses()
        return pa.table({"catalog_name": warehouses, "connector_id": warehouses, "connector_name": ["iceberg"] * len(warehouses)})
    if virtual.kind == "system.metadata.table_comments":
        return pa.Table.from_pylist([_comment(warehouse, ident, catalog) for warehouse, ident in names.tables()], _COMMENTS)
    assert virtual.identifier is not None and virtual.metadata_location is not None
    table = catalog.static_table(virtual.warehouse, virtual.identifier, virtual.metadata_location)
    return _without_empty_structs(getattr(table.inspect, virtual.kind)())


def _without_empty_structs(table: pa.Table) -> pa.Table:
    """An unpartitioned table's ``partition`` column is a struct with no fields, which DuckDB cannot
    take; it becomes a column of nulls."""
    for index, column in enumerate(table.schema):
        if pa.types.is_struct(column.type) and column.type.num_fields == 0:
            table = table.set_column(index, pa.field(column.name, pa.null()), pa.nulls(table.num_rows))
    return table


def schema_name(namespace: Namespace) -> str:
    """A namespace as one schema name (Trino has one level): its levels joined by dots."""
    return ".".join(namespace)


class _Names:
    """The catalogs, schemas and tables a relation's conditions can select and the caller may see,
    listed from the catalog. A name given exactly (``=``, or ``LIKE`` without wildcards) is looked up, not listed."""

    def __init__(self, catalog: WarehouseCatalog, conditions: tuple[Condition, ...], caller: Principal) -> None:
        self.catalog = catalog
        self.conditions = conditions
        self.caller = caller

    def accepts(self, field: str, value: str) -> bool:
        return all(_matches(condition, value) for condition in self.conditions if condition.field == field)

    def _exact(self, field: str) -> str | None:
        for condition in self.conditions:
            if condition.field == field and (exact := _literal_pattern(condition)) is not None:
                return exact
        return None

    def warehouses(self) -> list[str]:
        return [name for name in sorted(self.catalog.warehouses.tables) if self.accepts("catalog", name) and may_see(self.caller, name)]

    def namespaces(self, warehouse: str) -> list[Namespace]:
        tables = self.catalog.warehouse(warehouse)
        exact = self._exact("schema")
        if exact is not None:
            candidates = [tuple(exact.split("."))] if _namespace_exists(tables, tuple(exact.split("."))) else []
        else:
            candidates = _all_namespaces(tables)
        return [ns for ns in candidates if self.accepts("schema", schema_name(ns)) and may_see(self.caller, warehouse, ns)]

    def schemas(self) -> Iterator[tuple[str, Namespace]]:
        for warehouse in self.warehouses():
            for namespace in self.namespaces(warehouse):
                yield warehouse, namespace

    def tables(self, warehouses: list[str] | None = None) -> Iterator[tuple[str, Identifier]]:
        for warehouse in self.warehouses() if warehouses is None else warehouses:
            tables = self.catalog.warehouse(warehouse)
            for namespace in self.namespaces(warehouse):
                for name in tables.list_tables(namespace):
                    if self.accepts("table", name) and may_read(self.caller, warehouse, ident := Identifier(namespace, name)):
                        yield warehouse, ident


def _matches(condition: Condition, value: str) -> bool:
    if not condition.like:
        return value == condition.value
    return re.fullmatch(_like_regex(condition.value, condition.escape), value, re.S) is not None


def _like_regex(pattern: str, escape: str | None) -> str:
    out, escaped = [], False
    for char in pattern:
        if escaped:
            out.append(re.escape(char))
            escaped = False
        elif char == escape:
            escaped = True
        else:
            out.append({"%": ".*", "_": "."}.get(char) or re.escape(char))
    return "".join(out)


def _literal_pattern(condition: Condition) -> str | None:
    """The one value a condition selects, if it selects one."""
    if not condition.like:
        return condition.value
    out, escaped = [], False
    for char in condition.value:
        if escaped:
            out.append(char)
            escaped = False
        elif char == condition.escape:
            escaped = True
        elif char in "%_":
            return None
        else:
            out.append(char)
    return "".join(out)


def _all_namespaces(tables: TableStore, parent: Namespace = ()) -> list[Namespace]:
    out: list[Namespace] = []
    for namespace in tables.namespaces.list(parent):
        out += [namespace, *_all_namespaces(tables, namespace)]
    return out


def _namespace_exists(tables: TableStore, namespace: Namespace) -> bool:
    try:
        return tables.namespaces.exists(check_namespace(namespace))
    except BadRequestError:  # not a valid name, so no such namespace
        return False


def _information_schema(kind: str, warehouse: str, names: _Names) -> pa.Table:
    """One warehouse's ``information_schema``: the catalog is the one the query named."""
    named = names.accepts("catalog", warehouse) and may_see(names.caller, warehouse)
    if kind == "schemata":
        rows = [{"catalog_name": warehouse, "schema_name": schema_name(ns)} for ns in names.namespaces(warehouse)] if named else []
        return pa.Table.from_pylist(rows, _SCHEMATA)
    tables = list(names.tables([warehouse] if named else []))
    if kind == "tables":
        return pa.Table.from_pylist([_table_row(warehouse, ident) | {"table_type": "BASE TABLE"} for _, ident in tables], _TABLES)
    rows = []
    for _, ident in tables:
        for position, column in _columns(warehouse, ident, names.catalog):
            rows.append(
                _table_row(warehouse, ident)
                | {
                    "column_name": column["name"],
                    "ordinal_position": position,
                    "column_default": None,
                    "is_nullable": "NO" if column["required"] else "YES",
                    "data_type": column["type"].name,
                    "comment": column["doc"],
                }
            )
    return pa.Table.from_pylist(rows, _COLUMNS)


def _jdbc(kind: str, names: _Names) -> pa.Table:
    """Trino's ``system.jdbc`` tables, over every warehouse (each is a Trino catalog)."""
    if kind == "catalogs":
        return pa.Table.from_pylist([{"table_cat": warehouse} for warehouse in names.warehouses()], _JDBC_CATALOGS)
    if kind == "table_types":
        return pa.Table.from_pylist([{"table_type": "TABLE"}], _JDBC_TABLE_TYPES)
    if kind == "schemas":
        rows = [{"table_schem": schema_name(ns), "table_catalog": warehouse} for warehouse, ns in names.schemas()]
        return pa.Table.from_pylist(rows, _JDBC_SCHEMAS)
    if kind == "tables":
        rows = [_jdbc_table(warehouse, ident) | {"table_type": "TABLE"} for warehouse, ident in names.tables()]
        return pa.Table.from_pylist(rows, _JDBC_TABLES)
    rows = []
    for warehouse, ident in names.tables():
        for position, column in _columns(warehouse, ident, names.catalog):
            rows.append(
                _jdbc_table(warehouse, ident)
                | jdbc_column(column["type"])
                | {
                    "column_name": column["name"],
                    "buffer_length": 0,
                    "nullable": _NO_NULLS if column["required"] else _NULLABLE,
                    "remarks": column["doc"],
                    "ordinal_position": position,
                    "is_nullable": "NO" if column["required"] else "YES",
                    "is_autoincrement": "NO",
                    "is_generatedcolumn": "NO",
                }
            )
    return pa.Table.from_pylist(rows, _JDBC_COLUMNS)


def _jdbc_table(warehouse: str, ident: Identifier) -> dict:
    return {"table_cat": warehouse, "table_schem": schema_name(ident.namespace), "table_name": ident.name}


def _table_row(warehouse: str, ident: Identifier) -> dict:
    return {"table_catalog": warehouse, "table_schema": schema_name(ident.namespace), "table_name": ident.name}


def _comment(warehouse: str, ident: Identifier, catalog: WarehouseCatalog) -> dict:
    loaded = catalog.load(warehouse, ident)
    comment = loaded.metadata.properties.get("comment") if loaded is not None else None
    return {"catalog_name": warehouse, "schema_name": schema_name(ident.namespace), "table_name": ident.name, "comment": comment}


def _columns(warehouse: str, ident: Identifier, catalog: WarehouseCatalog) -> list[tuple[int, dict]]:
    """A table's top-level columns with their Trino types; none if it was dropped since it was listed."""
    loaded = catalog.load(warehouse, ident)
    if loaded is None:
        return []
    schema = loaded.metadata.schema()
    arrow = schema_to_pyarrow(schema, include_field_ids=False)
    return [
        (position, {"name": field.name, "required": field.required, "doc": field.doc, "type": trino_type(arrow.field(field.name).type)})
        for position, field in enumerate(schema.fields, start=1)
    ]
