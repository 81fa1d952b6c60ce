"""View operations of the Iceberg REST spec: list, create, load, replace, drop, exists, rename, register.

Bodies are parsed into pydantic models (pyiceberg's where they fit the spec) and handed to the
warehouse's ``ViewStore``; a load answers ``LoadViewResult`` with the stored metadata bytes
spliced in, as table loads do.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field
from pyiceberg.schema import Schema
from pyiceberg.view.metadata import ViewVersion

from iceshelf.catalog import auth
from iceshelf.catalog.deps import identifier_param, namespace_param, warehouse
from iceshelf.catalog.models import (
    RegisterViewRequest,
    RenameTableRequest,
    RequestModel,
    TableIdentifierModel,
)
from iceshelf.catalog.paging import list_identifiers
from iceshelf.catalog.results import json_bytes
from iceshelf.tables.errors import NoSuchViewError
from iceshelf.tables.metadata.views import AssertViewUUID, ViewUpdate
from iceshelf.tables.names import Identifier, check_identifier, check_name
from iceshelf.tables.tablestore import TableStore
from iceshelf.tables.viewstore import LoadedView

router = APIRouter(prefix="/v1/{prefix}", tags=["views"])


class CreateViewRequest(RequestModel):
    """The spec's ``CreateViewRequest``; pyiceberg's own model wrongly requires ``location``."""

    name: str
    location: str | None = None
    view_schema: Schema = Field(alias="schema")
    view_version: ViewVersion = Field(alias="view-version")
    properties: dict[str, str] = Field(default_factory=dict)


class CommitViewRequest(RequestModel):
    identifier: TableIdentifierModel | None = None
    requirements: tuple[AssertViewUUID, ...] = ()
    updates: tuple[ViewUpdate, ...]


def _load_view_response(request: Request, tables: TableStore, loaded: LoadedView) -> Response:
    body = b"".join(
        [
            b'{"metadata-location":',
            json_bytes(loaded.metadata_location),
            b',"metadata":',
            loaded.file.raw,
            b',"config":{}}',
        ]
    )
    return Response(body, media_type="application/json")


@router.get("/namespaces/{namespace}/views", operation_id="listViews")
def list_views(
    request: Request,
    prefix: str,
    namespace: str,
    page_token: str | None = Query(None, alias="pageToken"),
    page_size: int | None = Query(None, alias="pageSize"),
) -> JSONResponse:
    return list_identifiers(request, prefix, namespace, "view", page_token, page_size)


@router.post("/namespaces/{namespace}/views", operation_id="createView")
def create_view(request: Request, prefix: str, namespace: str, body: CreateViewRequest) -> Response:
    tables = warehouse(request, prefix)
    ident = Identifier(namespace_param(namespace), check_name(body.name, "view name"))
    loaded = tables.views.create_view(ident, body.view_schema, body.view_version, body.location, body.properties)
    return _load_view_response(request, tables, loaded)


@router.get("/namespaces/{namespace}/views/{view}", operation_id="loadView")
def load_view(request: Request, prefix: str, namespace: str, view: str) -> Response:
    tables = warehouse(request, prefix)
    return _load_view_response(request, tables, tables.views.load_view(identifier_param(namespace, view, "view name")))


@router.post("/namespaces/{namespace}/views/{view}", operation_id="replaceView")
def replace_view(request: Request, prefix: str, namespace: str, view: str, body: CommitViewRequest) -> Response:
    tables = warehouse(request, prefix)
    loaded = tables.views.replace_view(identifier_param(namespace, view, "view name"), body.requirements, body.updates)
    return _load_view_response(request, tables, loaded)


@router.delete("/namespaces/{namespace}/views/{view}", operation_id="dropView", status_code=204)
def drop_view(request: Request, prefix: str, namespace: str, view: str) -> Response:
    warehouse(request, prefix).views.drop_view(identifier_param(namespace, view, "view name"))
    return Response(status_code=204)


@router.head("/namespaces/{namespace}/views/{view}", operation_id="viewExists")
def view_exists(request: Request, prefix: str, namespace: str, view: str) -> Response:
    ident = identifier_param(namespace, view, "view name")
    if not warehouse(request, prefix).views.view_exists(ident):
        raise NoSuchViewError(f"View does not exist: {ident}")  # a 404 with the headers of a GET's ErrorModel
    return Response(status_code=204)


@router.post("/views/rename", operation_id="renameView", status_code=204)
def rename_view(request: Request, prefix: str, body: RenameTableRequest) -> Response:
    source = check_identifier(tuple(body.source.namespace), body.source.name, "view name")
    destination = check_identifier(tuple(body.destination.namespace), body.destination.name, "view name")
    tables = warehouse(request, prefix)
    auth.require_move(request, tables.name, source, destination)
    tables.views.rename_view(source, destination)
    return Response(status_code=204)


@router.post("/namespaces/{namespace}/register-view", operation_id="registerView")
def register_view(request: Request, prefix: str, namespace: str, body: RegisterViewRequest) -> Response:
    tables = warehouse(request, prefix)
    ident = Identifier(namespace_param(namespace), check_name(body.name, "view name"))
    return _load_view_response(request, tables, tables.views.register_view(ident, body.metadata_location))
