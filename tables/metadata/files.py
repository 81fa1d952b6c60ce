"""Immutable metadata files: named, written with ``Create``, read through a cache.

A metadata file never changes once written, so parsed files are cached by location; only
the pointer must be read fresh for a strongly consistent load. The cache is bounded by the files'
sizes (a table's file grows with its history), and one cache may serve every warehouse.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Generic, TypeVar

from pyiceberg.table.metadata import TableMetadata
from pyiceberg.view.metadata import ViewMetadata

from iceshelf.tables.caches import ByteLRU
from iceshelf.tables.locations import location_key
from iceshelf.tables.metadata.builder import parse_metadata, serialize_metadata
from iceshelf.tables.names import Identifier
from iceshelf.tables.objectstore import CREATE, ObjectNotFound, ObjectStore
from iceshelf.tables.settings import CacheSettings

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


def metadata_cache(max_bytes: int = CacheSettings().metadata_bytes) -> ByteLRU[str, MetadataFile]:
    """Parsed metadata files by location, each charged twice its raw size: the bytes kept, and the parsed
    model, measured (``make bench``, suite ``memory``) to cost about as much again."""
    return ByteLRU(max_bytes, lambda file: 2 * len(file.raw) + len(file.location))


class MetadataFiles:
    def __init__(self, store: ObjectStore, cache: ByteLRU[str, MetadataFile] | None = None) -> None:
        self.store = store
        self._cache = metadata_cache() if cache is None else cache

    def key(self, location: str) -> str:
        return location_key(self.store, location)

    def read(self, location: str) -> MetadataFile:
        cached = self._cache.get(location)
        if cached is not None:
            return cached
        raw = self.store.get(self.key(location)).data
        return self._cache.put(location, MetadataFile(location, parse_metadata(raw), raw))

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
        return self._cache.put(location, MetadataFile(location, metadata, raw))

    def delete(self, location: str) -> None:
        self._cache.pop(location)
        self.store.delete(self.key(location))
