"""Identifier validation and the key layout of catalog state inside a warehouse.

Everything the catalog knows lives under ``_catalog/`` in the warehouse's object store:

* ``_catalog/namespaces/<ns>.json``          one object per namespace (properties, state)
* ``_catalog/entries/<ns>/<name>.json``      one pointer per table or view

``<ns>`` is the namespace's levels joined by the unit separator and percent-encoded into a
single path segment, so a nested namespace never collides with a table name and listing a
namespace's entries is one prefix listing.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote, unquote

from iceshelf.tables.errors import BadRequestError

Namespace = tuple[str, ...]

_CATALOG = "_catalog"
_NAMESPACES = f"{_CATALOG}/namespaces/"
_ENTRIES = f"{_CATALOG}/entries/"
_UNIT_SEPARATOR = "\x1f"
#: First path segments that belong to the warehouse itself: the catalog's state, the local backend's locks.
#: No table location may lie under them, and no namespace may be named so (its tables' default locations would).
_RESERVED = (_CATALOG, ".iceshelf")
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
    if namespace[0] in _RESERVED:
        raise BadRequestError(f"Invalid namespace {namespace[0]!r}: the name is reserved for the warehouse's own state")
    if len(_encode(namespace)) > MAX_ENCODED_NAMESPACE:
        raise BadRequestError(f"Invalid namespace: longer than {MAX_ENCODED_NAMESPACE} bytes percent-encoded (all levels)")
    return namespace


def check_identifier(namespace: Namespace | list[str], name: str, what: str = "table name") -> Identifier:
    return Identifier(check_namespace(namespace), check_name(name, what))


def _encode(namespace: Namespace) -> str:
    return quote(_UNIT_SEPARATOR.join(namespace), safe="")


def namespace_key(namespace: Namespace) -> str:
    return f"{_NAMESPACES}{_encode(namespace)}.json"


def namespaces_prefix() -> str:
    return _NAMESPACES


def namespace_from_key(key: str) -> Namespace:
    return tuple(unquote(key[len(_NAMESPACES) : -len(".json")]).split(_UNIT_SEPARATOR))


def entry_key(ident: Identifier) -> str:
    return f"{entries_prefix(ident.namespace)}{quote(ident.name, safe='')}.json"


def all_entries_prefix() -> str:
    return _ENTRIES


def entries_prefix(namespace: Namespace) -> str:
    return f"{_ENTRIES}{_encode(namespace)}/"


def entry_name_from_key(key: str) -> str:
    return unquote(key.rsplit("/", 1)[1][: -len(".json")])


def location_key_problem(key: str) -> str | None:
    """Why the key of a location a client named (a table or view location, a metadata file) is unusable.

    Such a key must be a plain relative path that stays out of the catalog's own state: a table whose
    location is ``_catalog`` would write its files among the pointers, and a purge would delete them all.
    """
    parts = key.rstrip("/").split("/")
    if "\x00" in key or any(part in ("", ".", "..") for part in parts):
        return "empty, '.' and '..' path segments and NUL are not allowed"
    if parts[0] in _RESERVED:
        return f"{parts[0]}/ is reserved for the warehouse's own state"
    if any(len(part.encode()) > 255 for part in parts):
        return "a path segment is longer than 255 bytes"
    if len(key.encode()) > 1024:
        return "the object key would be longer than 1024 bytes"
    return None


def data_path(namespace: Namespace, name: str) -> str:
    """Relative path of a new table's or view's default location (readable, and unique per object)."""
    return "/".join(quote(p, safe="") for p in (*namespace, name))
