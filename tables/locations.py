"""Where a table's or view's files may live: the one home of the location rule.

Every guard against deleting another table's files relies on the functions here, so nothing else
computes a location's key prefix or decides whether a location is usable:

* inside the warehouse or one of its allowed locations (``ICESHELF_ALLOWED_LOCATIONS``, mounted in the
  warehouse's store by ``iceshelf.tables.objectstore.mounted``), as a plain relative key outside the
  catalog's own state, and never around the warehouse itself (``location_key``, ``check_inside``);
* never nesting with or coinciding with another table's or view's location (``check_unshared``);
* deletions reach only below a location's own prefix (``deletable_prefix``).

Table locations never nest or coincide: every table's files are its own.

Orphan removal deletes what lies under a table's location and that table's metadata does not
reference, a purge deletes everything under it, and expiry deletes the files only that table's
expired snapshots reached. If two tables' (or a table's and a view's) locations nested or
coincided, each of these would destroy the other's data. So a location a client chooses -- at
create, register, or by ``set-location`` -- is checked against every other table and view of the
warehouse. A fresh default location (``<namespace dir>/<name>-<uuid4 hex>``) cannot meet another
one, so it skips that walk.
"""

from __future__ import annotations

import re
import uuid
from typing import Callable, Iterable
from urllib.parse import quote

from iceshelf.tables.errors import BadRequestError
from iceshelf.tables.names import RESERVED, Identifier, Namespace
from iceshelf.tables.objectstore import ObjectStore, normalize_uri
from iceshelf.tables.objectstore.mounted import MOUNTS

#: The suffix ``default_location`` gives a table's directory: a uuid4 in hex, ending the location.
_FRESH_SUFFIX = re.compile(r"[0-9a-f]{32}(?=/|$)")


def location_key_problem(key: str) -> str | None:
    """Why the key of a location a client named (a table or view location, a metadata file) is unusable.

    Such a key must be a plain relative path that stays out of the catalog's own state: a table whose
    location is ``_catalog`` would write its files among the pointers, and a purge would delete them all.
    """
    parts = key.rstrip("/").split("/")
    if parts[0] == MOUNTS:  # a file in an allowed location: the same rules, below that location
        parts = parts[2:]
        if not parts:
            return "an allowed location itself is not a table's location, only directories in it are"
    if "\x00" in key or any(part in ("", ".", "..") for part in parts):
        return "empty, '.' and '..' path segments and NUL are not allowed"
    if parts[0] in RESERVED:
        return f"{parts[0]}/ is reserved for the warehouse's own state"
    if any(len(part.encode()) > 255 for part in parts):
        return "a path segment is longer than 255 bytes"
    if len(key.encode()) > 1024:
        return "the object key would be longer than 1024 bytes"
    return None


def data_path(namespace: Namespace, name: str | None = None) -> str:
    """Relative path of a new table's or view's default location (readable, and unique per object),
    or without ``name`` of the namespace's directory."""
    return "/".join(quote(p, safe="") for p in (*namespace, *([name] if name is not None else [])))


def namespace_location(store: ObjectStore, namespace: Namespace) -> str:
    """The directory the default locations of a namespace's tables and views lie in, as ``loadNamespace``
    reports it when the namespace has no ``location`` property (clients such as Trino place tables there)."""
    return store.uri(data_path(namespace))


def default_location(store: ObjectStore, ident: Identifier) -> str:
    """A fresh location per table or view, so a dropped-and-recreated one never shares files."""
    return store.uri(f"{data_path(ident.namespace, ident.name)}-{uuid.uuid4().hex}")


def fresh_default_of(store: ObjectStore, ident: Identifier, uri: str) -> str | None:
    """The ``default_location`` of ``ident`` that ``uri`` is or lies in, if it is in one."""
    stem = store.uri(data_path(ident.namespace, ident.name)) + "-"
    fresh = _FRESH_SUFFIX.match(uri, len(stem)) if uri.startswith(stem) else None
    return stem + fresh[0] if fresh else None


def location_key(store: ObjectStore, location: str, what: str = "location", shown: str | None = None) -> str:
    """The store key of a location a client named, or a 400 if it is outside the warehouse (and its allowed
    locations) or unusable. ``shown`` is the location as the client named it, if ``location`` was derived."""
    shown = shown or location
    key = store.key_of(location)
    if key is None:
        where = f"the warehouse {store.root_uri}"
        if allowed := store.root_uris[1:]:
            where += f" or one of its allowed locations {', '.join(allowed)}"
        raise BadRequestError(f"{what[0].upper() + what[1:]} {shown} must lie inside {where}")
    if problem := location_key_problem(key):
        raise BadRequestError(f"Invalid {what} {shown}: {problem}")
    return key


def _contains_warehouse(store: ObjectStore, location: str) -> bool:
    """An allowed location may contain the warehouse root: a table there would own the catalog's state."""
    return (normalize_uri(store.root_uri).rstrip("/") + "/").startswith(normalize_uri(location).rstrip("/") + "/")


def check_inside(store: ObjectStore, location: str, what: str) -> None:
    """A table's or view's directory ``location`` must be usable: files below it get ``location_key``s."""
    location_key(store, location.rstrip("/") + "/x", what, location)
    location_key(store, location.rstrip("/") + "/", what, location)  # not a root: the warehouse's or an allowed location's
    if _contains_warehouse(store, location):
        raise BadRequestError(f"Invalid {what} {location}: it contains the warehouse {store.root_uri}")


def _prefix(store: ObjectStore, location: str) -> str | None:
    return store.key_of(location.rstrip("/") + "/")


def deletable_prefix(store: ObjectStore, location: str) -> str | None:
    """The key prefix (ending in ``/``) of everything a table at ``location`` owns, or ``None`` where
    deleting under it would be unsafe: outside the warehouse, the warehouse root, or the catalog's state
    (a registered metadata file can name any location)."""
    prefix = _prefix(store, location)
    if not prefix or prefix == "/" or location_key_problem(prefix) or _contains_warehouse(store, location):
        return None
    return prefix


class WarehouseLocations:
    """The location rule bound to one warehouse: fresh defaults, and checks of client-chosen locations.

    ``everyone`` lists each table and view of the warehouse with its location, lazily: only a
    client-chosen location needs the walk (a fresh default cannot meet another one).
    """

    def __init__(self, store: ObjectStore, everyone: Callable[[], Iterable[tuple[Identifier, str]]]) -> None:
        self.store = store
        self.everyone = everyone

    def default(self, ident: Identifier) -> str:
        return default_location(self.store, ident)

    def namespace_default(self, namespace: Namespace) -> str:
        return namespace_location(self.store, namespace)

    def check(self, ident: Identifier, location: str, what: str = "table location") -> None:
        """A location a client chose for ``ident`` (create, ``set-location``): usable and its own."""
        check_inside(self.store, location, what)
        self.check_unshared(ident, location)

    def check_unshared(self, ident: Identifier, location: str) -> None:
        check_unshared(self.store, ident, location, self.everyone())


def check_unshared(store: ObjectStore, ident: Identifier, location: str, others: Iterable[tuple[Identifier, str]]) -> None:
    """Refuse ``location`` for ``ident`` if it lies inside, contains or equals another object's location.

    ``others`` yields each table and view of the warehouse with its location.
    """
    if fresh_default_of(store, ident, location.rstrip("/")) == location.rstrip("/"):
        return
    mine = _prefix(store, location)
    if mine is None:
        return  # outside the warehouse: check_inside refuses it
    for other, theirs in others:
        theirs_prefix = None if other == ident else _prefix(store, theirs)
        if theirs_prefix is not None and (mine.startswith(theirs_prefix) or theirs_prefix.startswith(mine)):
            raise BadRequestError(
                f"Location {location} overlaps {other}'s location {theirs}: tables must not share files "
                "(maintenance of one would delete the other's)"
            )
