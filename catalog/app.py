"""The composition root: settings in, a ready ASGI app out. Nothing else picks backends."""

from __future__ import annotations

from collections import Counter
from contextlib import asynccontextmanager

from fastapi import FastAPI

from catalog import errors, idempotency
from catalog.routes import config, namespaces, tables, transactions, views
from sql import athena, trino
from sql.queries import QueryService
from tables.settings import Settings
from tables.warehouses import Warehouses


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    warehouses = Warehouses.open(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        app.state.sql.close()
        warehouses.close()

    app = FastAPI(title="Iceshelf REST catalog", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.warehouses = warehouses
    app.state.metrics_reports = Counter()
    app.state.sql = QueryService(settings, warehouses)
    errors.install(app)
    idempotency.install(app)
    for module in (config, namespaces, tables, transactions, views):
        app.include_router(module.router)
    for module in (athena, trino):
        app.include_router(module.router)
    app.state.endpoints = config.implemented_endpoints(app)
    return app
