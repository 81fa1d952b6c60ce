"""Trino's client protocol over the same queries: ``POST /v1/statement``, ``nextUri`` paging, ``DELETE``
to cancel, so the ``trino`` Python client (DB-API and SQLAlchemy), the Trino CLI and JDBC connect.

The session headers choose where names resolve: ``X-Trino-Catalog`` is the warehouse,
``X-Trino-Schema`` the default namespace, ``X-Trino-User`` is recorded with the query. Statements
are read in the Trino dialect. Errors travel as Trino does: HTTP 200 with a FAILED query and an
``error`` object, never as an HTTP error (only an unknown query id is a 404).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from sql.errors import NoSuchQueryError
from sql.queries import Query, QueryRequest, QueryService, State
from sql.types import columns_json, rows_json

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
    query = await run_in_threadpool(_service(request).submit, query_request)
    return JSONResponse(await run_in_threadpool(_body, request, query, 0))


@router.get("/v1/statement/{phase}/{query_id}/{token}", operation_id="trinoStatementNext")
async def next_page(phase: str, query_id: str, token: int, request: Request) -> JSONResponse:
    service = _service(request)
    query = await service.wait(await run_in_threadpool(_get, service, query_id), _POLL_WAIT_S)
    return JSONResponse(await run_in_threadpool(_body, request, query, token))


@router.delete("/v1/statement/{phase}/{query_id}/{token}", operation_id="trinoCancelStatement")
def cancel_statement(phase: str, query_id: str, token: int, request: Request) -> Response:
    _get(_service(request), query_id)
    _service(request).cancel(query_id)
    return Response(status_code=204)


def _get(service: QueryService, query_id: str) -> Query:
    try:
        return service.get(query_id)
    except NoSuchQueryError:
        raise HTTPException(404, f"Query not found: {query_id}") from None


def _body(request: Request, query: Query, token: int) -> dict:
    base = str(request.base_url).rstrip("/")
    body: dict = {"id": query.id, "infoUri": f"{base}/v1/sql/queries/{query.id}", "stats": _stats(query), "warnings": []}
    if not query.state.final:
        body["nextUri"] = f"{base}/v1/statement/executing/{query.id}/{token}"
        return body
    if query.state is not State.SUCCEEDED:
        body["error"] = _error(query)
        return body
    table = _service(request).result(query)
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
