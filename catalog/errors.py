"""The one place where outcomes become HTTP: every typed error maps to an Iceberg ``ErrorModel``.

A failed request is logged once, by ``iceshelf.catalog.requestlog`` (request id, operation, cause);
the handlers here only record the cause on the request for it.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError as PydanticValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from iceshelf.sql import errors as sql_errors
from iceshelf.tables import errors as e
from iceshelf.tables.objectstore import StoreUnavailable

#: Most specific first: the first matching class decides (status, Iceberg error type).
_MAPPING: list[tuple[type[BaseException], int, str]] = [
    (e.NotAuthorizedError, 401, "NotAuthorizedException"),
    (e.ForbiddenError, 403, "ForbiddenException"),
    (e.NoSuchWarehouseError, 404, "NoSuchWarehouseException"),
    (sql_errors.NoSuchQueryError, 404, "NoSuchQueryException"),
    (sql_errors.QueryNotFinishedError, 409, "QueryNotFinishedException"),
    (sql_errors.ClientTokenReusedError, 409, "IdempotentParameterMismatchException"),
    (sql_errors.SqlRefusedError, 400, "SqlRefusedException"),
    (e.NoSuchNamespaceError, 404, "NoSuchNamespaceException"),
    (e.NoSuchTableError, 404, "NoSuchTableException"),
    (e.NoSuchViewError, 404, "NoSuchViewException"),
    (e.NamespaceAlreadyExistsError, 409, "AlreadyExistsException"),
    (e.TableAlreadyExistsError, 409, "AlreadyExistsException"),
    (e.ViewAlreadyExistsError, 409, "AlreadyExistsException"),
    (e.NamespaceNotEmptyError, 409, "NamespaceNotEmptyException"),
    (e.CommitFailedException, 409, "CommitFailedException"),
    (e.CommitStateUnknownException, 500, "CommitStateUnknownException"),
    (e.UnprocessableEntityError, 422, "UnprocessableEntityException"),
    (e.InvalidArgumentError, 400, "IllegalArgumentException"),
    (e.BadRequestError, 400, "BadRequestException"),
    (e.ValidationError, 400, "ValidationException"),
    (PydanticValidationError, 400, "BadRequestException"),
    (NotImplementedError, 406, "UnsupportedOperationException"),
    # The object store failing (after its own retries): nothing was applied -- the commit path
    # reconciles a failed commit-point write, and answers CommitStateUnknown if it cannot.
    (StoreUnavailable, 503, "ServiceUnavailableException"),
    (OSError, 503, "ServiceUnavailableException"),
    (BotoCoreError, 503, "ServiceUnavailableException"),
]


def error_body(status: int, type_name: str, message: str) -> dict:
    return {"error": {"message": message, "type": type_name, "code": status}}


def error_response(status: int, type_name: str, message: str, retry_after_s: float = 1.0) -> JSONResponse:
    headers: dict[str, str] = {}
    if status == 401:  # RFC 6750: a 401 names the scheme the client should use.
        headers["WWW-Authenticate"] = 'Bearer realm="iceshelf"'
    if status == 503:  # RFC 9110: when to try again.
        headers["Retry-After"] = str(max(1, round(retry_after_s)))
    return JSONResponse(error_body(status, type_name, message), status_code=status, headers=headers or None)


def classify(exc: BaseException) -> tuple[int, str]:
    for cls, status, type_name in _MAPPING:
        if isinstance(exc, cls):
            return status, type_name
    return 500, "InternalServerError"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body') or 'body'}: {err.get('msg')}" for err in exc.errors()
        )
        # A request model refused an argument the reference refuses with IllegalArgumentException.
        invalid = any(isinstance(err.get("ctx", {}).get("error"), e.InvalidArgumentError) for err in exc.errors())
        return error_response(400, "IllegalArgumentException" if invalid else "BadRequestException", f"Malformed request: {details}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        names = {400: "BadRequestException", 404: "NoSuchEndpointException", 405: "MethodNotAllowedException"}
        type_name = names.get(exc.status_code, "HTTPException")
        return error_response(exc.status_code, type_name, str(exc.detail))

    async def _typed(request: Request, exc: Exception) -> JSONResponse:
        return typed_response(request, exc)

    # Each mapped class gets its own handler (handled in the exception middleware, so an expected
    # outcome is not logged as a crash); real faults reach ``requestlog``, which answers them with
    # ``typed_response`` too (a 500 ErrorModel).
    for cls, _, _ in _MAPPING:
        app.add_exception_handler(cls, _typed)


def typed_response(request: Request, exc: BaseException) -> JSONResponse:
    """The ErrorModel for ``exc``; the cause is kept on the request for the one log line."""
    request.state.failure = exc
    status, type_name = classify(exc)
    if status >= 500:
        if isinstance(exc, e.CommitStateUnknownException):
            message = str(exc)
        elif status == 503:
            message = "The object store is unavailable; nothing was changed. Retry later."
        else:
            message = "Internal server error"
    else:
        message = str(exc) or type_name
    return error_response(status, type_name, message, getattr(exc, "retry_after_s", 1.0))
