"""The composition root: settings in, a ready ASGI app out. Nothing else picks backends."""

from __future__ import annotations

from collections import Counter
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from iceshelf.catalog import auth, errors, idempotency, requestlog
from iceshelf.catalog.routes import config, maintenance, namespaces, signer, sql_queries, sql_trino, tables, transactions, views
from iceshelf.catalog.settings import Settings
from iceshelf.compaction.jobs.scheduler import Scheduler
from iceshelf.sql.queries import QueryService
from iceshelf.tables.access import AccessGate
from iceshelf.tables.delegation.credentials import CredentialVendor
from iceshelf.tables.delegation.signing import RemoteSigner


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    warehouses = settings.open_warehouses()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler = Scheduler(warehouses, settings.maintenance) if settings.maintenance.enabled else None
        if scheduler is not None:
            scheduler.start()
        yield
        if scheduler is not None:
            scheduler.stop()
        app.state.sql.close()
        warehouses.close()

    app = FastAPI(title="Iceshelf REST catalog", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.warehouses = warehouses
    app.state.metrics_reports = Counter()
    app.state.access = access = AccessGate(warehouses.tables[warehouses.default].objects, settings.auth, settings.auth_enabled)
    app.state.sql = QueryService(
        settings.sql_engine(), warehouses, lambda caller: access.token_for(caller, settings.sql.timeout_s + 60), settings.caches.sql_bytes
    )
    errors.install(app)
    idempotency.install(app)
    auth.install(app)
    requestlog.install(app)
    guarded = [Depends(auth.authorize)]
    app.state.vendor = CredentialVendor(settings.s3, settings.credentials)
    app.state.signer = RemoteSigner(settings.s3)
    for module in (config, namespaces, tables, transactions, views, signer, maintenance, sql_queries, sql_trino):
        app.include_router(module.router, dependencies=guarded)
    auth.check_policy_covers(app)
    app.state.endpoints = config.implemented_endpoints(app)
    return app
