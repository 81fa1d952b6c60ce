"""``getConfig``: the warehouse's prefix, client defaults and the endpoints this server implements."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from catalog.results import client_config

router = APIRouter(tags=["configuration"])


def implemented_endpoints(app) -> list[str]:
    """Derived from the routes themselves, so the list can never claim what is not served."""
    found = []
    for route in app.routes:
        path = getattr(route, "path", "")
        if not path.startswith("/v1/{prefix}/"):
            continue
        for method in sorted(getattr(route, "methods", ())):
            found.append(f"{method} {path}")
    return sorted(set(found))


@router.get("/v1/config", operation_id="getConfig")
def get_config(request: Request, warehouse: str | None = None) -> JSONResponse:
    store = request.app.state.warehouses.get(warehouse)
    return JSONResponse(
        {
            "defaults": client_config(store, request.app.state.settings.s3),
            "overrides": {"prefix": store.name},
            "endpoints": implemented_endpoints(request.app),
        }
    )
