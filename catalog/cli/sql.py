"""``iceshelf sql "SELECT …"``: run one statement on a running server and print the result; and the
``serve`` flags that set the SQL endpoint's limits.

The client speaks the Athena-style API: submit, long-poll until final, fetch the result as Arrow.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from dataclasses import replace

import httpx
import pyarrow as pa

from iceshelf.catalog.settings import Settings

_FORMATS = ("table", "csv", "json")
_POLL_S = 30


def add_serve_flags(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--sql-read-only", action="store_true", default=None, help="refuse SQL writes (env ICESHELF_SQL_READ_ONLY)")
    serve.add_argument("--sql-timeout", type=float, help="seconds a SQL query may run (env ICESHELF_SQL_TIMEOUT, default 300)")
    serve.add_argument("--sql-memory-limit", help="DuckDB memory per SQL query, e.g. 2GB (env ICESHELF_SQL_MEMORY_LIMIT)")
    serve.add_argument("--sql-max-rows", type=int, help="largest SQL result in rows (env ICESHELF_SQL_MAX_ROWS, default 1000000)")
    serve.add_argument("--sql-pool-size", type=int, help="SQL queries run at once (env ICESHELF_SQL_POOL_SIZE, default 4)")


#: ``SqlSettings`` field -> the ``serve`` flag that sets it.
_SERVE_FLAGS = {"read_only": "sql_read_only", "timeout_s": "sql_timeout", "memory_limit": "sql_memory_limit", "max_rows": "sql_max_rows", "pool_size": "sql_pool_size"}


def with_serve_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    given = {name: getattr(args, flag) for name, flag in _SERVE_FLAGS.items() if getattr(args, flag) is not None}
    return replace(settings, sql=replace(settings.sql, **given))


def add_commands(commands: argparse._SubParsersAction) -> None:
    sql = commands.add_parser("sql", help="run a SQL statement on a running Iceshelf server")
    sql.add_argument("statement", help="one SQL statement")
    sql.add_argument("--url", help="server URL (default: http://ICESHELF_HOST:ICESHELF_PORT)")
    sql.add_argument("--format", choices=_FORMATS, default="table", help="output format (default table)")
    sql.add_argument("--dialect", default="duckdb", help="duckdb (default), trino, athena or spark")
    sql.add_argument("--namespace", help="default namespace for one-part table names")
    sql.add_argument("--warehouse", help="warehouse (default: the server's default)")
    sql.add_argument("--timeout", type=float, help="seconds the query may run (at most the server's limit)")
    sql.add_argument("--token", help="bearer token or API key, when the server requires credentials (env ICESHELF_TOKEN)")
    sql.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    url = (args.url or settings.url).rstrip("/")
    token = args.token or settings.auth.client_token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"sql": args.statement, "dialect": args.dialect, "namespace": args.namespace, "warehouse": args.warehouse}
    if args.timeout:
        body["timeout_seconds"] = args.timeout
    with httpx.Client(base_url=url, timeout=_POLL_S + 30, headers=headers) as client:
        started = client.post("/v1/sql/queries", json=body)
        if started.is_error:
            return _fail(started.json().get("error", {}).get("message", started.text))
        record = started.json()
        while record["state"] in ("QUEUED", "RUNNING"):
            record = client.get(f"/v1/sql/queries/{record['query_id']}", params={"wait": _POLL_S}).raise_for_status().json()
        if record["state"] != "SUCCEEDED":
            return _fail(f"{record['state']}: {(record.get('error') or {}).get('message', '')}")
        response = client.get(
            f"/v1/sql/queries/{record['query_id']}/results", headers={"Accept": "application/vnd.apache.arrow.stream"}
        ).raise_for_status()
    table = pa.ipc.open_stream(response.content).read_all()
    sys.stdout.write(render(table, args.format))
    return 0


def render(table: pa.Table, fmt: str) -> str:
    from iceshelf.sql.types import rows_json

    rows = rows_json(table)
    names = table.column_names
    if fmt == "json":
        return json.dumps([dict(zip(names, row)) for row in rows], indent=1) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
        return out.getvalue()
    cells = [names, *[["NULL" if v is None else json.dumps(v) if isinstance(v, (list, dict)) else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(names))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines) + f"\n({table.num_rows} row{'s' if table.num_rows != 1 else ''})\n"


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1
