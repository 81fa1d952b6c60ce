"""From a checked statement to the DuckDB SQL that runs it: names, time travel, metadata tables.

Every table name is resolved through the catalog (``Catalog``, implemented over the table store in
``sql/catalog.py``); no name reaches DuckDB as written, so an unknown name can never fall through
to one of DuckDB's replacement scans (files, Python objects). Reads become
``iceberg_scan('<metadata location>'[, snapshot_from_id = N])`` -- DuckDB's Iceberg reader, which
applies position deletes and deletion vectors, pinned to the metadata the table store names right
now. Write targets become the table in the DuckDB ATTACH of this very catalog, so DuckDB's Iceberg
writer commits through ``POST /transactions/commit`` -- the one commit path. Metadata tables and
``information_schema`` become relations the engine materializes from the catalog (``Virtual``).

Pure: the catalog is passed in, and the output is text plus what to materialize.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Mapping, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlglot import exp
from sqlglot.errors import ErrorLevel, UnsupportedError

from iceshelf.sql.check import Statement, write_target
from iceshelf.sql.errors import SqlRefusedError
from iceshelf.tables.errors import NoSuchTableError
from iceshelf.tables.names import Identifier, Namespace, check_identifier

#: Dialects that speak Trino's SQL, and so name result columns as Trino does.
TRINO_DIALECTS = ("trino", "athena")
#: Trino's ``"t$name"`` metadata tables, also reachable as Spark's ``t.name``.
METADATA_TABLES = ("snapshots", "history", "files", "manifests", "partitions", "refs")
INFORMATION_SCHEMA = ("schemata", "tables", "columns")
#: Trino's ``system`` tables that clients query: ``metadata`` (SHOW CATALOGS, SQLAlchemy's table
#: comments) and ``jdbc`` (what the JDBC driver's ``DatabaseMetaData`` selects from).
SYSTEM_TABLES = {
    "metadata": ("catalogs", "table_comments"),
    "jdbc": ("catalogs", "schemas", "tables", "columns", "table_types"),
}


@dataclass(frozen=True)
class TableInfo:
    """What the rewrite needs to know of a table: where its metadata is, and its snapshots for time travel."""

    metadata_location: str
    snapshot_ids: frozenset[int] = frozenset()
    #: ``(timestamp_ms, snapshot_id)`` of the snapshot log, oldest first.
    history: tuple[tuple[int, int], ...] = ()
    refs: Mapping[str, int] = field(default_factory=dict)


class Catalog(Protocol):
    default_warehouse: str

    def is_warehouse(self, name: str) -> bool: ...

    def table(self, warehouse: str, ident: Identifier) -> TableInfo | None: ...


@dataclass(frozen=True)
class Scan:
    """A catalog table the query reads, at the snapshot it reads (``None``: the current one)."""

    warehouse: str
    identifier: Identifier
    metadata_location: str
    snapshot_id: int | None


@dataclass(frozen=True)
class Condition:
    """``column = 'value'`` or ``column LIKE 'pattern' [ESCAPE 'c']`` on a catalog, schema or table name."""

    #: ``"catalog"``, ``"schema"`` or ``"table"``, whatever the column is called in the relation.
    field: str
    value: str
    like: bool = False
    escape: str | None = None


@dataclass(frozen=True)
class Virtual:
    """A relation materialized from the catalog: a metadata table of one table, or information_schema."""

    warehouse: str
    kind: str
    identifier: Identifier | None = None
    metadata_location: str | None = None
    #: Conditions the query puts on its name columns (information_schema, system.jdbc), so only what
    #: they select is read from the catalog; DuckDB still applies the whole WHERE.
    filters: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Plan:
    statement: Statement
    #: DuckDB SQL, run in order; the last one's result is the answer.
    statements: tuple[str, ...]
    scans: tuple[Scan, ...] = ()
    virtuals: Mapping[str, Virtual] = field(default_factory=dict)
    #: Warehouses whose ATTACHed catalog the statements write to.
    writes: frozenset[str] = frozenset()
    #: The tables the statement writes: ``(warehouse, identifier)``; checked for the caller's grants.
    targets: tuple[tuple[str, Identifier], ...] = ()
    #: For CREATE TABLE AS: (target, query). The engine creates the table with the query's columns in
    #: the same DuckDB transaction as ``statements`` (the INSERT): the catalog sees one creating commit.
    create: tuple[str, str] | None = None


def attach_alias(warehouse: str) -> str:
    """The DuckDB catalog name under which the engine ATTACHes a warehouse's REST catalog."""
    return f"iceshelf_{warehouse}"


def rewrite(statement: Statement, catalog: Catalog, namespace: Namespace | None = None, warehouse: str | None = None) -> Plan:
    return _Rewriter(statement, catalog, namespace, warehouse or catalog.default_warehouse).plan()


class _Rewriter:
    def __init__(self, statement: Statement, catalog: Catalog, namespace: Namespace | None, warehouse: str) -> None:
        self.statement = statement
        self.catalog = catalog
        self.namespace = namespace
        self.warehouse = warehouse
        self.scans: list[Scan] = []
        self.virtuals: dict[str, Virtual] = {}
        self.writes: set[str] = set()
        self.targets: list[tuple[str, Identifier]] = []

    def plan(self) -> Plan:
        tree = self.statement.tree.copy()
        target = write_target(tree) if self.statement.writes else None
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        for table in list(tree.find_all(exp.Table)):
            if table is target:
                table.replace(self._write_target(table))
            elif not isinstance(table.this, exp.Func) and not (len(table.parts) == 1 and table.name.lower() in ctes):
                table.replace(self._read(table))
        for column in tree.find_all(exp.Column):
            # ``ns.t.col``: the table is now known by its alias only.
            column.set("db", None)
            column.set("catalog", None)
        if self.statement.dialect in TRINO_DIALECTS and not self.statement.writes:
            _name_like_trino(tree)
        statements, create = self._statements(tree)
        return Plan(
            self.statement, statements, tuple(self.scans), dict(self.virtuals), frozenset(self.writes), tuple(self.targets), create
        )

    # -- output ---------------------------------------------------------------------------------

    def _statements(self, tree: exp.Expression) -> tuple[tuple[str, ...], tuple[str, str] | None]:
        if isinstance(tree, exp.Create):
            # DuckDB's own CTAS on an attached Iceberg catalog writes its files to a relative path
            # ("data/…"), so the engine creates the table and inserts into it, in one transaction.
            target, query = _sql(tree.this), _sql(tree.expression)
            return (f"INSERT INTO {target} {query}",), (target, query)
        text = _sql(tree)
        if self.statement.explain:
            text = f"{self.statement.explain} {text}"
        return (text,), None

    # -- names ----------------------------------------------------------------------------------

    def _write_target(self, table: exp.Table) -> exp.Table:
        warehouse, ident = self._split(_names(table))[0]
        if len(ident.namespace) != 1:
            raise SqlRefusedError(f"Writes to nested namespaces are not supported: {ident}")
        if table.args.get("version") or table.args.get("when"):
            raise SqlRefusedError("Time travel is for reads only")
        exists = self.catalog.table(warehouse, ident) is not None
        if isinstance(self.statement.tree, exp.Create) == exists:
            raise _exists(ident) if exists else _missing(ident)
        self.writes.add(warehouse)
        self.targets.append((warehouse, ident))
        out = exp.Table(
            this=exp.to_identifier(ident.name, quoted=True),
            db=exp.to_identifier(ident.namespace[0], quoted=True),
            catalog=exp.to_identifier(attach_alias(warehouse), quoted=True),
        )
        if alias := table.args.get("alias"):
            out.set("alias", alias)
        return out

    def _read(self, table: exp.Table) -> exp.Table:
        names = _names(table)
        if len(names) in (2, 3) and names[-2].lower() == "information_schema":
            return self._information_schema(table, names)
        if len(names) == 3 and names[0].lower() == "system" and names[1].lower() in SYSTEM_TABLES and not self.catalog.is_warehouse(names[0]):
            return self._system(table, names[1].lower(), names[2].lower())
        *head, last = names
        if "$" in last:
            base, _, kind = last.rpartition("$")
            return self._metadata_table(table, [*head, base], kind.lower(), alias=last)
        found = self._lookup(names)
        if found is None and head and last.lower() in METADATA_TABLES and self._lookup(head) is not None:
            return self._metadata_table(table, head, last.lower(), alias=last)
        if found is None:
            raise _missing(self._split(names)[-1][1])
        warehouse, ident, info = found
        snapshot_id = self._time_travel(table, ident, info)
        self.scans.append(Scan(warehouse, ident, info.metadata_location, snapshot_id))
        arguments: list[exp.Expression] = [exp.Literal.string(info.metadata_location)]
        if snapshot_id is not None:
            arguments.append(exp.EQ(this=exp.column("snapshot_from_id"), expression=exp.Literal.number(snapshot_id)))
        return self._replaced(table, exp.Anonymous(this="iceberg_scan", expressions=arguments), ident.name)

    def _metadata_table(self, table: exp.Table, names: list[str], kind: str, alias: str) -> exp.Table:
        if kind not in METADATA_TABLES:
            raise SqlRefusedError(f"Unknown metadata table ${kind}; there are {', '.join('$' + k for k in METADATA_TABLES)}")
        if table.args.get("version") or table.args.get("when"):
            raise SqlRefusedError("Time travel on metadata tables is not supported; filter $snapshots instead")
        found = self._lookup(names)
        if found is None:
            raise _missing(self._split(names)[-1][1])
        warehouse, ident, info = found
        return self._virtual(table, Virtual(warehouse, kind, ident, info.metadata_location), alias)

    def _information_schema(self, table: exp.Table, names: list[str]) -> exp.Table:
        warehouse = names[0] if len(names) == 3 else self.warehouse
        kind = names[-1].lower()
        if not self.catalog.is_warehouse(warehouse):
            raise SqlRefusedError(f"Unknown catalog {warehouse!r}")
        if kind not in INFORMATION_SCHEMA:
            raise SqlRefusedError(f"information_schema has {', '.join(INFORMATION_SCHEMA)}; not {kind}")
        return self._virtual(table, Virtual(warehouse, f"information_schema.{kind}", filters=_conditions(table)), names[-1])

    def _system(self, table: exp.Table, schema: str, kind: str) -> exp.Table:
        if kind not in SYSTEM_TABLES[schema]:
            raise SqlRefusedError(f"system.{schema} has {', '.join(SYSTEM_TABLES[schema])}; not {kind}")
        return self._virtual(table, Virtual(self.warehouse, f"system.{schema}.{kind}", filters=_conditions(table)), kind)

    def _virtual(self, table: exp.Table, virtual: Virtual, alias: str) -> exp.Table:
        name = next((n for n, v in self.virtuals.items() if v == virtual), None) or f"__iceshelf_{len(self.virtuals)}"
        self.virtuals[name] = virtual
        return self._replaced(table, exp.to_identifier(name, quoted=True), alias)

    @staticmethod
    def _replaced(table: exp.Table, source: exp.Expression, default_alias: str) -> exp.Table:
        out = exp.Table(this=source, alias=table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(default_alias, quoted=True)))
        for arg in ("sample", "pivots", "joins", "laterals"):
            if table.args.get(arg):
                out.set(arg, table.args[arg])
        return out

    def _lookup(self, names: list[str]) -> tuple[str, Identifier, TableInfo] | None:
        for warehouse, ident in self._split(names):
            if (info := self.catalog.table(warehouse, ident)) is not None:
                return warehouse, ident, info
        return None

    def _split(self, names: list[str]) -> list[tuple[str, Identifier]]:
        """The readings of a dotted name, most specific first: ``warehouse.ns…ns.t``, then ``ns…ns.t``.

        SQL text is where these names enter Iceshelf, so they are checked here (a 400 for a name no
        table can have), as the REST routes check theirs."""
        if len(names) == 1:
            if self.namespace is None:
                raise SqlRefusedError(f"Table {names[0]!r} needs a namespace: write namespace.table or set a default namespace")
            return [(self.warehouse, check_identifier(tuple(self.namespace), names[0]))]
        readings = []
        if len(names) >= 3 and self.catalog.is_warehouse(names[0]):
            readings.append((names[0], check_identifier(tuple(names[1:-1]), names[-1])))
        readings.append((self.warehouse, check_identifier(tuple(names[:-1]), names[-1])))
        return readings

    # -- time travel ----------------------------------------------------------------------------

    def _time_travel(self, table: exp.Table, ident: Identifier, info: TableInfo) -> int | None:
        """``FOR VERSION/TIMESTAMP AS OF`` (Trino, Spark) and ``AT (VERSION/TIMESTAMP => …)`` (DuckDB) -> a snapshot id."""
        travel = table.args.get("version") or table.args.get("when")
        if travel is None:
            return None
        kind = str(travel.this if isinstance(travel, exp.Version) else travel.args.get("kind")).upper()
        value = travel.expression
        if kind == "VERSION":
            return _snapshot_by_version(value, ident, info)
        if kind == "TIMESTAMP":
            return _snapshot_at(_timestamp_ms(value), ident, info)
        raise SqlRefusedError(f"Unsupported time travel {travel.sql()}")


def _snapshot_by_version(value: exp.Expression, ident: Identifier, info: TableInfo) -> int:
    if isinstance(value, exp.Literal) and value.is_string:
        if value.this not in info.refs:
            raise SqlRefusedError(f"Table {ident} has no branch or tag {value.this!r}")
        return info.refs[value.this]
    try:
        snapshot_id = int(value.to_py()) if isinstance(value, (exp.Literal, exp.Neg)) else None
    except (TypeError, ValueError):
        snapshot_id = None
    if snapshot_id is None:
        raise SqlRefusedError("FOR VERSION AS OF takes a snapshot id or a branch/tag name literal")
    if snapshot_id not in info.snapshot_ids:
        raise SqlRefusedError(f"Table {ident} has no snapshot {snapshot_id}")
    return snapshot_id


def _snapshot_at(timestamp_ms: int, ident: Identifier, info: TableInfo) -> int:
    """Iceberg's "as of": the snapshot that was current at that time, by the snapshot log."""
    current = [snapshot_id for at, snapshot_id in info.history if at <= timestamp_ms]
    if not current:
        raise SqlRefusedError(f"Table {ident} had no snapshot at {dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.timezone.utc).isoformat()}")
    return current[-1]


def _timestamp_ms(value: exp.Expression) -> int:
    """A timestamp literal (``'…'``, ``TIMESTAMP '…'``, ``CAST('…' AS TIMESTAMP…)``) in ms since the epoch, UTC
    when no zone is given; a zone may follow after a space (``UTC``, ``+02:00``, ``Europe/Paris``)."""
    while isinstance(value, exp.Cast):
        value = value.this
    if not (isinstance(value, exp.Literal) and value.is_string):
        raise SqlRefusedError("FOR TIMESTAMP AS OF takes a timestamp literal, e.g. TIMESTAMP '2024-01-01 00:00:00 UTC'")
    text = value.this.strip()
    try:
        try:
            moment, zone = dt.datetime.fromisoformat(text), dt.timezone.utc
        except ValueError:
            head, _, tail = text.rpartition(" ")
            moment, zone = dt.datetime.fromisoformat(head), _zone(tail)
    except (ValueError, ZoneInfoNotFoundError):
        raise SqlRefusedError(f"Not a timestamp: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return int(moment.timestamp() * 1000)


def _zone(text: str) -> dt.tzinfo:
    text = text.strip()
    if text in ("Z", "UTC"):
        return dt.timezone.utc
    if text[0] in "+-":
        digits = text[1:].replace(":", "")
        offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        return dt.timezone(offset if text[0] == "+" else -offset)
    return ZoneInfo(text)


#: Name columns whose conditions narrow what is read from the catalog, by what they name.
_FILTERABLE = {
    "catalog_name": "catalog", "table_catalog": "catalog", "table_cat": "catalog",
    "schema_name": "schema", "table_schema": "schema", "table_schem": "schema",
    "table_name": "table",
}  # fmt: skip


def _conditions(table: exp.Table) -> tuple[Condition, ...]:
    """``column = 'literal'`` and ``column LIKE 'literal' [ESCAPE 'c']`` conjuncts of the WHERE of the
    one-table SELECT that reads ``table``."""
    select = table.parent.parent if isinstance(table.parent, exp.From) else None
    if not isinstance(select, exp.Select) or select.args.get("joins") or not select.args.get("where"):
        return ()
    where = select.args["where"].this
    found = []
    for condition in where.flatten() if isinstance(where, exp.And) else [where]:
        if (parsed := _condition(condition)) is not None:
            found.append(parsed)
    return tuple(found)


def _condition(node: exp.Expression) -> Condition | None:
    escape = None
    if isinstance(node, exp.Escape):
        if not (isinstance(node.expression, exp.Literal) and node.expression.is_string):
            return None
        node, escape = node.this, node.expression.this
    if not isinstance(node, (exp.EQ, exp.Like)) or (escape is not None and not isinstance(node, exp.Like)):
        return None
    column, value = node.this, node.expression
    if isinstance(node, exp.EQ) and isinstance(value, exp.Column):
        column, value = value, column
    if not (isinstance(column, exp.Column) and column.name.lower() in _FILTERABLE and isinstance(value, exp.Literal) and value.is_string):
        return None
    return Condition(_FILTERABLE[column.name.lower()], value.this, isinstance(node, exp.Like), escape)


def _name_like_trino(tree: exp.Expression) -> None:
    """Trino calls an output column that is neither a column nor aliased ``_col<position>``, where
    DuckDB would use the expression's text (``count_star()``); clients of Trino's SQL expect the former."""
    while isinstance(tree, exp.SetOperation):  # the first query of a UNION names the columns
        tree = tree.this
    if not isinstance(tree, exp.Select):
        return
    for position, expression in enumerate(tree.expressions):
        if not isinstance(expression, (exp.Alias, exp.Column, exp.Star)):
            expression.replace(exp.alias_(expression.copy(), f"_col{position}", quoted=True))


def _names(table: exp.Table) -> list[str]:
    return [part.name for part in table.parts]


def _sql(tree: exp.Expression) -> str:
    try:
        return tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as err:
        raise SqlRefusedError(f"Cannot translate to DuckDB: {err}") from None


def _missing(ident: Identifier) -> NoSuchTableError:
    return NoSuchTableError(f"Table does not exist: {ident}")


def _exists(ident: Identifier) -> SqlRefusedError:
    return SqlRefusedError(f"Table already exists: {ident}")
