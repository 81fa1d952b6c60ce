"""Request plumbing shared by the routes: the warehouse behind ``{prefix}`` and decoded namespaces."""

from __future__ import annotations

from fastapi import Request

from iceshelf.tables.names import Identifier, Namespace, check_identifier, check_namespace
from iceshelf.tables.tablestore import TableStore

#: The spec's separator of namespace levels in a path parameter (``%1F`` on the wire).
NAMESPACE_SEPARATOR = "\x1f"


def warehouse(request: Request, prefix: str | None = None) -> TableStore:
    return request.app.state.warehouses.get(prefix)


def namespace_param(namespace: str) -> Namespace:
    return check_namespace(tuple(namespace.split(NAMESPACE_SEPARATOR)))


def identifier_param(namespace: str, name: str, what: str = "table name") -> Identifier:
    return check_identifier(namespace_param(namespace), name, what)


def body_identifier(doc: dict) -> Identifier:
    return check_identifier(tuple(doc["namespace"]), doc["name"])
