"""HTTP side of access control: who is calling (middleware), the token endpoint, and what each route needs.

The decision rules live in ``tables/access``; this module only maps HTTP onto them. Every route of
the app must appear in ``POLICY`` -- ``check_policy_covers`` fails the app's construction otherwise,
so a new endpoint cannot ship unguarded by accident.

Routes whose resources are in the body (renames, transactions, namespace creation) are marked
``BODY`` and call ``require`` themselves; SQL routes are ``CALLER`` and the SQL layer checks every
table a statement touches.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from iceshelf.catalog.deps import namespace_param, warehouse
from iceshelf.catalog.errors import classify, error_response
from iceshelf.tables.access import OPEN, AccessGate, Level, Principal, Resource
from iceshelf.tables.errors import ForbiddenError, NotAuthorizedError
from iceshelf.tables.names import Identifier

TOKEN_PATH = "/v1/oauth/tokens"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
#: Served without credentials: the token endpoint itself and the API's own description.
PUBLIC_PATHS = frozenset({TOKEN_PATH, "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


class Target(str, Enum):
    """Which resource of the request a route's level applies to."""

    WAREHOUSE = "warehouse"  # the warehouse named by {prefix} (or ?warehouse=)
    NAMESPACE = "namespace"  # the namespace in the path
    PARENT = "parent"  # the namespace in the path's parent (where it is created / dropped)
    TABLE = "table"  # the table or view in the path
    BODY = "body"  # the route checks the resources named in its body
    CALLER = "caller"  # any authenticated caller; the handler checks what it touches


@dataclass(frozen=True)
class Need:
    level: Level | None  # None: the resource need only be visible (lists, existence checks)
    scope: Target


_SEE = None
POLICY: dict[str, Need] = {
    "getConfig": Need(_SEE, Target.WAREHOUSE),
    "listNamespaces": Need(_SEE, Target.WAREHOUSE),
    "createNamespace": Need(Level.WRITE, Target.BODY),
    "loadNamespaceMetadata": Need(_SEE, Target.NAMESPACE),
    "namespaceExists": Need(_SEE, Target.NAMESPACE),
    "dropNamespace": Need(Level.WRITE, Target.PARENT),
    "updateProperties": Need(Level.WRITE, Target.NAMESPACE),
    "listTables": Need(_SEE, Target.NAMESPACE),
    "listViews": Need(_SEE, Target.NAMESPACE),
    "createTable": Need(Level.WRITE, Target.NAMESPACE),
    "registerTable": Need(Level.WRITE, Target.NAMESPACE),
    "createView": Need(Level.WRITE, Target.NAMESPACE),
    "registerView": Need(Level.WRITE, Target.NAMESPACE),
    "loadTable": Need(Level.READ, Target.TABLE),
    "tableExists": Need(Level.READ, Target.TABLE),
    "reportMetrics": Need(Level.READ, Target.TABLE),
    "loadCredentials": Need(Level.READ, Target.TABLE),
    "signRequest": Need(Level.READ, Target.TABLE),  # writes need WRITE: checked per request by the route
    "loadView": Need(Level.READ, Target.TABLE),
    "viewExists": Need(Level.READ, Target.TABLE),
    "updateTable": Need(Level.WRITE, Target.TABLE),
    "dropTable": Need(Level.WRITE, Target.TABLE),
    "unregisterTable": Need(Level.WRITE, Target.TABLE),
    "replaceView": Need(Level.WRITE, Target.TABLE),
    "dropView": Need(Level.WRITE, Target.TABLE),
    "renameTable": Need(Level.WRITE, Target.BODY),
    "renameView": Need(Level.WRITE, Target.BODY),
    "commitTransaction": Need(Level.WRITE, Target.BODY),
    "getTableMaintenanceConfiguration": Need(Level.READ, Target.TABLE),
    "getTableMaintenanceJobStatus": Need(Level.READ, Target.TABLE),
    "putTableMaintenanceConfiguration": Need(Level.MAINTAIN, Target.TABLE),
    "getWarehouseMaintenanceConfiguration": Need(Level.READ, Target.WAREHOUSE),
    "putWarehouseMaintenanceConfiguration": Need(Level.MAINTAIN, Target.WAREHOUSE),
    "startQuery": Need(_SEE, Target.CALLER),
    "listQueries": Need(_SEE, Target.CALLER),
    "getQuery": Need(_SEE, Target.CALLER),
    "cancelQuery": Need(_SEE, Target.CALLER),
    "getQueryResults": Need(_SEE, Target.CALLER),
    "trinoServerInfo": Need(_SEE, Target.CALLER),
    "trinoSubmitStatement": Need(_SEE, Target.CALLER),
    "trinoStatementNext": Need(_SEE, Target.CALLER),
    "trinoCancelStatement": Need(_SEE, Target.CALLER),
}


def principal(request: Request) -> Principal:
    """The caller, as the authentication middleware established it."""
    return request.scope["state"]["principal"]


def gate(request: Request) -> AccessGate:
    return request.app.state.access


def require(request: Request, level: Level, resource: Resource) -> None:
    principal(request).require(level, resource)


def readable_names(request: Request, warehouse_name: str, namespace: tuple[str, ...], names: list[str]) -> list[str]:
    """The tables (or views) of a namespace the caller may read: lists show nothing else."""
    caller = principal(request)
    return [n for n in names if caller.allows(Level.READ, Resource(warehouse_name, namespace, n))]


def visible_namespaces(request: Request, warehouse_name: str, namespaces: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    caller = principal(request)
    return [ns for ns in namespaces if caller.can_see(Resource(warehouse_name, ns))]


def require_move(request: Request, warehouse_name: str, source: Identifier, destination: Identifier) -> None:
    """A rename takes the object out of one place and creates it in another: write on both."""
    caller = principal(request)
    caller.require(Level.WRITE, Resource.of_table(warehouse_name, source))
    caller.require(Level.WRITE, Resource(warehouse_name, destination.namespace))


def table_resource(request: Request, prefix: str | None, namespace: tuple[str, ...], name: str) -> Resource:
    return Resource(warehouse(request, prefix).name, namespace, name)


async def authorize(request: Request) -> None:
    """Router dependency: the route's ``POLICY`` entry, checked before its handler runs."""
    route = request.scope["route"]
    need = POLICY[route.operation_id]
    if need.scope in (Target.BODY, Target.CALLER):
        return
    params = request.path_params
    prefix = params.get("prefix") or request.query_params.get("warehouse")
    resource = Resource(warehouse(request, prefix).name)
    if need.scope is not Target.WAREHOUSE:
        namespace = namespace_param(params["namespace"])
        if need.scope is Target.TABLE:
            resource = Resource(resource.warehouse, namespace, params.get("table") or params["view"])
        else:
            resource = Resource(resource.warehouse, namespace)
            if need.scope is Target.PARENT:
                resource = resource.parent
    caller = principal(request)
    if need.level is None:
        if not caller.can_see(resource):
            raise ForbiddenError(f"Principal {caller.name!r} has no access to {resource}")
    else:
        caller.require(need.level, resource)


def check_policy_covers(app: FastAPI) -> None:
    """Fail fast if some route has no policy: an unguarded endpoint is a bug, not a default."""
    missing = sorted(
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        if path not in PUBLIC_PATHS
        for method, operation in operations.items()
        if operation.get("operationId") not in POLICY
    )
    if missing:
        raise RuntimeError(f"routes without an access policy: {missing}")


class AuthenticationMiddleware:
    """Outermost layer: every request but the public ones carries a principal, or is answered 401.

    It runs before idempotency replay, so a stored response is never handed to an unauthenticated
    caller, and the replay key is scoped to the principal (see ``catalog/idempotency.py``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        access: AccessGate = scope["app"].state.access
        if scope["path"] in PUBLIC_PATHS:
            scope.setdefault("state", {})["principal"] = None
            await self.app(scope, receive, send)
            return
        if not access.enabled:  # no thread hop for an open server
            scope.setdefault("state", {})["principal"] = OPEN
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization")
        try:
            caller = await run_in_threadpool(access.authenticate, header.decode("latin-1") if header else None)
        except (NotAuthorizedError, OSError) as exc:
            status, type_name = classify(exc)
            message = str(exc) if status < 500 else "The object store is unavailable. Retry later."
            await error_response(status, type_name, message)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = caller
        await self.app(scope, receive, send)


token_router = APIRouter(tags=["oauth"])


@token_router.post(TOKEN_PATH, operation_id="getToken")
async def get_token(request: Request) -> JSONResponse:
    """OAuth2 client credentials (RFC 6749 4.4), in the form (pyiceberg) or as HTTP Basic (DuckDB);
    and token exchange (RFC 8693) of a valid token for a fresh one, which Java clients use to refresh.

    The ``application/x-www-form-urlencoded`` body is parsed here: four fields do not justify a
    multipart parser dependency.
    """
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    grant_type, client_id, client_secret, scope = (form.get(k) for k in ("grant_type", "client_id", "client_secret", "scope"))
    access = gate(request)
    try:
        if grant_type == TOKEN_EXCHANGE:
            name = await run_in_threadpool(_exchanged, access, form.get("subject_token"))
        elif grant_type != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "Use client_credentials, or token-exchange to refresh a token")
        elif client_id is None and "authorization" not in request.headers:
            return _oauth_error(400, "invalid_request", "client_id and client_secret are required")
        elif not access.enabled:  # an open server: every caller is everything anyway; clients keep working unchanged
            name = client_id or "anonymous"
        elif client_id is not None:
            name = (await run_in_threadpool(access.authenticate_client, client_id, client_secret or "")).name
        else:
            name = (await run_in_threadpool(access.authenticate_basic, request.headers["authorization"])).name
    except NotAuthorizedError:
        return _oauth_error(401, "invalid_client", "Unknown client or wrong secret")
    except _InvalidGrant as err:
        return _oauth_error(400, "invalid_grant", str(err))
    token, expires_in = access.tokens.issue(name)
    return JSONResponse(
        {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": expires_in,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            **({"scope": scope} if scope else {}),
        },
        headers={"Cache-Control": "no-store"},
    )


class _InvalidGrant(Exception):
    pass


def _exchanged(access: AccessGate, subject_token: str | None) -> str:
    """Token exchange used as refresh (the spec's third use): a valid token for the same principal."""
    if not subject_token:
        raise _InvalidGrant("subject_token is required")
    try:
        return access.authenticate(f"Bearer {subject_token}").name
    except NotAuthorizedError as err:
        raise _InvalidGrant(str(err)) from None


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    """The spec's ``OAuthError`` shape (not the ErrorModel): what OAuth clients parse."""
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers={"Cache-Control": "no-store"})


def install(app: FastAPI) -> None:
    """Last middleware added = outermost: authentication runs before everything else."""
    app.include_router(token_router)
    app.add_middleware(AuthenticationMiddleware)
