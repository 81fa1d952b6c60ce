"""The key layout of catalog state inside a warehouse.

Everything the catalog knows lives under ``_catalog/`` in the warehouse's object store:

* ``_catalog/namespaces/<ns>.json``          one object per namespace (properties, state)
* ``_catalog/entries/<ns>/<name>.json``      one pointer per table or view

``<ns>`` is the namespace's levels joined by the unit separator and percent-encoded into a
single path segment (``encode_namespace``), so a nested namespace never collides with a table
name and listing a namespace's entries is one prefix listing.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from iceshelf.tables.names import CATALOG_DIR, Identifier, Namespace, decode_namespace, encode_namespace

_NAMESPACES = f"{CATALOG_DIR}/namespaces/"
_ENTRIES = f"{CATALOG_DIR}/entries/"


def namespace_key(namespace: Namespace) -> str:
    return f"{_NAMESPACES}{encode_namespace(namespace)}.json"


def namespaces_prefix() -> str:
    return _NAMESPACES


def namespace_from_key(key: str) -> Namespace:
    return decode_namespace(key[len(_NAMESPACES) : -len(".json")])


def entry_key(ident: Identifier) -> str:
    return f"{entries_prefix(ident.namespace)}{quote(ident.name, safe='')}.json"


def all_entries_prefix() -> str:
    return _ENTRIES


def entries_prefix(namespace: Namespace) -> str:
    return f"{_ENTRIES}{encode_namespace(namespace)}/"


def entry_name_from_key(key: str) -> str:
    return unquote(key.rsplit("/", 1)[1][: -len(".json")])
