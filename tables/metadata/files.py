"""Immutable metadata files: named, written with ``Create``, read through a cache.

A metadata file never changes once written, so parsed files are cached by location; only
the pointer must be read fresh for a strongly consistent load.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from pyiceberg.table.metadata import TableMetadata
from pyiceberg.view.metadata import ViewMetadata

from iceshelf.tables.locations import location_key
from iceshelf.tables.metadata.builder import parse_metadata, serialize_metadata
from iceshelf.tables.names import Identifier
from iceshelf.tables.objectstore import CREATE, ObjectNotFound, ObjectStore

_VERSIONED = re.compile(r"(\d+)-[0-9a-fA-F-]{36}\.(?:gz\.)?metadata\.json")


M = TypeVar("M", TableMetadata, ViewMetadata)


@dataclass(frozen=True)
class StoredMetadata(Generic[M]):
    """An immutable metadata file, table or view: where it is, its model, and its exact bytes (a load
    answers with the bytes, so the hot path never re-serializes)."""

    location: str
    metadata: M
    raw: bytes


@dataclass(frozen=True)
class Loaded(Generic[M]):
    """A table or view as loaded: its name and its current metadata file."""

    identifier: Identifier
    file: StoredMetadata[M]

    @property
    def metadata(self) -> M:
        return self.file.metadata

    @property
    def metadata_location(self) -> str:
        return self.file.location


MetadataFile = StoredMetadata[TableMetadata]
ViewFile = StoredMetadata[ViewMetadata]
LoadedTable = Loaded[TableMetadata]
LoadedView = Loaded[ViewMetadata]


def next_metadata_location(table_location: str, previous: str | None, metadata_dir: str | None = None) -> str:
    """``<metadata_dir>/NNNNN-<uuid>.metadata.json``, one version past ``previous``; the directory is
    ``<location>/metadata`` unless given (a view's ``write.metadata.path``)."""
    version = 0
    if previous is not None and (match := _VERSIONED.fullmatch(previous.rsplit("/", 1)[-1])):
        version = int(match.group(1)) + 1
    directory = metadata_dir or f"{table_location.rstrip('/')}/metadata"
    return f"{directory.rstrip('/')}/{version:05d}-{uuid.uuid4()}.metadata.json"


class MetadataFiles:
    def __init__(self, store: ObjectStore, cache_size: int = 1024) -> None:
        self.store = store
        self._cache: OrderedDict[str, MetadataFile] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def key(self, location: str) -> str:
        return location_key(self.store, location)

    def read(self, location: str) -> MetadataFile:
        with self._lock:
            cached = self._cache.get(location)
            if cached is not None:
                self._cache.move_to_end(location)
                return cached
        raw = self.store.get(self.key(location)).data
        loaded = MetadataFile(location, parse_metadata(raw), raw)
        self._remember(loaded)
        return loaded

    def exists(self, location: str) -> bool:
        try:
            self.store.head(self.key(location))
        except ObjectNotFound:
            return False
        return True

    def write(self, metadata: TableMetadata, previous: str | None) -> MetadataFile:
        location = next_metadata_location(metadata.location, previous)
        raw = serialize_metadata(metadata)
        self.store.put(self.key(location), raw, CREATE)
        written = MetadataFile(location, metadata, raw)
        self._remember(written)
        return written

    def delete(self, location: str) -> None:
        with self._lock:
            self._cache.pop(location, None)
        self.store.delete(self.key(location))

    def _remember(self, file: MetadataFile) -> None:
        with self._lock:
            self._cache[file.location] = file
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
