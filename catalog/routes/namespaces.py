"""Namespace operations of the Iceberg REST spec."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from iceshelf.catalog import auth
from iceshelf.catalog.deps import NAMESPACE_SEPARATOR, namespace_param, warehouse
from iceshelf.catalog.models import CreateNamespaceRequest, UpdateNamespacePropertiesRequest
from iceshelf.catalog.paging import page
from iceshelf.tables.access import Level, Resource
from iceshelf.tables.errors import NoSuchNamespaceError
from iceshelf.tables.names import check_namespace

router = APIRouter(prefix="/v1/{prefix}/namespaces", tags=["namespaces"])


@router.get("", operation_id="listNamespaces")
def list_namespaces(
    request: Request,
    prefix: str,
    parent: str | None = None,
    page_token: str | None = Query(None, alias="pageToken"),
    page_size: int | None = Query(None, alias="pageSize"),
) -> JSONResponse:
    tables = warehouse(request, prefix)
    parent_ns = namespace_param(parent) if parent else ()
    visible = auth.visible_namespaces(request, tables.name, tables.namespaces.list(parent_ns))
    names, token = page(visible, NAMESPACE_SEPARATOR.join, page_token, page_size)
    body: dict = {"namespaces": [list(ns) for ns in names]}
    if token:
        body["next-page-token"] = token
    return JSONResponse(body)


@router.post("", operation_id="createNamespace")
def create_namespace(request: Request, prefix: str, body: CreateNamespaceRequest) -> JSONResponse:
    tables = warehouse(request, prefix)
    namespace = check_namespace(tuple(body.namespace))
    auth.require(request, Level.WRITE, Resource(tables.name, namespace).parent)
    properties = tables.namespaces.create(namespace, body.properties)
    return JSONResponse({"namespace": body.namespace, "properties": properties})


@router.get("/{namespace}", operation_id="loadNamespaceMetadata")
def load_namespace(request: Request, prefix: str, namespace: str) -> JSONResponse:
    ns = namespace_param(namespace)
    tables = warehouse(request, prefix)
    properties = tables.namespaces.load(ns)
    if "location" not in properties:  # where its tables go by default, as Iceberg's catalogs report it
        properties = {**properties, "location": tables.locations.namespace_default(ns)}
    return JSONResponse({"namespace": list(ns), "properties": properties})


@router.head("/{namespace}", operation_id="namespaceExists")
def namespace_exists(request: Request, prefix: str, namespace: str) -> Response:
    ns = namespace_param(namespace)
    if not warehouse(request, prefix).namespaces.exists(ns):
        # Raised, so the 404 carries the headers a GET's ErrorModel would (Content-Type); HEAD drops the body.
        raise NoSuchNamespaceError(f"Namespace does not exist: {'.'.join(ns)}")
    return Response(status_code=204)


@router.delete("/{namespace}", operation_id="dropNamespace", status_code=204)
def drop_namespace(request: Request, prefix: str, namespace: str) -> Response:
    warehouse(request, prefix).namespaces.drop(namespace_param(namespace))
    return Response(status_code=204)


@router.post("/{namespace}/properties", operation_id="updateProperties")
def update_properties(request: Request, prefix: str, namespace: str, body: UpdateNamespacePropertiesRequest) -> JSONResponse:
    result = warehouse(request, prefix).namespaces.update_properties(namespace_param(namespace), body.removals, body.updates)
    return JSONResponse({"updated": result.updated, "removed": result.removed, "missing": result.missing})
