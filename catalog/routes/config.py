"""``getConfig``: the warehouse's prefix, client defaults and the endpoints this server implements."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from iceshelf.catalog.idempotency import LIFETIME as IDEMPOTENCY_LIFETIME
from iceshelf.catalog.results import client_config

router = APIRouter(tags=["configuration"])


#: The routers that serve operations of the Iceberg REST spec (their OpenAPI tags); Iceshelf's own
#: routes (maintenance, SQL) are documented extensions, and ``endpoints`` names only the spec's.
SPEC_TAGS = frozenset({"namespaces", "tables", "transactions", "views", "signer"})


def implemented_endpoints(app: FastAPI) -> list[str]:
    """The spec operations served, as the spec's ``METHOD /path`` strings.

    Derived from the app's own OpenAPI document, so the list can never claim what is not served."""
    paths = app.openapi()["paths"]
    return sorted(
        f"{method.upper()} {path}"
        for path, operations in paths.items()
        if path.startswith("/v1/{prefix}/")
        for method, operation in operations.items()
        if set(operation.get("tags", ())) <= SPEC_TAGS
    )


@router.get("/v1/config", operation_id="getConfig")
def get_config(request: Request, warehouse: str | None = None) -> JSONResponse:
    tables = request.app.state.warehouses.get(warehouse)
    return JSONResponse(
        {
            "defaults": client_config(tables, request.app.state.settings.s3),
            "overrides": {"prefix": tables.name},
            "endpoints": request.app.state.endpoints,
            "idempotency-key-lifetime": IDEMPOTENCY_LIFETIME,
        }
    )
