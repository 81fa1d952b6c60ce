"""Opaque page tokens over sorted name lists (the spec's ``pageToken``/``pageSize``)."""

from __future__ import annotations

import base64
import binascii
from typing import Sequence, TypeVar

from fastapi.responses import JSONResponse

from iceshelf.tables.errors import BadRequestError

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


def identifiers_response(namespace: tuple[str, ...], names: Sequence[str], token: str | None, size: int | None) -> JSONResponse:
    """``ListTablesResponse`` / ``ListViewsResponse``: one page of names in ``namespace``."""
    chosen, next_token = page(names, str, token, size)
    body: dict = {"identifiers": [{"namespace": list(namespace), "name": name} for name in chosen]}
    if next_token:
        body["next-page-token"] = next_token
    return JSONResponse(body)
