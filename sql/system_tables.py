"""Relations answered from the catalog rather than from data files: Iceberg metadata tables and a
Trino-shaped ``information_schema``.

Metadata tables (``"t$snapshots"``, ``t.files`` …) are pyiceberg's ``inspect`` tables, which already
follow Trino's and Spark's column names, read through the warehouse's own object store.
``information_schema`` lists this catalog's namespaces, tables and columns with Trino type names,
and ``system.metadata`` its catalogs and table comments: what Trino clients (SQLAlchemy's
``inspect()``, the CLI's ``SHOW``) query.
"""

from __future__ import annotations

import pyarrow as pa
from pyiceberg.io.pyarrow import schema_to_pyarrow

from sql.resolve import WarehouseCatalog
from sql.rewrite import Virtual
from sql.types import trino_type
from tables.errors import BadRequestError
from tables.names import Identifier, Namespace
from tables.tablestore import TableStore

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


def materialize(virtual: Virtual, catalog: WarehouseCatalog) -> pa.Table:
    if virtual.kind.startswith("information_schema."):
        return _information_schema(virtual.kind.removeprefix("information_schema."), virtual.warehouse, catalog, virtual.filters)
    if virtual.kind == "system.metadata.catalogs":
        names = sorted(catalog.warehouses.stores)
        return pa.table({"catalog_name": names, "connector_id": names, "connector_name": ["iceberg"] * len(names)})
    if virtual.kind == "system.metadata.table_comments":
        return pa.Table.from_pylist([row for name in sorted(catalog.warehouses.stores) for row in _comments(name, catalog)], _COMMENTS)
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


def _information_schema(kind: str, warehouse: str, catalog: WarehouseCatalog, filters: tuple[tuple[str, str], ...]) -> pa.Table:
    store = catalog.store(warehouse)
    wanted = dict(filters)
    schema = wanted.get("schema_name", wanted.get("table_schema"))
    if schema is not None:
        namespace = tuple(schema.split("."))
        namespaces = [namespace] if _namespace_exists(store, namespace) else []
    else:
        namespaces = _all_namespaces(store)
    if kind == "schemata":
        return pa.Table.from_pylist([{"catalog_name": warehouse, "schema_name": schema_name(ns)} for ns in namespaces], _SCHEMATA)
    tables = _all_tables(store, namespaces)
    if "table_name" in wanted:
        tables = [ident for ident in tables if ident.name == wanted["table_name"]]
    if kind == "tables":
        rows = [_table_row(warehouse, ident) | {"table_type": "BASE TABLE"} for ident in tables]
        return pa.Table.from_pylist(rows, _TABLES)
    return pa.Table.from_pylist([row for ident in tables for row in _column_rows(warehouse, ident, catalog)], _COLUMNS)


def _all_namespaces(store: TableStore, parent: Namespace = ()) -> list[Namespace]:
    out: list[Namespace] = []
    for namespace in store.namespaces.list(parent):
        out += [namespace, *_all_namespaces(store, namespace)]
    return out


def _namespace_exists(store: TableStore, namespace: Namespace) -> bool:
    try:
        return store.namespaces.exists(namespace)
    except BadRequestError:  # not a valid name, so no such namespace
        return False


def _all_tables(store: TableStore, namespaces: list[Namespace]) -> list[Identifier]:
    return [Identifier(ns, name) for ns in namespaces for name in store.list_tables(ns)]


def _comments(warehouse: str, catalog: WarehouseCatalog) -> list[dict]:
    store = catalog.store(warehouse)
    rows = []
    for ident in _all_tables(store, _all_namespaces(store)):
        if (loaded := catalog.load(warehouse, ident)) is not None:
            row = {"catalog_name": warehouse, "schema_name": schema_name(ident.namespace), "table_name": ident.name}
            rows.append(row | {"comment": loaded.metadata.properties.get("comment")})
    return rows


def _table_row(warehouse: str, ident: Identifier) -> dict:
    return {"table_catalog": warehouse, "table_schema": schema_name(ident.namespace), "table_name": ident.name}


def _column_rows(warehouse: str, ident: Identifier, catalog: WarehouseCatalog) -> list[dict]:
    loaded = catalog.load(warehouse, ident)
    if loaded is None:  # dropped since it was listed
        return []
    schema = loaded.metadata.schema()
    arrow = schema_to_pyarrow(schema, include_field_ids=False)
    return [
        _table_row(warehouse, ident)
        | {
            "column_name": field.name,
            "ordinal_position": position,
            "column_default": None,
            "is_nullable": "NO" if field.required else "YES",
            "data_type": trino_type(arrow.field(field.name).type).name,
            "comment": field.doc,
        }
        for position, field in enumerate(schema.fields, start=1)
    ]
