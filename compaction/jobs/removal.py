"""Deleting files a maintenance job found unreferenced: in parallel, counted, and only inside the table.

Both expiry and orphan removal end here, so the one guard that matters lives here too: a
file outside the table's own location is never deleted, whatever a manifest claims (a table
registered over another table's files, or a hand-edited manifest, must not make maintenance
delete someone else's data).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from iceshelf.tables.objectstore import ObjectNotFound, ObjectStore

log = logging.getLogger("iceshelf.maintenance")

#: ``(done, total)`` after each deleted file; the CLI draws its progress bar from it.
OnProgress = Callable[[int, int], None]

_DELETERS = 16


@dataclass(frozen=True)
class Removed:
    files: int = 0
    bytes: int = 0

    @classmethod
    def counting(cls, files: dict[str, int | None]) -> "Removed":
        """What removing ``files`` (location -> size, ``None`` where unknown) amounts to."""
        return cls(len(files), sum(size or 0 for size in files.values()))


def table_prefix(store: ObjectStore, table_location: str) -> str | None:
    """The key prefix of everything a table owns, or ``None`` if its location lies outside the warehouse."""
    prefix = store.key_of(table_location.rstrip("/") + "/")
    return prefix or None


def remove_files(
    store: ObjectStore,
    table_location: str,
    files: dict[str, int | None],
    progress: OnProgress | None = None,
) -> Removed:
    """Delete ``files`` (location -> size) that lie under ``table_location``; skip and log the rest."""
    prefix = table_prefix(store, table_location)
    keys: dict[str, int | None] = {}
    for location, size in files.items():
        key = store.key_of(location)
        if prefix is None or key is None or not key.startswith(prefix):
            log.warning("not deleting %s: outside the table location %s", location, table_location)
            continue
        keys[key] = size

    def delete(key: str) -> int:
        """The bytes freed: sizes the metadata does not give (manifest lists) are asked of the store."""
        size = keys[key]
        if size is None:
            try:
                size = store.head(key).size
            except ObjectNotFound:
                size = 0
        store.delete(key)
        return size

    freed = 0
    with ThreadPoolExecutor(max_workers=_DELETERS) as pool:
        for done, size in enumerate(pool.map(delete, keys), start=1):
            freed += size
            if progress is not None:
                progress(done, len(keys))
    return Removed(len(keys), freed)
