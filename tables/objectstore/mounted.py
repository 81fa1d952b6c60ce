"""A warehouse's store together with the stores of its allowed locations, as one key space.

An operator may let tables and views live outside the warehouse root, in *allowed locations*
(``ICESHELF_ALLOWED_LOCATIONS``, docs/configuration.md). Each one is opened as a store of its own on
the warehouse's backend (another directory, another bucket or prefix) and mounted here, so the
server's own work on a table's files -- metadata writes, purge, expiry, orphan removal, compaction --
reaches them through the one ``ObjectStore`` it already holds:

* keys of the warehouse's own store are unchanged;
* the file at ``<allowed location i>/<rest>`` has the key ``.mounts/<i>/<rest>`` (``MOUNTS`` is a
  reserved first segment, so no warehouse key can look like one);
* ``key_of`` tries the warehouse root first: an allowed location may contain the warehouse (``/tmp``
  around ``/tmp/wh``), and a file of the warehouse then always has its warehouse key.

Allowed locations neither nest nor lie inside the warehouse (``check_mounts``), so every URI has at
most one key and key prefixes nest exactly when their URIs do: the never-nest rule of
``tables/locations.py`` holds across them. The catalog's own state (pointers, namespaces) stays in the
warehouse store; the mounts only ever hold table and view files.
"""

from __future__ import annotations

from typing import Sequence

from iceshelf.tables.objectstore.base import OVERWRITE, GetResult, ObjectMeta, ObjectStore, PutMode, normalize_uri

#: The first key segment of mounted files.
MOUNTS = ".mounts"


def check_mounts(home: ObjectStore, mounts: Sequence[ObjectStore]) -> None:
    """Refuse allowed locations that would give one file two keys: inside the warehouse, or nesting."""
    roots = [normalize_uri(m.root_uri).rstrip("/") + "/" for m in mounts]
    home_root = normalize_uri(home.root_uri).rstrip("/") + "/"
    for i, root in enumerate(roots):
        if root.startswith(home_root):
            raise ValueError(f"allowed location {mounts[i].root_uri} lies inside the warehouse {home.root_uri}: it is allowed already")
        for j, other in enumerate(roots):
            if i != j and root.startswith(other):
                raise ValueError(f"allowed locations {mounts[i].root_uri} and {mounts[j].root_uri} nest; name only the outer one")


class MountedStore(ObjectStore):
    def __init__(self, home: ObjectStore, mounts: Sequence[ObjectStore]) -> None:
        check_mounts(home, mounts)
        self.home = home
        self.mounts = list(mounts)
        self.root_uri = home.root_uri

    def _route(self, key: str) -> tuple[ObjectStore, str, str]:
        """The store holding ``key``, the key inside it, and the prefix that turns one into the other."""
        if key.startswith(MOUNTS + "/"):
            index, _, rest = key[len(MOUNTS) + 1 :].partition("/")
            if index.isdigit() and int(index) < len(self.mounts):
                return self.mounts[int(index)], rest, f"{MOUNTS}/{index}/"
            raise ValueError(f"invalid object key: {key!r}")
        return self.home, key, ""

    def get(self, key: str) -> GetResult:
        store, inner, _ = self._route(key)
        return store.get(inner)

    def head(self, key: str) -> ObjectMeta:
        store, inner, mount = self._route(key)
        meta = store.head(inner)
        return ObjectMeta(mount + meta.key, meta.size, meta.etag, meta.last_modified_ms)

    def put(self, key: str, data: bytes, mode: PutMode = OVERWRITE) -> str:
        store, inner, _ = self._route(key)
        return store.put(inner, data, mode)

    def delete(self, key: str) -> None:
        store, inner, _ = self._route(key)
        store.delete(inner)

    def list_page(self, prefix: str, start_after: str | None = None, limit: int = 1000) -> list[ObjectMeta]:
        """A listing stays inside one store: the warehouse's (which never holds ``MOUNTS``) or one mount's."""
        if not prefix.startswith(MOUNTS + "/"):
            return self.home.list_page(prefix, start_after, limit)
        store, inner, mount = self._route(prefix)
        after = start_after[len(mount) :] if start_after and start_after.startswith(mount) else None
        return [ObjectMeta(mount + m.key, m.size, m.etag, m.last_modified_ms) for m in store.list_page(inner, after, limit)]

    def uri(self, key: str) -> str:
        store, inner, _ = self._route(key)
        return store.uri(inner)

    def key_of(self, uri: str) -> str | None:
        key = self.home.key_of(uri)
        if key is not None:
            return None if key.split("/", 1)[0] == MOUNTS else key
        for index, mount in enumerate(self.mounts):
            if (inner := mount.key_of(uri)) is not None:
                return f"{MOUNTS}/{index}/{inner}"
        return None

    def resolve(self, key: str) -> tuple[ObjectStore, str]:
        store, inner, _ = self._route(key)
        return store, inner

    @property
    def root_uris(self) -> tuple[str, ...]:
        return (self.root_uri, *(m.root_uri for m in self.mounts))

    def ensure_prefix(self, prefix: str) -> None:
        store, inner, _ = self._route(prefix)
        store.ensure_prefix(inner)

    def close(self) -> None:
        for store in (self.home, *self.mounts):
            store.close()
