"""Identifiers: what a namespace, table or view may be called, checked once where a request enters.

The rules keep every name usable as one segment of an object key (see ``iceshelf.tables.state.keys``):
no ``/`` or ``..``, no control characters or unpaired surrogates, and short enough percent-encoded.
``Identifier`` and ``Namespace`` values the upper layers hand to the table store have passed
``check_identifier`` / ``check_namespace``; the store does not check them again.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote, unquote

from iceshelf.tables.errors import BadRequestError
from iceshelf.tables.objectstore.mounted import MOUNTS

Namespace = tuple[str, ...]

#: The folder of the catalog's own state in a warehouse (``iceshelf.tables.state.keys`` lays it out).
CATALOG_DIR = "_catalog"
_UNIT_SEPARATOR = "\x1f"
#: First path segments that belong to the warehouse itself: the catalog's state, the local backend's locks,
#: the keys of allowed locations (``objectstore/mounted.py``). No table location may lie under them, and no
#: namespace may be named so (its tables' default locations would).
RESERVED = (CATALOG_DIR, ".iceshelf", MOUNTS)
MAX_NAME_LENGTH = 255
#: Bytes of a name / a whole namespace once percent-encoded into a key segment. A segment must fit a
#: file name (255 bytes on common filesystems) with its ``.json`` suffix, and a table or view
#: directory with its ``-<uuid>`` suffix; non-ASCII characters encode to up to 12 bytes each.
MAX_ENCODED_NAME = 200
MAX_ENCODED_NAMESPACE = 250


class Identifier(NamedTuple):
    namespace: Namespace
    name: str

    def __str__(self) -> str:
        return ".".join((*self.namespace, self.name))


def check_name(part: str, what: str = "name") -> str:
    if not isinstance(part, str) or not part:
        raise BadRequestError(f"Invalid {what}: empty names are not allowed")
    if len(part) > MAX_NAME_LENGTH:
        raise BadRequestError(f"Invalid {what} {part[:40]!r}...: longer than {MAX_NAME_LENGTH} characters")
    if "/" in part or part in (".", "..") or ".." in part:
        raise BadRequestError(f"Invalid {what} {part!r}: '/' and '..' are not allowed")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in part):
        raise BadRequestError(f"Invalid {what} {part!r}: control characters are not allowed")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in part):
        raise BadRequestError(f"Invalid {what} {part!r}: unpaired surrogates are not valid Unicode")
    if len(quote(part, safe="")) > MAX_ENCODED_NAME:
        raise BadRequestError(f"Invalid {what} {part[:40]!r}...: longer than {MAX_ENCODED_NAME} bytes percent-encoded")
    return part


def check_namespace(namespace: Namespace | list[str]) -> Namespace:
    namespace = tuple(namespace)
    if not namespace:
        raise BadRequestError("Invalid namespace: it must have at least one level")
    for level in namespace:
        check_name(level, "namespace")
    if namespace[0] in RESERVED:
        raise BadRequestError(f"Invalid namespace {namespace[0]!r}: the name is reserved for the warehouse's own state")
    if len(encode_namespace(namespace)) > MAX_ENCODED_NAMESPACE:
        raise BadRequestError(f"Invalid namespace: longer than {MAX_ENCODED_NAMESPACE} bytes percent-encoded (all levels)")
    return namespace


def check_identifier(namespace: Namespace | list[str], name: str, what: str = "table name") -> Identifier:
    return Identifier(check_namespace(namespace), check_name(name, what))


def encode_namespace(namespace: Namespace) -> str:
    """A namespace as one key segment: its levels joined by the unit separator, percent-encoded."""
    return quote(_UNIT_SEPARATOR.join(namespace), safe="")


def decode_namespace(segment: str) -> Namespace:
    return tuple(unquote(segment).split(_UNIT_SEPARATOR))
