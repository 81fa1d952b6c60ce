"""The ``Idempotency-Key`` header on mutating requests: run once, replay the final response.

Storage and the protocol are in ``iceshelf.tables.state.idempotency``; this middleware only extracts the key,
fingerprints the request, and captures or replays the HTTP response.
"""

from __future__ import annotations

import asyncio
import hashlib

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.types import Receive, Scope, Send

from iceshelf.catalog.errors import error_response
from iceshelf.tables.errors import NoSuchWarehouseError
from iceshelf.tables.state.idempotency import Claimed, IdempotencyRecords, StoredResponse

HEADER = "Idempotency-Key"
_HEADER_LOWER = HEADER.lower().encode("latin-1")
LIFETIME = "PT30M"
_WAIT_S = 10.0
_MUTATING = {"POST", "DELETE", "PUT"}


def _warehouse_prefix(path: str) -> str | None:
    parts = path.split("/")
    return parts[2] if len(parts) > 3 and parts[1] == "v1" else None


class IdempotencyMiddleware(BaseHTTPMiddleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Requests without a key on a mutating method -- nearly all, and every SQL poll -- pass straight
        through: ``BaseHTTPMiddleware``'s task group and response streaming cost as much CPU as a small
        request itself."""
        if scope["type"] == "http" and scope["method"] in _MUTATING and any(name == _HEADER_LOWER for name, _ in scope["headers"]):
            await super().__call__(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        key = request.headers.get(HEADER)
        prefix = _warehouse_prefix(request.url.path)
        if not key or request.method not in _MUTATING or prefix is None:
            return await call_next(request)
        if len(key) > 128:
            return error_response(400, "BadRequestException", f"{HEADER} is longer than 128 characters")
        try:
            tables = request.app.state.warehouses.get(prefix)
        except NoSuchWarehouseError:
            return await call_next(request)
        records = IdempotencyRecords(tables.objects)
        body = await request.body()
        # The caller is part of the request: another principal reusing a key gets no one else's response.
        caller = request.scope.get("state", {}).get("principal")
        who = caller.name if caller is not None else ""
        fingerprint = hashlib.sha256(f"{who}\n{request.method} {request.url.path}?{request.url.query}\n".encode() + body).hexdigest()
        claim = await run_in_threadpool(records.claim, key, fingerprint)
        deadline = asyncio.get_running_loop().time() + _WAIT_S
        while not isinstance(claim, Claimed):
            if claim.fingerprint != fingerprint:
                # A client error the spec forbids ("MUST generate a new key for a different operation"):
                # 400, the one client-error status every operation documents (422 is only updateProperties').
                return error_response(400, "BadRequestException", f"{HEADER} was already used for a different request")
            if claim.state == "done":
                stored = claim.response
                return Response(stored.body, status_code=stored.status, media_type=stored.media_type)
            if asyncio.get_running_loop().time() > deadline:
                return error_response(503, "ServiceUnavailableException", f"A request with this {HEADER} is still running; retry")
            await asyncio.sleep(0.1)
            claim = await run_in_threadpool(records.claim, key, fingerprint)
        response = await call_next(request)
        captured = b"".join([chunk async for chunk in response.body_iterator])
        if response.status_code >= 500:
            await run_in_threadpool(records.release, key, claim)
        else:
            stored = StoredResponse(response.status_code, captured, response.media_type or response.headers.get("content-type"))
            await run_in_threadpool(records.finish, key, claim, stored)
        return Response(captured, status_code=response.status_code, headers=dict(response.headers))


def install(app: FastAPI) -> None:
    app.add_middleware(IdempotencyMiddleware)
