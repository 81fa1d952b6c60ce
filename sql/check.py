"""The first wall: parse one statement with sqlglot and refuse everything that is not a query on
catalog tables or an allowed write.

Allowed: ``SELECT``/``WITH``/set operations, ``EXPLAIN [ANALYZE]`` of those, ``SHOW``/``DESCRIBE``
(answered from the catalog), and -- unless read-only -- ``INSERT``, ``CREATE TABLE ... AS``,
``DELETE``, ``UPDATE``. Refused: any other statement (``COPY``, ``ATTACH``, ``INSTALL``, ``SET``,
``PRAGMA``, ``CALL``, ...), table functions, file paths used as tables, and functions that reach
outside the engine (``read_text``, ``getenv``, ...). The sandboxed DuckDB behind this
(``sql/engine.py``) is the second wall, for whatever a parser bug lets through.

Everything here is pure: text in, a checked ``Statement`` or ``SqlRefusedError`` out.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from iceshelf.sql.errors import SqlRefusedError
from iceshelf.sql.show import show_query

#: Dialects a client may write in; ``athena`` is Trino's SQL as Athena speaks it.
DIALECTS = ("duckdb", "trino", "athena", "spark")

#: Table functions that are pure computations, not data sources.
_SAFE_TABLE_FUNCTIONS = (exp.GenerateSeries, exp.Unnest)

#: Functions (scalar or table) that read files, the environment, settings or secrets, or run SQL text.
_DENIED_FUNCTIONS = frozenset(
    {"getenv", "glob", "query", "query_table", "current_setting", "which_secret", "sniff_csv", "load_extension"}
)
_DENIED_PREFIXES = (
    "read_", "parquet_", "iceberg_", "delta_", "duckdb_", "pragma_", "sqlite_", "postgres_", "mysql_", "ducklake_",
    "json_execute", "enable_", "disable_",
)  # fmt: skip

#: Functions sqlglot does not know but that mean the same in Trino/Spark and DuckDB.
_PORTABLE_UNKNOWN_FUNCTIONS = frozenset({"version"})

_LEADING_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.S)
_EXPLAIN = re.compile(r"EXPLAIN(\s+ANALYZE)?\b", re.I)
_EXECUTE_IMMEDIATE = re.compile(r"EXECUTE\s+IMMEDIATE\s+'((?:[^']|'')*)'\s*(?:USING\s+(.*?))?\s*;?\s*$", re.I | re.S)
_PATH_LIKE = re.compile(r"[/\\]|://|\.(csv|tsv|parquet|json|jsonl|ndjson|txt|db|duckdb|sqlite|xlsx|avro|arrow)$", re.I)

_WRITE_KINDS: dict[type[exp.Expression], str] = {
    exp.Insert: "INSERT",
    exp.Delete: "DELETE",
    exp.Update: "UPDATE",
    exp.Create: "CREATE TABLE",
}

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its "falling back to Command" notes are refusals here


@dataclass(frozen=True)
class Statement:
    """A checked statement. ``tree`` is what runs (for ``EXPLAIN``, the explained query)."""

    tree: exp.Expression
    dialect: str
    #: ``None`` for reads, else Trino's update type: ``INSERT``, ``DELETE``, ``UPDATE``, ``CREATE TABLE``.
    update_type: str | None = None
    #: ``"EXPLAIN"`` or ``"EXPLAIN ANALYZE"`` when the client asked for a plan.
    explain: str | None = None

    @property
    def writes(self) -> bool:
        return self.update_type is not None


def check(sql: str, dialect: str = "duckdb", *, read_only: bool = False, namespace: str | None = None) -> Statement:
    """Parse ``sql`` (exactly one statement) and refuse what the endpoint does not run."""
    dialect = (dialect or "duckdb").lower()
    if dialect not in DIALECTS:
        raise SqlRefusedError(f"Unknown dialect {dialect!r}; use one of {', '.join(DIALECTS)}")
    text = _LEADING_COMMENTS.sub("", sql or "", count=1)
    if (bound := bind_execute_immediate(text, dialect)) is not None:
        return check(bound, dialect, read_only=read_only, namespace=namespace)
    explain = None
    if match := _EXPLAIN.match(text):
        explain = "EXPLAIN ANALYZE" if match.group(1) else "EXPLAIN"
        text = text[match.end() :]
    if (shown := show_query(text, namespace)) is not None:
        text, dialect = shown, "duckdb"
    tree = _parse_one(text, dialect, skipped=None if shown else sql[: len(sql or "") - len(text)])
    update_type = _classify(tree)
    if update_type is not None:
        if explain:
            raise SqlRefusedError(f"{explain} is only allowed for queries, not for {update_type}")
        if read_only:
            raise SqlRefusedError(f"{update_type} is refused: the SQL endpoint is read-only")
    for node in tree.walk():
        _check_node(node, dialect)
    return Statement(tree, dialect, update_type, explain)


def bind_execute_immediate(text: str, dialect: str) -> str | None:
    """``EXECUTE IMMEDIATE '<sql>' USING a, b`` (how Trino clients send parameters) as plain SQL."""
    match = _EXECUTE_IMMEDIATE.match(text)
    if match is None:
        return None
    statement = match.group(1).replace("''", "'")
    values = list(_parse_one(f"SELECT {match.group(2)}", dialect).expressions) if match.group(2) else []
    tree = _parse_one(statement, dialect)
    placeholders = [node for node in tree.walk() if isinstance(node, exp.Placeholder)]
    if len(placeholders) != len(values):
        raise SqlRefusedError(f"The statement has {len(placeholders)} parameters but {len(values)} values were given")
    for placeholder, value in zip(placeholders, values):
        placeholder.replace(value.copy())
    return tree.sql(dialect=dialect)


def _parse_one(text: str, dialect: str, skipped: str | None = "") -> exp.Expression:
    """One statement of ``text``; ``skipped`` is what came before it in the client's SQL (comments, ``EXPLAIN``),
    so a syntax error says where it is in what the client sent (``None``: generated text, no position)."""
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except (ParseError, TokenError) as err:
        raise SqlRefusedError(f"Syntax error: {_first_line(err)}") from None
    if len(statements) != 1:
        raise SqlRefusedError(f"Exactly one SQL statement is allowed, got {len(statements)}")
    if _bare_expression(statements[0]):
        # sqlglot reads a lone expression as a statement: ``SELEC kind`` is the column SELEC aliased kind.
        first = sqlglot.tokenize(text, read=dialect)[0]
        where = "" if skipped is None else _position(skipped + text[: first.start])
        raise SqlRefusedError(f"Syntax error: {first.text!r} does not start a SQL statement.{where}")
    return statements[0]


def _position(before: str) -> str:
    """Line and column (from 1) of the character after ``before``, in sqlglot's words."""
    column = len(before) - before.rfind("\n")  # rfind is -1 on the first line
    line = before.count("\n") + 1
    return f" Line {line}, Col: {column}."


def _bare_expression(tree: exp.Expression) -> bool:
    """A value, column or alias on its own: no statement keyword, so a misspelt one (``SELEC``)."""
    return isinstance(tree, (exp.Condition, exp.Alias)) and not isinstance(tree, exp.Query)


def _classify(tree: exp.Expression) -> str | None:
    if isinstance(tree, exp.Query):
        return None
    kind = next((name for cls, name in _WRITE_KINDS.items() if isinstance(tree, cls)), None)
    if kind is None:
        raise SqlRefusedError(f"{_statement_name(tree)} statements are not allowed; only queries and INSERT, CREATE TABLE AS, DELETE, UPDATE")
    if isinstance(tree, exp.Create):
        _check_ctas(tree)
    if isinstance(tree, exp.Insert):
        if not isinstance(write_target(tree), exp.Table) or tree.args.get("is_function") or tree.args.get("overwrite"):
            raise SqlRefusedError("INSERT must name a catalog table (no INSERT OVERWRITE, directories or functions)")
        if tree.expression is None:
            raise SqlRefusedError("INSERT needs a query or VALUES")
    return kind


def write_target(tree: exp.Expression) -> exp.Expression:
    """The table a write statement writes (``INSERT INTO t (a, b)`` wraps it in a column list)."""
    target = tree.this
    return target.this if isinstance(target, exp.Schema) else target


def _check_ctas(tree: exp.Create) -> None:
    properties = tree.args.get("properties")
    if str(tree.args.get("kind", "")).upper() != "TABLE" or not isinstance(tree.this, exp.Table):
        raise SqlRefusedError("Only CREATE TABLE ... AS SELECT is allowed (create other objects through the catalog)")
    if tree.expression is None:
        raise SqlRefusedError("CREATE TABLE needs AS SELECT here; create empty tables through the REST catalog")
    if tree.args.get("replace") or (properties and properties.find(exp.TemporaryProperty)):
        raise SqlRefusedError("CREATE OR REPLACE and temporary tables are not allowed")


def _check_node(node: exp.Expression, dialect: str) -> None:
    if isinstance(node, exp.Command):
        raise SqlRefusedError(f"{node.name.upper()} statements are not allowed")
    if isinstance(node, exp.Placeholder):
        raise SqlRefusedError("Unbound parameter: send values with EXECUTE IMMEDIATE ... USING")
    if isinstance(node, exp.Table):
        _check_table(node)
    elif isinstance(node, exp.Func):
        _check_function(node, dialect)


def _check_table(table: exp.Table) -> None:
    source = table.this
    if isinstance(source, exp.Func) and not isinstance(source, _SAFE_TABLE_FUNCTIONS):
        raise SqlRefusedError(f"Table function {_function_name(source)}(...) is not allowed; query catalog tables by name")
    for part in table.parts:
        if isinstance(part, exp.Identifier) and _PATH_LIKE.search(part.name):
            raise SqlRefusedError(f"File paths are not tables: {part.name!r}")
        if not isinstance(part, (exp.Identifier, exp.Func)):
            raise SqlRefusedError(f"Not a table name: {part.sql()}")


def _check_function(func: exp.Func, dialect: str) -> None:
    name = _function_name(func)
    if name in _DENIED_FUNCTIONS or name.startswith(_DENIED_PREFIXES):
        raise SqlRefusedError(f"Function {name}() is not allowed: it reaches outside the catalog's tables")
    if isinstance(func, exp.Anonymous) and dialect != "duckdb" and name not in _PORTABLE_UNKNOWN_FUNCTIONS:
        raise SqlRefusedError(
            f"Function {name}() is not supported in the {dialect} dialect: it has no known DuckDB translation, "
            "and running DuckDB's function of that name could give a different answer"
        )


def _function_name(func: exp.Func) -> str:
    return (func.name if isinstance(func, exp.Anonymous) else func.sql_name()).lower()


def _statement_name(tree: exp.Expression) -> str:
    if isinstance(tree, exp.Command):  # what sqlglot could not parse keeps its first keyword
        return tree.name.upper()
    if isinstance(tree, exp.Create):
        return f"CREATE {tree.args.get('kind') or ''}".strip()
    return type(tree).__name__.upper()


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__
