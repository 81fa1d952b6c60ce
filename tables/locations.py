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
from typing import Callable, Iterable

from tables.errors import BadRequestError
from tables.names import Identifier
from tables.objectstore import ObjectStore

_FRESH_SUFFIX = re.compile(r"-[0-9a-f]{32}")


def is_fresh_default(store: ObjectStore, default_stem: str, location: str) -> bool:
    """``location`` is ``default_stem`` plus the ``-<uuid hex>`` that ``TableStore.default_location`` adds."""
    stem = store.uri(default_stem)
    return location.startswith(stem) and _FRESH_SUFFIX.fullmatch(location.rstrip("/")[len(stem) :]) is not None


def _prefix(store: ObjectStore, location: str) -> str | None:
    return store.key_of(location.rstrip("/") + "/")


def check_unshared(
    store: ObjectStore, ident: Identifier, location: str, others: Iterable[tuple[Identifier, Callable[[], str | None]]]
) -> None:
    """Refuse ``location`` for ``ident`` if it lies inside, contains or equals another object's location.

    ``others`` yields each other table or view with a way to read its location (``None``: gone since listed).
    """
    mine = _prefix(store, location)
    if mine is None:
        return  # outside the warehouse: check_location refuses it
    for other, location_of in others:
        if other == ident:
            continue
        theirs = location_of()
        theirs_prefix = None if theirs is None else _prefix(store, theirs)
        if theirs_prefix is not None and (mine.startswith(theirs_prefix) or theirs_prefix.startswith(mine)):
            raise BadRequestError(
                f"Location {location} overlaps {other}'s location {theirs}: tables must not share files "
                "(maintenance of one would delete the other's)"
            )
