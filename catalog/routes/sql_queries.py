"""The Athena-style JSON API: start a query, poll it, page its results (JSON or Arrow), cancel, list.

``POST /v1/sql/queries`` answers at once with the query's id and state (400 for a refused
statement, 404 for an unknown table); ``GET …/{id}?wait=s`` and ``GET …/{id}/results?wait=s``
long-poll so a client needs no sleep loop. ``Accept: application/vnd.apache.arrow.stream`` on
the results returns the whole result as one Arrow IPC stream.
"""

from __future__ import annotations

import pyarrow as pa
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from iceshelf.catalog import auth
from iceshelf.sql.queries import QueryRequest, QueryService
from iceshelf.sql.types import rows_json, trino_type

router = APIRouter(prefix="/v1/sql", tags=["sql"])

ARROW_STREAM = "application/vnd.apache.arrow.stream"
_MAX_WAIT_S = 60.0


class StartQuery(BaseModel):
    sql: str
    dialect: str = "duckdb"
    namespace: str | None = None
    warehouse: str | None = None
    client_request_token: str | None = Field(None, min_length=1, max_length=128)
    timeout_seconds: float | None = Field(None, gt=0)


def _service(request: Request) -> QueryService:
    return request.app.state.sql


@router.post("/queries", operation_id="startQuery")
def start_query(body: StartQuery, request: Request) -> JSONResponse:
    query = _service(request).submit(
        QueryRequest(
            sql=body.sql,
            dialect=body.dialect,
            namespace=body.namespace,
            warehouse=body.warehouse,
            client_request_token=body.client_request_token,
            timeout_s=body.timeout_seconds,
            user=request.headers.get("x-iceshelf-user"),
        ),
        auth.principal(request),
    )
    if query.failure is not None:
        raise query.failure
    return JSONResponse(query.record())


@router.get("/queries", operation_id="listQueries")
def list_queries(
    request: Request,
    warehouse: str | None = None,
    limit: int = Query(50, ge=1, le=1000),
    page_token: str | None = None,
) -> JSONResponse:
    records = _service(request).list(warehouse, limit, auth.principal(request), page_token)
    next_token = records[-1]["query_id"] if len(records) == limit else None
    return JSONResponse({"queries": records, "next_page_token": next_token})


@router.get("/queries/{query_id}", operation_id="getQuery")
async def get_query(query_id: str, request: Request, wait: float = Query(0, ge=0, le=_MAX_WAIT_S)) -> JSONResponse:
    service = _service(request)
    query = await service.wait(service.owned(await service.find(query_id), auth.principal(request)), wait)
    return JSONResponse(query.record())


@router.get("/queries/{query_id}/results", operation_id="getQueryResults")
async def get_query_results(
    query_id: str,
    request: Request,
    wait: float = Query(0, ge=0, le=_MAX_WAIT_S),
    page_token: int = Query(0, ge=0),
    max_rows: int = Query(1000, ge=1, le=100_000),
) -> Response:
    service = _service(request)
    query = await service.wait(service.owned(await service.find(query_id), auth.principal(request)), wait)
    table = await service.result_of(query)
    if ARROW_STREAM in request.headers.get("accept", ""):
        return Response(_arrow_stream(table), media_type=ARROW_STREAM, headers={"X-Iceshelf-Query-Id": query.id})
    stop = min(page_token + max_rows, table.num_rows)
    return JSONResponse(
        {
            "query_id": query.id,
            "columns": [{"name": f.name, "type": trino_type(f.type).name} for f in table.schema],
            "rows": rows_json(table, page_token, stop),
            "total_rows": table.num_rows,
            "next_page_token": str(stop) if stop < table.num_rows else None,
        }
    )


@router.delete("/queries/{query_id}", operation_id="cancelQuery")
def cancel_query(query_id: str, request: Request) -> JSONResponse:
    service = _service(request)
    service.owned(service.get(query_id), auth.principal(request))
    return JSONResponse(service.cancel(query_id).record())


def _arrow_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
