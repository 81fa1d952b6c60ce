"""Opaque page tokens over sorted name lists (the spec's ``pageToken``/``pageSize``)."""

from __future__ import annotations

import base64
import binascii
from typing import Sequence, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse

from iceshelf.catalog import auth
from iceshelf.catalog.deps import namespace_param, warehouse
from iceshelf.tables.errors import BadRequestError
from iceshelf.tables.state.pointer import Kind

T = TypeVar("T")


def encode_token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode()


def decode_token(token: str) -> str:
    try:
        return base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequestError(f"Invalid pageToken: {token!r}") from None


def page(items: Sequence[T], key, token: str | None, size: int | None) -> tuple[list[T], str | None]:
    """Items after the token's position, at most ``size``; the next token when more remain."""
    if size is not None and size < 1:
        raise BadRequestError("pageSize must be at least 1")
    start = decode_token(token) if token else None
    remaining = [item for item in items if start is None or key(item) > start]
    if size is None or len(remaining) <= size:
        return remaining, None
    chosen = remaining[:size]
    return chosen, encode_token(key(chosen[-1]))


def list_identifiers(
    request: Request, prefix: str, namespace: str, kind: Kind, token: str | None, size: int | None
) -> JSONResponse:
    """``listTables`` / ``listViews``: one page of the names in ``namespace`` the caller may read."""
    ns = namespace_param(namespace)
    tables = warehouse(request, prefix)
    listed = tables.list_tables(ns) if kind == "table" else tables.views.list_views(ns)
    chosen, next_token = page(auth.readable_names(request, tables.name, ns, listed), str, token, size)
    body: dict = {"identifiers": [{"namespace": list(ns), "name": name} for name in chosen]}
    if next_token:
        body["next-page-token"] = next_token
    return JSONResponse(body)
