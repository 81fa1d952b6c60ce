"""The second wall and the workhorse: a pool of sandboxed DuckDB databases that run plans.

Each pooled session is a DuckDB database of its own (not a cursor of a shared one), so the memory
limit holds per query and one query's state never leaks into the next. A session is set up once:
the Iceberg extensions from their wheels, the warehouse's S3 credentials as a DuckDB secret, an
ATTACH of this server's own REST catalog per warehouse (the write path: DuckDB's Iceberg writer
commits through ``POST /transactions/commit``, i.e. ``tables/commit.py``; attached on a session's
first write, so reads never wait for it), and locked down:
file access limited to the warehouses (``allowed_directories`` + ``enable_external_access=false``),
no extension installs or autoloading, no Python replacement scans, ``lock_configuration=true``.
Even a statement the parser wrongly let through cannot read ``/etc/passwd`` or change a setting.
"""

from __future__ import annotations

import queue
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping
from urllib.parse import unquote, urlparse

import duckdb
import pyarrow as pa

from iceshelf.sql.errors import QueryCancelledError, QueryFailedError, ResultTooLargeError
from iceshelf.sql.rewrite import Plan, attach_alias
from iceshelf.sql.settings import SqlSettings
from iceshelf.tables.duckdb_extensions import install_extensions
from iceshelf.tables.settings import S3Settings
from iceshelf.tables.warehouses import Warehouses

_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class Outcome:
    table: pa.Table
    #: Rows written, for INSERT/DELETE/UPDATE/CTAS.
    update_count: int | None = None


@dataclass(frozen=True)
class EngineConfig:
    """What the engine takes from the process's settings: its own limits, the S3 key its DuckDB reads
    S3 warehouses with, and this server's REST endpoint, which its DuckDB attaches for writes."""

    limits: SqlSettings
    s3: S3Settings
    catalog_url: str


def _allowed_locations(warehouses: Warehouses, url: str) -> list[str]:
    allowed = [url.rstrip("/") + "/"]
    for table_store in warehouses.tables.values():
        for root in table_store.objects.root_uris:  # the warehouse's and its allowed locations'
            root = root.rstrip("/") + "/"
            allowed.append(unquote(urlparse(root).path) if root.startswith("file:") else root)
    return allowed


class Session:
    """One sandboxed DuckDB database; runs one plan at a time."""

    def __init__(self, config: EngineConfig, warehouses: Warehouses, temp_directory: str) -> None:
        limits = config.limits
        self.connection = duckdb.connect(
            ":memory:",
            config={
                "memory_limit": limits.memory_limit,
                "temp_directory": temp_directory,
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "allow_community_extensions": False,
                "python_enable_replacements": False,
                "allow_persistent_secrets": False,
            },
        )
        con = self.connection
        install_extensions(con)
        con.execute("SET TimeZone = 'UTC'")
        s3 = config.s3
        if s3.access_key_id and any(t.objects.root_uri.startswith("s3://") for t in warehouses.tables.values()):
            options = {"KEY_ID": s3.access_key_id, "SECRET": s3.secret_access_key or "", "REGION": s3.region}
            if s3.session_token:
                options["SESSION_TOKEN"] = s3.session_token
            if s3.endpoint_url:
                endpoint = urlparse(s3.endpoint_url)
                options |= {"ENDPOINT": endpoint.netloc, "URL_STYLE": "path", "USE_SSL": str(endpoint.scheme == "https").lower()}
            con.execute(f"CREATE SECRET iceshelf_s3 (TYPE s3, {', '.join(f'{k} {_literal(v)}' for k, v in options.items())})")
        self.url = config.catalog_url
        self.attached: set[str] = set()
        allowed = ", ".join(_literal(p) for p in _allowed_locations(warehouses, self.url))
        con.execute(f"SET allowed_directories = [{allowed}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        self.max_rows = limits.max_rows

    def run(self, plan: Plan, relations: Mapping[str, pa.Table], token: str | None = None) -> Outcome:
        """Run the plan's statements; the last one's result, at most ``max_rows`` rows, is the answer.

        ``token`` is the caller's own bearer token when authentication is on: the writes then reach
        the catalog as the caller, so its grants are checked a second time by the REST layer, and the
        catalog is detached again afterwards so no later query of another caller inherits it.
        """
        con = self.connection
        try:
            for warehouse in sorted(plan.writes - self.attached):
                self._attach(warehouse, token)
            for name, relation in relations.items():
                con.register(name, relation)
            if plan.create is not None:
                # CREATE + INSERT in one transaction: DuckDB stage-creates the table and, at COMMIT,
                # commits it with its data in one creating commit (``assert-create``). Until then no
                # one sees the table; a failure rolls back and leaves none behind.
                con.execute("BEGIN TRANSACTION")
                self._create(*plan.create)
            for text in plan.statements[:-1]:
                con.execute(text).fetchall()
            table = self._fetch(con.execute(plan.statements[-1]))
            if plan.create is not None:
                con.execute("COMMIT")
        except duckdb.Error as err:
            if isinstance(err, duckdb.InterruptException):
                raise QueryCancelledError("Query was interrupted") from None
            raise QueryFailedError(str(err)) from None
        finally:
            if plan.create is not None:
                self._rollback()
            for name in relations:
                try:
                    con.unregister(name)
                except duckdb.Error:
                    pass  # never registered
            if token is not None:
                self._detach_all()
        if plan.statement.writes:
            count = int(table.column(0)[0].as_py()) if table.num_rows and table.num_columns else 0
            return Outcome(pa.table({"rows": pa.array([count], pa.int64())}), count)
        return Outcome(table)

    def _attach(self, warehouse: str, token: str | None) -> None:
        """On the first write: the REST catalog of this very server, so commits take the one commit path."""
        auth = "AUTHORIZATION_TYPE 'none'" if token is None else f"TOKEN {_literal(token)}"
        self.connection.execute(
            f"ATTACH {_literal(warehouse)} AS {_identifier(attach_alias(warehouse))} "
            f"(TYPE iceberg, ENDPOINT {_literal(self.url)}, {auth})"
        )
        self.attached.add(warehouse)

    def _detach_all(self) -> None:
        for warehouse in sorted(self.attached):
            self.connection.execute(f"DETACH {_identifier(attach_alias(warehouse))}")
        self.attached.clear()

    def _create(self, target: str, query: str) -> None:
        columns = self.connection.execute(f"DESCRIBE {query}").fetchall()
        definition = ", ".join(f"{_identifier(name)} {type_}" for name, type_, *_ in columns)
        self.connection.execute(f"CREATE TABLE {target} ({definition})")

    def _fetch(self, result: duckdb.DuckDBPyConnection) -> pa.Table:
        reader = result.to_arrow_reader(_BATCH_ROWS)
        batches, rows = [], 0
        for batch in reader:
            rows += batch.num_rows
            if rows > self.max_rows:
                raise ResultTooLargeError(f"The result has more than {self.max_rows} rows (the server's limit); add a LIMIT or aggregate")
            batches.append(batch)
        return pa.Table.from_batches(batches, schema=reader.schema)

    def _rollback(self) -> None:
        """End a transaction the plan left open (after a failure); after a COMMIT there is none."""
        try:
            self.connection.execute("ROLLBACK")
        except duckdb.Error:
            pass  # no transaction is active

    def interrupt(self) -> None:
        self.connection.interrupt()

    def close(self) -> None:
        self.connection.close()


class Engine:
    """At most ``pool_size`` sessions, created on first use; a query waits for a free one."""

    def __init__(self, config: EngineConfig, warehouses: Warehouses) -> None:
        self.config = config
        self.warehouses = warehouses
        self._temp = tempfile.TemporaryDirectory(prefix="iceshelf-sql-")
        self._idle: queue.LifoQueue[Session] = queue.LifoQueue()
        self._created = 0
        self._all: list[Session] = []
        self._lock = threading.Lock()

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._acquire()
        try:
            yield session
        finally:
            self._idle.put(session)

    def _acquire(self) -> Session:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            grow = self._created < self.config.limits.pool_size
            if grow:
                self._created += 1
        if not grow:
            return self._idle.get()
        try:
            session = Session(self.config, self.warehouses, tempfile.mkdtemp(dir=self._temp.name))
        except BaseException:
            with self._lock:
                self._created -= 1
            raise
        with self._lock:
            self._all.append(session)
        return session

    def prewarm(self) -> None:
        """Create one session in the background: loading the extensions takes most of a second."""
        threading.Thread(target=lambda: self._idle.put(self._acquire()), name="iceshelf-sql-prewarm", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            sessions, self._all = self._all, []
        for session in sessions:
            session.close()
        self._temp.cleanup()


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _identifier(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'
