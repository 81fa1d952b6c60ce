"""Trino's client protocol over the same queries: ``POST /v1/statement``, ``nextUri`` paging, ``DELETE``
to cancel, so the ``trino`` Python client (DB-API and SQLAlchemy), the Trino CLI and JDBC connect.

The session headers choose where names resolve: ``X-Trino-Catalog`` is the warehouse,
``X-Trino-Schema`` the default namespace, ``X-Trino-User`` is recorded with the query. Statements
are read in the Trino dialect. Errors travel as Trino does: HTTP 200 with a FAILED query and an
``error`` object, never as an HTTP error (only an unknown query id is a 404).
"""

from __future__ import annotations

import re
import time

import sqlglot
from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlglot import exp
from sqlglot.errors import SqlglotError

from iceshelf.catalog import auth
from iceshelf.sql.authorize import may_see
from iceshelf.sql.errors import NoSuchQueryError, SqlRefusedError
from iceshelf.sql.history import new_query_id
from iceshelf.sql.queries import Query, QueryRequest, QueryService, State
from iceshelf.sql.types import columns_json, rows_json
from iceshelf.tables.errors import BadRequestError, NoSuchNamespaceError, NoSuchWarehouseError

router = APIRouter(tags=["trino"])

PAGE_ROWS = 10_000
#: How long one ``nextUri`` GET waits for the query to finish (Trino's own default is about 1 s).
_POLL_WAIT_S = 1.0
_STARTED = time.time()

#: Query error type -> (Trino errorName, errorCode, errorType)
_ERRORS = {
    "SqlRefusedError": ("NOT_SUPPORTED", 13, "USER_ERROR"),
    "NoSuchTableError": ("TABLE_NOT_FOUND", 46, "USER_ERROR"),
    "NoSuchNamespaceError": ("SCHEMA_NOT_FOUND", 45, "USER_ERROR"),
    "NoSuchWarehouseError": ("CATALOG_NOT_FOUND", 44, "USER_ERROR"),
    "ForbiddenError": ("PERMISSION_DENIED", 4, "USER_ERROR"),
    "QueryCancelledError": ("USER_CANCELED", 3, "USER_ERROR"),
    "QueryFailedError": ("GENERIC_USER_ERROR", 0, "USER_ERROR"),
    "QueryTimeoutError": ("EXCEEDED_TIME_LIMIT", 131075, "INSUFFICIENT_RESOURCES"),
    "ResultTooLargeError": ("GENERIC_INSUFFICIENT_RESOURCES", 131072, "INSUFFICIENT_RESOURCES"),
}
_INTERNAL = ("GENERIC_INTERNAL_ERROR", 65536, "INTERNAL_ERROR")


def _service(request: Request) -> QueryService:
    return request.app.state.sql


@router.get("/v1/info", operation_id="trinoServerInfo")
def server_info(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "nodeVersion": {"version": request.app.version},
            "environment": "iceshelf",
            "coordinator": True,
            "starting": False,
            "uptime": f"{time.time() - _STARTED:.0f}s",
        }
    )


@router.post("/v1/statement", operation_id="trinoSubmitStatement")
async def submit_statement(request: Request) -> JSONResponse:
    """Answers at once, as Trino does: a client can only cancel once it holds the ``nextUri``."""
    headers = request.headers
    query_request = QueryRequest(
        sql=(await request.body()).decode("utf-8"),
        dialect="trino",
        namespace=headers.get("x-trino-schema"),
        warehouse=headers.get("x-trino-catalog"),
        user=headers.get("x-trino-user"),
    )
    if _USE.match(query_request.sql):
        return await run_in_threadpool(_use, request, query_request)
    query = await run_in_threadpool(_service(request).submit, query_request, auth.principal(request))
    return JSONResponse(await _body(request, query, 0))


_USE = re.compile(r"\s*USE\s", re.I)


def _use(request: Request, query_request: QueryRequest) -> JSONResponse:
    """``USE [catalog.]schema``: a session change, which Trino answers with ``X-Trino-Set-Catalog`` and
    ``X-Trino-Set-Schema`` headers that clients (the CLI, JDBC, the Python client) apply to later
    statements. Checked here against the catalog; no query runs and none is recorded."""
    service = _service(request)
    query = Query(new_query_id(), query_request, query_request.warehouse or service.warehouses.default, update_type="USE")
    query.started_at, changes = query.submitted_at, {}
    try:
        statement = sqlglot.parse_one(query_request.sql, read="trino")
        if not isinstance(statement, exp.Use) or not isinstance(statement.this, exp.Table) or len(statement.this.parts) > 2:
            raise SqlRefusedError("USE takes a schema or catalog.schema")
        *catalog, schema = [part.name for part in statement.this.parts]
        warehouse = catalog[0] if catalog else query_request.warehouse
        if warehouse is None:
            raise SqlRefusedError("USE needs a catalog: write USE catalog.schema, or set the session catalog (X-Trino-Catalog)")
        namespace = tuple(schema.split("."))
        if not (service.warehouses.get(warehouse).namespaces.exists(namespace) and may_see(auth.principal(request), warehouse, namespace)):
            raise NoSuchNamespaceError(f"Schema does not exist: {warehouse}.{schema}")
        changes = {"X-Trino-Set-Catalog": warehouse} if catalog else {}
        changes["X-Trino-Set-Schema"] = schema
        query.state = State.SUCCEEDED
    except (SqlglotError, SqlRefusedError, BadRequestError, NoSuchWarehouseError, NoSuchNamespaceError) as err:
        query.fail(SqlRefusedError(f"Syntax error: {err}") if isinstance(err, SqlglotError) else err)
    query.finished_at = time.time()
    body = _head(request, query)
    if query.state is State.SUCCEEDED:
        body["updateType"] = "USE"
    else:
        body["error"] = _error(query)
    return JSONResponse(body, headers=changes)


@router.get("/v1/statement/{phase}/{query_id}/{token}", operation_id="trinoStatementNext")
async def next_page(phase: str, query_id: str, token: int, request: Request) -> JSONResponse:
    """A query and its result in memory are answered on the event loop: no thread hand-off per page."""
    query = await _service(request).wait(await _find(request, query_id), _POLL_WAIT_S)
    return JSONResponse(await _body(request, query, token))


@router.delete("/v1/statement/{phase}/{query_id}/{token}", operation_id="trinoCancelStatement")
async def cancel_statement(phase: str, query_id: str, token: int, request: Request) -> Response:
    await _find(request, query_id)
    await run_in_threadpool(_service(request).cancel, query_id)
    return Response(status_code=204)


async def _find(request: Request, query_id: str) -> Query:
    """The caller's query, from memory without a thread hop; a 404 (not a Trino error) if there is none."""
    service = _service(request)
    try:
        return service.owned(await service.find(query_id), auth.principal(request))
    except NoSuchQueryError:
        raise HTTPException(404, f"Query not found: {query_id}") from None


def _head(request: Request, query: Query) -> dict:
    base = str(request.base_url).rstrip("/")
    return {"id": query.id, "infoUri": f"{base}/v1/sql/queries/{query.id}", "stats": _stats(query), "warnings": []}


async def _body(request: Request, query: Query, token: int) -> dict:
    base = str(request.base_url).rstrip("/")
    body = _head(request, query)
    if not query.state.final:
        body["nextUri"] = f"{base}/v1/statement/executing/{query.id}/{token}"
        return body
    if query.state is not State.SUCCEEDED:
        body["error"] = _error(query)
        return body
    table = await _service(request).result_of(query)
    body["columns"] = columns_json(table.schema)
    if query.update_type is not None:
        body["updateType"], body["updateCount"] = query.update_type, query.update_count
    start, stop = token * PAGE_ROWS, min((token + 1) * PAGE_ROWS, table.num_rows)
    if start < stop:
        body["data"] = rows_json(table, start, stop)
    if stop < table.num_rows:
        body["nextUri"] = f"{base}/v1/statement/executing/{query.id}/{token + 1}"
    return body


def _stats(query: Query) -> dict:
    record = query.record()
    state = {State.SUCCEEDED: "FINISHED", State.CANCELLED: "FAILED"}.get(query.state, query.state.value)
    return {
        "state": state,
        "queued": query.state is State.QUEUED,
        "scheduled": query.started_at is not None,
        "nodes": 1,
        "totalSplits": 0,
        "queuedSplits": 0,
        "runningSplits": 0,
        "completedSplits": 0,
        "cpuTimeMillis": 0,
        "wallTimeMillis": record["execution_ms"] or 0,
        "queuedTimeMillis": record["queued_ms"],
        "elapsedTimeMillis": record["total_ms"],
        "processedRows": query.rows or 0,
        "processedBytes": query.bytes_scanned or 0,
        "physicalInputBytes": query.bytes_scanned or 0,
        "peakMemoryBytes": 0,
        "spilledBytes": 0,
    }


def _error(query: Query) -> dict:
    error_type = query.error_type or "QueryCancelledError"
    message = query.error_message or "Query was cancelled"
    name, code, kind = _ERRORS.get(error_type, _INTERNAL)
    if error_type == "SqlRefusedError" and message.startswith("Syntax error"):
        name, code = "SYNTAX_ERROR", 1
    return {
        "message": message,
        "errorCode": code,
        "errorName": name,
        "errorType": kind,
        "failureInfo": {"type": error_type, "message": message, "suppressed": [], "stack": []},
    }
