"""Table operations of the Iceberg REST spec: create, load, commit, drop, rename, register, metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from iceshelf.catalog import auth
from iceshelf.catalog.delegation import table_access, vended_access
from iceshelf.catalog.deps import identifier_param, namespace_param, warehouse
from iceshelf.catalog.idempotency import HEADER as IDEMPOTENCY_HEADER
from iceshelf.catalog.models import (
    CommitTableRequest,
    CreateTableRequest,
    RegisterTableRequest,
    RenameTableRequest,
    ReportMetricsRequest,
)
from iceshelf.catalog.paging import list_identifiers
from iceshelf.catalog.results import json_bytes, load_table_response
from iceshelf.tables.commit.committer import TableChange
from iceshelf.tables.errors import BadRequestError, NoSuchTableError
from iceshelf.tables.metadata.builder import serialize_metadata
from iceshelf.tables.names import Identifier, check_identifier, check_name
from iceshelf.tables.tablestore import LoadedTable

router = APIRouter(prefix="/v1/{prefix}", tags=["tables"])
log = logging.getLogger("iceshelf.catalog")


@router.get("/namespaces/{namespace}/tables", operation_id="listTables")
def list_tables(
    request: Request,
    prefix: str,
    namespace: str,
    page_token: str | None = Query(None, alias="pageToken"),
    page_size: int | None = Query(None, alias="pageSize"),
) -> JSONResponse:
    return list_identifiers(request, prefix, namespace, "table", page_token, page_size)


@router.post("/namespaces/{namespace}/tables", operation_id="createTable")
def create_table(request: Request, prefix: str, namespace: str, body: CreateTableRequest) -> Response:
    tables = warehouse(request, prefix)
    ident = Identifier(namespace_param(namespace), check_name(body.name, "table name"))
    tables.namespaces.require_open(ident.namespace)
    metadata = tables.new_metadata(
        ident, body.table_schema, body.location, body.partition_spec, body.write_order, body.properties
    )
    if body.stage_create:
        staged = serialize_metadata(tables.stage_table(ident, metadata))
        access = table_access(request, tables, ident, metadata.location)
        return Response(b'{"metadata":' + staged + b"," + access.json_fields() + b"}", media_type="application/json")
    loaded = tables.create_table(ident, metadata)
    return load_table_response(request, tables, loaded, access=table_access(request, tables, ident, loaded.metadata.location))


@router.get("/namespaces/{namespace}/tables/{table}", operation_id="loadTable")
def load_table(request: Request, prefix: str, namespace: str, table: str, snapshots: str = "all") -> Response:
    if snapshots not in ("all", "refs"):
        raise BadRequestError(f"snapshots must be 'all' or 'refs', not {snapshots!r}")
    tables = warehouse(request, prefix)
    loaded = tables.load_table(identifier_param(namespace, table))
    access = table_access(request, tables, loaded.identifier, loaded.metadata.location)
    return load_table_response(request, tables, loaded, snapshots, access)


@router.head("/namespaces/{namespace}/tables/{table}", operation_id="tableExists")
def table_exists(request: Request, prefix: str, namespace: str, table: str) -> Response:
    ident = identifier_param(namespace, table)
    if not warehouse(request, prefix).table_exists(ident):
        raise NoSuchTableError(f"Table does not exist: {ident}")  # a 404 with the headers of a GET's ErrorModel
    return Response(status_code=204)


@router.post("/namespaces/{namespace}/tables/{table}", operation_id="updateTable")
def update_table(request: Request, prefix: str, namespace: str, table: str, body: CommitTableRequest) -> Response:
    tables = warehouse(request, prefix)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    loaded = tables.commit(TableChange(identifier_param(namespace, table), body.requirements, body.updates, key))
    return _commit_response(loaded)


@router.delete("/namespaces/{namespace}/tables/{table}", operation_id="dropTable", status_code=204)
def drop_table(
    request: Request, prefix: str, namespace: str, table: str, purge_requested: bool = Query(False, alias="purgeRequested")
) -> Response:
    warehouse(request, prefix).drop_table(identifier_param(namespace, table), purge=purge_requested)
    return Response(status_code=204)


@router.post("/namespaces/{namespace}/tables/{table}/unregister", operation_id="unregisterTable")
def unregister_table(request: Request, prefix: str, namespace: str, table: str) -> Response:
    loaded = warehouse(request, prefix).unregister_table(identifier_param(namespace, table))
    return _commit_response(loaded)


@router.post("/namespaces/{namespace}/register", operation_id="registerTable")
def register_table(request: Request, prefix: str, namespace: str, body: RegisterTableRequest) -> Response:
    tables = warehouse(request, prefix)
    ident = Identifier(namespace_param(namespace), check_name(body.name, "table name"))
    loaded = tables.register_table(ident, body.metadata_location, body.overwrite)
    return load_table_response(request, tables, loaded, access=table_access(request, tables, ident, loaded.metadata.location))


@router.post("/tables/rename", operation_id="renameTable", status_code=204)
def rename_table(request: Request, prefix: str, body: RenameTableRequest) -> Response:
    source = check_identifier(tuple(body.source.namespace), body.source.name)
    destination = check_identifier(tuple(body.destination.namespace), body.destination.name)
    tables = warehouse(request, prefix)
    auth.require_move(request, tables.name, source, destination)
    tables.rename_table(source, destination)
    return Response(status_code=204)


@router.post("/namespaces/{namespace}/tables/{table}/metrics", operation_id="reportMetrics", status_code=204)
def report_metrics(request: Request, prefix: str, namespace: str, table: str, body: ReportMetricsRequest) -> Response:
    ident = identifier_param(namespace, table)
    warehouse(request, prefix)  # the warehouse must exist
    request.app.state.metrics_reports[body.report_type] += 1
    log.debug("metrics report %s for %s at snapshot %s", body.report_type, ident, body.snapshot_id)
    return Response(status_code=204)


@router.get("/namespaces/{namespace}/tables/{table}/credentials", operation_id="loadCredentials")
def load_credentials(request: Request, prefix: str, namespace: str, table: str) -> JSONResponse:
    """Vends whenever vending is configured: asking for credentials is what this endpoint is for."""
    tables = warehouse(request, prefix)
    loaded = tables.load_table(identifier_param(namespace, table))  # 404 for a missing table
    access = vended_access(request, tables, loaded.identifier, loaded.metadata.location)
    return JSONResponse({"storage-credentials": access.credentials}, headers=access.cache_headers())


def _commit_response(loaded: LoadedTable) -> Response:
    return Response(
        b'{"metadata-location":' + json_bytes(loaded.metadata_location) + b',"metadata":' + loaded.file.raw + b"}",
        media_type="application/json",
    )
