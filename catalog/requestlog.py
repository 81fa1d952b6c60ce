"""Request ids and one log line per failed request.

Every request carries an id: the caller's ``X-Request-Id`` if it sent one, else a fresh one, echoed in
the response's ``X-Request-Id`` so a client's report and the server's log name the same request. A
request that fails is logged once -- id, operation (the route's operationId), status and cause -- at
INFO for a refusal (4xx), WARNING for an unavailable store (503) and ERROR otherwise; the traceback
only at DEBUG. An exception no handler maps is answered here as a 500 ErrorModel, so it never reaches
the server's own "Exception in ASGI application" dump.
"""

from __future__ import annotations

import logging
import re
import uuid

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iceshelf.catalog.errors import typed_response

log = logging.getLogger("iceshelf.catalog.requests")

HEADER = "X-Request-Id"
#: An incoming id is echoed into headers and logs: keep it short and printable.
_VALID_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def request_id(request: Request) -> str:
    """This request's id (set by the middleware)."""
    return request.scope.get("state", {}).get("request_id", "-")


def _operation(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "operation_id", None) or getattr(route, "name", None) or "-"


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or ()).get(HEADER.lower().encode(), b"").decode("latin-1")
        rid = incoming if _VALID_ID.fullmatch(incoming) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (HEADER.lower().encode(), rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if status:  # the response had begun: nothing more can be said to the client
                _log(scope, rid, 500, exc)
                raise
            response = typed_response(Request(scope), exc)
            await response(scope, receive, send_with_id)
        if status >= 400:
            _log(scope, rid, status, state.get("failure"))


def _log(scope: Scope, rid: str, status: int, cause: BaseException | None) -> None:
    level = logging.INFO if status < 500 else logging.WARNING if status == 503 else logging.ERROR
    if not log.isEnabledFor(level):
        return
    reason = f"{type(cause).__name__}: {cause}" if cause is not None else "-"
    log.log(level, "request %s %s %s %s -> %d %s", rid, _operation(scope), scope.get("method"), scope.get("path"), status, reason)
    if cause is not None and log.isEnabledFor(logging.DEBUG):
        log.debug("request %s traceback", rid, exc_info=cause)


def install(app: FastAPI) -> None:
    """Added last, so outermost: every response, an authentication refusal's too, carries the id."""
    app.add_middleware(RequestLogMiddleware)
