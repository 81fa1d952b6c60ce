"""Table locations never nest or coincide: every table's files are its own.

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
from typing import Iterable

from iceshelf.tables.errors import BadRequestError
from iceshelf.tables.names import Identifier, data_path
from iceshelf.tables.objectstore import ObjectStore

#: The suffix ``default_location`` gives a table's directory: a uuid4 in hex, ending the location.
_FRESH_SUFFIX = re.compile(r"[0-9a-f]{32}(?=/|$)")


def default_location(store: ObjectStore, ident: Identifier) -> str:
    """A fresh location per table or view, so a dropped-and-recreated one never shares files."""
    return store.uri(f"{data_path(ident.namespace, ident.name)}-{uuid.uuid4().hex}")


def fresh_default_of(store: ObjectStore, ident: Identifier, uri: str) -> str | None:
    """The ``default_location`` of ``ident`` that ``uri`` is or lies in, if it is in one."""
    stem = store.uri(data_path(ident.namespace, ident.name)) + "-"
    fresh = _FRESH_SUFFIX.match(uri, len(stem)) if uri.startswith(stem) else None
    return stem + fresh[0] if fresh else None


def _prefix(store: ObjectStore, location: str) -> str | None:
    return store.key_of(location.rstrip("/") + "/")


def check_unshared(store: ObjectStore, ident: Identifier, location: str, others: Iterable[tuple[Identifier, str]]) -> None:
    """Refuse ``location`` for ``ident`` if it lies inside, contains or equals another object's location.

    ``others`` yields each table and view of the warehouse with its location.
    """
    if fresh_default_of(store, ident, location.rstrip("/")) == location.rstrip("/"):
        return
    mine = _prefix(store, location)
    if mine is None:
        return  # outside the warehouse: check_location refuses it
    for other, theirs in others:
        theirs_prefix = None if other == ident else _prefix(store, theirs)
        if theirs_prefix is not None and (mine.startswith(theirs_prefix) or theirs_prefix.startswith(mine)):
            raise BadRequestError(
                f"Location {location} overlaps {other}'s location {theirs}: tables must not share files "
                "(maintenance of one would delete the other's)"
            )
