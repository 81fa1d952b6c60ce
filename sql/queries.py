"""The life of a query, shared by both protocols: submit -> QUEUED -> RUNNING -> a final state.

``submit`` checks and plans synchronously (a refusal or an unknown table fails the query at once,
with the typed error kept for the protocol to render), then hands the plan to a worker pool as
large as the engine's session pool: a query is QUEUED while every session is busy. Cancel works
in either state (a running query's DuckDB is interrupted); the timeout is a deadline doing the same.
Final records and results are written to the warehouse (``sql/history.py``) by one background
writer, so a query's latency never waits on history; recent queries are also kept in memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Callable

import pyarrow as pa

from iceshelf.sql.authorize import authorize, may_manage_queries
from iceshelf.sql.check import check
from iceshelf.sql.deadlines import Deadlines
from iceshelf.sql.engine import Engine, EngineConfig
from iceshelf.sql.errors import NoSuchQueryError, QueryCancelledError, QueryNotFinishedError, QueryTimeoutError
from iceshelf.sql.history import History, new_query_id
from iceshelf.sql.resolve import WarehouseCatalog
from iceshelf.sql.rewrite import Plan, rewrite
from iceshelf.sql.system_tables import materialize
from iceshelf.tables.access import OPEN, Principal
from iceshelf.tables.errors import NoSuchNamespaceError, NoSuchTableError, NoSuchWarehouseError
from iceshelf.tables.settings import CacheSettings
from iceshelf.tables.warehouses import Warehouses

log = logging.getLogger("iceshelf.sql")

_KEPT_IN_MEMORY = 512
_RESULT_BYTES_IN_MEMORY = 256 * 1024 * 1024
#: Outcomes a client caused (refused, unknown names, failed in DuckDB, limits): not logged as faults.
_EXPECTED = (ValueError, LookupError, RuntimeError, NoSuchTableError, NoSuchNamespaceError)


class State(str, Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def final(self) -> bool:
        return self in (State.SUCCEEDED, State.FAILED, State.CANCELLED)


@dataclass(frozen=True)
class QueryRequest:
    sql: str
    dialect: str = "duckdb"
    #: Default namespace for one-part table names; levels separated by dots.
    namespace: str | None = None
    warehouse: str | None = None
    client_request_token: str | None = None
    #: Lower than the server's timeout only; ``None``: the server's.
    timeout_s: float | None = None
    user: str | None = None


@dataclass
class Query:
    id: str
    request: QueryRequest
    warehouse: str
    state: State = State.QUEUED
    submitted_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    update_type: str | None = None
    update_count: int | None = None
    rows: int | None = None
    bytes_scanned: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    #: The typed error of a query that failed before it ran, for the protocol to render (not persisted).
    failure: Exception | None = None
    result: pa.Table | None = None
    done: Future = field(default_factory=Future)
    cancel_requested: bool = False
    #: Its record and result are in the warehouse's history.
    persisted: bool = False
    timed_out: bool = False
    interrupt: Callable[[], None] | None = None  # the running session's, while it runs

    def record(self) -> dict:
        """The JSON record: what the status endpoint answers and what history keeps."""
        end = self.finished_at or time.time()
        return {
            "query_id": self.id,
            "sql": self.request.sql,
            "dialect": self.request.dialect,
            "warehouse": self.warehouse,
            "namespace": self.request.namespace,
            "user": self.request.user,
            "state": self.state.value,
            "submitted_at": self.submitted_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "queued_ms": _ms((self.started_at or end) - self.submitted_at),
            "execution_ms": _ms(end - self.started_at) if self.started_at else None,
            "total_ms": _ms(end - self.submitted_at),
            "rows": self.rows,
            "bytes_scanned": self.bytes_scanned,
            "update_type": self.update_type,
            "update_count": self.update_count,
            "error": None if self.error_type is None else {"type": self.error_type, "message": self.error_message},
        }

    @classmethod
    def from_record(cls, record: dict) -> "Query":
        request = QueryRequest(
            sql=record["sql"], dialect=record["dialect"], namespace=record["namespace"], warehouse=record["warehouse"], user=record.get("user")
        )
        error = record.get("error") or {}
        query = cls(
            id=record["query_id"],
            request=request,
            warehouse=record["warehouse"],
            state=State(record["state"]),
            submitted_at=record["submitted_at"],
            started_at=record["started_at"],
            finished_at=record["finished_at"],
            update_type=record.get("update_type"),
            update_count=record.get("update_count"),
            rows=record.get("rows"),
            bytes_scanned=record.get("bytes_scanned"),
            error_type=error.get("type"),
            error_message=error.get("message"),
        )
        query.persisted = True
        query.done.set_result(None)
        return query

    def fail(self, err: Exception, state: State = State.FAILED) -> None:
        self.error_type, self.error_message = type(err).__name__, str(err) or type(err).__name__
        self.state = state


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def namespace_levels(namespace: str | None) -> tuple[str, ...] | None:
    return tuple(namespace.split(".")) if namespace else None


class QueryService:
    def __init__(
        self,
        config: EngineConfig,
        warehouses: Warehouses,
        token_for: Callable[[Principal], str | None],
        cache_bytes: int = CacheSettings().sql_bytes,
    ) -> None:
        """``token_for`` mints the bearer token a query's writes reach the catalog with (``None``: auth off);
        ``cache_bytes`` bounds the resolver's caches."""
        self.limits = config.limits
        self.token_for = token_for
        self.warehouses = warehouses
        self.catalog = WarehouseCatalog(warehouses, cache_bytes)
        self.engine = Engine(config, warehouses)
        self.engine.prewarm()
        self.history = History(warehouses)
        self._workers = ThreadPoolExecutor(config.limits.pool_size, thread_name_prefix="iceshelf-sql")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="iceshelf-sql-history")
        self._deadlines = Deadlines()
        self._queries: OrderedDict[str, Query] = OrderedDict()
        #: Persisted results still in memory, oldest first, with their sizes: trimmed to a budget.
        self._held: OrderedDict[str, tuple[Query, int]] = OrderedDict()
        self._held_bytes = 0
        self._lock = threading.Lock()

    # -- submit -----------------------------------------------------------------------------

    def submit(self, request: QueryRequest, caller: Principal) -> Query:
        """Start a query. Planning errors fail it at once (``query.failure`` holds the typed error).

        With authentication on, the query belongs to the authenticated caller, whatever user name the
        client claims; only it (or a warehouse admin) may see, fetch or cancel it.
        """
        if caller is not OPEN:
            request = replace(request, user=caller.name)
        try:
            warehouse = self.warehouses.get(request.warehouse).name
        except NoSuchWarehouseError as err:
            return self._failed(Query(new_query_id(), request, self.warehouses.default), err)
        query = Query(new_query_id(), request, warehouse)
        self._remember(query)  # before the token is claimed: a concurrent retry here finds it
        if request.client_request_token:
            first = self._claim(query)
            if first != query.id:
                return self.get(first)
        try:
            statement = check(request.sql, request.dialect, read_only=self.limits.read_only, namespace=request.namespace)
            query.update_type = statement.update_type
            plan = rewrite(statement, self.catalog, namespace_levels(request.namespace), warehouse)
            authorize(plan, caller)
        except Exception as err:
            return self._failed(query, err)
        self._workers.submit(self._run, query, plan, caller)
        return query

    def _claim(self, query: Query) -> str:
        """The query the client request token stands for; this one is forgotten if it is a retry."""
        try:
            first = self.history.claim_token(query.warehouse, query.request.client_request_token or "", query.id, query.request.sql)
        except BaseException:
            self._forget(query)
            raise
        if first != query.id:
            self._forget(query)
        return first

    def _failed(self, query: Query, err: Exception) -> Query:
        query.failure = err
        self._remember(query)
        self._finish(query, err)
        return query

    def _run(self, query: Query, plan: Plan, caller: Principal) -> None:
        if query.state.final:  # cancelled while queued
            return
        try:
            with self.engine.session() as session:
                with self._lock:
                    if query.cancel_requested:
                        raise QueryCancelledError("Query was cancelled")
                    query.state, query.started_at, query.interrupt = State.RUNNING, time.time(), session.interrupt
                deadline = self._deadlines.call_after(self._timeout(query), lambda: self._time_out(query))
                try:
                    relations = {name: materialize(virtual, self.catalog, caller) for name, virtual in plan.virtuals.items()}
                    outcome = session.run(plan, relations, self.token_for(caller) if plan.writes else None)
                finally:
                    self._deadlines.cancel(deadline)
                    with self._lock:  # before the session serves another query: no stray interrupt hits it
                        query.interrupt = None
            query.result, query.rows, query.update_count = outcome.table, outcome.table.num_rows, outcome.update_count
            query.bytes_scanned = self._scanned(plan)
            self._finish(query, None)
        except Exception as err:
            self._finish(query, err)

    def _timeout(self, query: Query) -> float:
        limit = self.limits.timeout_s
        return min(limit, query.request.timeout_s) if query.request.timeout_s else limit

    def _time_out(self, query: Query) -> None:
        query.timed_out = True
        self._interrupt(query)

    def _scanned(self, plan: Plan) -> int | None:
        try:
            return sum(self.catalog.scanned_bytes(scan) for scan in plan.scans)
        except Exception:  # a statistic: never fail a finished query over it
            log.warning("could not measure the bytes scanned", exc_info=True)
            return None

    def _finish(self, query: Query, err: Exception | None) -> None:
        with self._lock:
            if query.state.final:
                return
            if err is None:
                query.state = State.SUCCEEDED
            elif isinstance(err, QueryCancelledError) and query.timed_out:
                query.fail(QueryTimeoutError(f"Query exceeded its time limit of {self._timeout(query):g}s"))
            elif isinstance(err, QueryCancelledError):
                query.fail(err, State.CANCELLED)
            else:
                if not isinstance(err, _EXPECTED):
                    log.error("query %s failed", query.id, exc_info=err)
                query.fail(err)
            query.finished_at = time.time()
        query.done.set_result(None)
        self._writer.submit(self._persist, query)

    def _persist(self, query: Query) -> None:
        try:
            self.history.save(query.warehouse, query.record(), query.result)
        except Exception:  # its result stays in memory only
            log.warning("could not write query %s to the history", query.id, exc_info=True)
            return
        query.persisted = True
        self._hold(query)

    def _hold(self, query: Query) -> None:
        """Keep the newest results in memory up to a budget; older ones are read back from the history.
        Each result is measured once, when it is persisted, so this costs the same however many are held."""
        result = query.result
        if result is None:
            return
        size = result.nbytes
        with self._lock:
            self._held[query.id] = (query, size)
            self._held_bytes += size
            while self._held_bytes > _RESULT_BYTES_IN_MEMORY and len(self._held) > 1:
                oldest, oldest_size = self._held.popitem(last=False)[1]
                self._held_bytes -= oldest_size
                oldest.result = None

    # -- look up, wait, cancel --------------------------------------------------------------

    def _remember(self, query: Query) -> None:
        with self._lock:
            self._queries[query.id] = query
            while len(self._queries) > _KEPT_IN_MEMORY:
                oldest = next(iter(self._queries.values()))
                if not oldest.state.final:
                    break
                self._queries.popitem(last=False)

    def _forget(self, query: Query) -> None:
        with self._lock:
            self._queries.pop(query.id, None)

    def owned(self, query: Query, caller: Principal) -> Query:
        """The query if ``caller`` may see it; otherwise it is as unknown as a query that never ran."""
        if query.request.user != caller.name and not may_manage_queries(caller, query.warehouse):
            raise NoSuchQueryError(f"Query not found: {query.id}")
        return query

    def get(self, query_id: str) -> Query:
        with self._lock:
            query = self._queries.get(query_id)
        return query if query is not None else Query.from_record(self.history.load(query_id))

    async def find(self, query_id: str) -> Query:
        """``get`` for async handlers: a query in memory without a thread hop, the history in a thread."""
        with self._lock:
            query = self._queries.get(query_id)
        return query if query is not None else await asyncio.to_thread(self.get, query_id)

    async def result_of(self, query: Query) -> pa.Table:
        """``result`` for async handlers: a result in memory without a thread hop."""
        result = query.result
        if query.state is State.SUCCEEDED and result is not None:
            return result
        return await asyncio.to_thread(self.result, query)

    async def wait(self, query: Query, seconds: float) -> Query:
        """Wait (without holding a thread) until the query is final or ``seconds`` passed."""
        if seconds > 0 and not query.done.done():
            await asyncio.wait([asyncio.wrap_future(query.done)], timeout=seconds)
        return query

    def cancel(self, query_id: str) -> Query:
        query = self.get(query_id)
        with self._lock:
            if query.state.final:
                return query
            query.cancel_requested = True
            queued = query.state is State.QUEUED
        if queued:
            self._finish(query, QueryCancelledError("Query was cancelled before it started"))
        else:
            self._interrupt(query)
        return query

    def _interrupt(self, query: Query) -> None:
        """Interrupt the query's DuckDB until the query stops: an interrupt that lands between two
        statements (or just before the first) is not kept by DuckDB, so one alone could be lost."""

        def repeat() -> None:
            while not query.done.done():
                with self._lock:
                    if callable(query.interrupt):
                        query.interrupt()
                wait([query.done], timeout=0.05)

        threading.Thread(target=repeat, name=f"interrupt-{query.id[:8]}", daemon=True).start()

    def result(self, query: Query) -> pa.Table:
        if not query.state.final:
            raise QueryNotFinishedError(f"Query {query.id} is {query.state.value}; results are ready when it SUCCEEDED")
        if query.state is not State.SUCCEEDED:
            raise QueryNotFinishedError(f"Query {query.id} {query.state.value}: {query.error_message}")
        result = query.result  # read once: an old result may be dropped from memory meanwhile
        return result if result is not None else self.history.result(query.warehouse, query.id)

    def list(self, warehouse: str | None, limit: int, caller: Principal, after: str | None = None) -> list[dict]:
        """Newest first: this server's unfinished queries, then the warehouse's history (the caller's own,
        or everyone's for a warehouse admin)."""
        name = self.warehouses.get(warehouse).name
        if not may_manage_queries(caller, name):
            return [r for r in self._list(name, limit, after) if r["user"] == caller.name]
        return self._list(name, limit, after)

    def _list(self, name: str, limit: int, after: str | None) -> list[dict]:
        with self._lock:
            live = [q.record() for q in reversed(self._queries.values()) if q.warehouse == name and not q.state.final]
        records = [] if after else live[:limit]
        seen = {r["query_id"] for r in records}
        stored = self.history.page(name, limit + len(seen), after)
        records += [r for r in stored if r["query_id"] not in seen]
        return records[:limit]

    def close(self) -> None:
        with self._lock:
            running = [q for q in self._queries.values() if not q.state.final]
        for query in running:
            self.cancel(query.id)
        self._workers.shutdown(wait=True, cancel_futures=True)
        self._writer.shutdown(wait=True)
        self.engine.close()
