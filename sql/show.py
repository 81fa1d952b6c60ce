"""Trino's ``SHOW``/``DESCRIBE`` statements as queries over the catalog's ``information_schema``.

Trino clients and tools (the CLI, SQLAlchemy, BI tools) browse with these; DuckDB's own
``SHOW`` would describe the engine's private state instead of the catalog. Pure text in, text out.
"""

from __future__ import annotations

import re

from sqlglot import exp

from iceshelf.sql.errors import SqlRefusedError

_LIKE = r"(?:\s+LIKE\s+(?P<like>'(?:[^']|'')*'))?"
_NAME = r"(?P<name>(?:\"(?:[^\"]|\"\")*\"|[^\s;\"]+)(?:\.(?:\"(?:[^\"]|\"\")*\"|[^\s;.\"]+))*)"
_END = r"\s*;?\s*$"
_FORMS = {
    "catalogs": re.compile(rf"SHOW\s+CATALOGS{_LIKE}{_END}", re.I | re.S),
    "schemas": re.compile(rf"SHOW\s+SCHEMAS(?:\s+(?:FROM|IN)\s+{_NAME})?{_LIKE}{_END}", re.I | re.S),
    "tables": re.compile(rf"SHOW\s+TABLES(?:\s+(?:FROM|IN)\s+{_NAME})?{_LIKE}{_END}", re.I | re.S),
    "columns": re.compile(rf"(?:SHOW\s+COLUMNS\s+(?:FROM|IN)|DESCRIBE|DESC)\s+{_NAME}{_END}", re.I | re.S),
}


def show_query(text: str, namespace: str | None) -> str | None:
    """The ``SELECT`` answering a ``SHOW``/``DESCRIBE`` statement, or ``None`` if ``text`` is none."""
    for form, pattern in _FORMS.items():
        if match := pattern.match(text):
            groups = match.groupdict()
            return _QUERIES[form](_parts(groups.get("name")), groups.get("like"), namespace)
    return None


def _catalogs(parts: list[str], like: str | None, namespace: str | None) -> str:
    return f'SELECT catalog_name AS "Catalog" FROM system.metadata.catalogs{_where([], like, "catalog_name")} ORDER BY 1'


def _schemas(parts: list[str], like: str | None, namespace: str | None) -> str:
    source = _in_catalog(parts[:1], "schemata")
    return f'SELECT schema_name AS "Schema" FROM {source}{_where([], like, "schema_name")} ORDER BY 1'


def _tables(parts: list[str], like: str | None, namespace: str | None) -> str:
    catalog, schema = _split_schema(parts, namespace, "SHOW TABLES")
    where = _where([f"table_schema = {_literal(schema)}"], like, "table_name")
    return f'SELECT table_name AS "Table" FROM {_in_catalog(catalog, "tables")}{where} ORDER BY 1'


def _columns(parts: list[str], like: str | None, namespace: str | None) -> str:
    catalog, schema = _split_schema(parts[:-1], namespace, "DESCRIBE")
    where = _where([f"table_schema = {_literal(schema)}", f"table_name = {_literal(parts[-1])}"], None, "")
    return (
        'SELECT column_name AS "Column", data_type AS "Type", \'\' AS "Extra", comment AS "Comment" '
        f"FROM {_in_catalog(catalog, 'columns')}{where} ORDER BY ordinal_position"
    )


_QUERIES = {"catalogs": _catalogs, "schemas": _schemas, "tables": _tables, "columns": _columns}


def _parts(name: str | None) -> list[str]:
    if not name:
        return []
    return [part.name for part in exp.to_table(name, dialect="trino").parts]


def _split_schema(parts: list[str], namespace: str | None, what: str) -> tuple[list[str], str]:
    """``[catalog.]schema`` as Trino reads it; no schema means the request's default namespace."""
    if not parts:
        if namespace is None:
            raise SqlRefusedError(f"{what} needs a schema: name one, or set a default namespace (X-Trino-Schema)")
        return [], namespace
    return parts[:-1], parts[-1]


def _in_catalog(catalog: list[str], table: str) -> str:
    return ".".join([*(_quote(c) for c in catalog), "information_schema", table])


def _where(conditions: list[str], like: str | None, column: str) -> str:
    if like:
        conditions = [*conditions, f"{column} LIKE {like}"]
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
