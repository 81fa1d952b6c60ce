"""The table store of one warehouse: namespaces, tables, and the commit path over them.

This is the API every upper layer uses -- the REST catalog, compaction, SQL. It speaks
pyiceberg's models (``TableMetadata``, ``TableUpdate``, ``TableRequirement``) and raises the
typed errors of ``iceshelf.tables.errors``; it knows nothing of HTTP.

Identifiers arrive checked: each protocol validates the names it receives where they enter
(``iceshelf.tables.names.check_identifier`` in the REST routes, the SQL resolver and the CLI), so
the store works with ``Identifier`` values and does not re-check them in every method.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import TableProperties
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER, SortOrder
from pyiceberg.typedef import Properties
from pyiceberg.utils.properties import property_as_bool

from iceshelf.tables.caches import ByteLRU
from iceshelf.tables.commit.changes import Staged, TableChange, not_found
from iceshelf.tables.commit.committer import Committer
from iceshelf.tables.commit.rebase import AppendRebaser
from iceshelf.tables.errors import (
    BadRequestError,
    CommitFailedException,
    InvalidArgumentError,
    NoSuchNamespaceError,
    NoSuchTableError,
    NoSuchViewError,
)
from iceshelf.tables.locations import WarehouseLocations, deletable_prefix
from iceshelf.tables.metadata.builder import create_metadata
from iceshelf.tables.metadata.files import LoadedTable, MetadataFile, MetadataFiles
from iceshelf.tables.metadata.manifest_lists import ManifestLists
from iceshelf.tables.names import Identifier, Namespace
from iceshelf.tables.objectstore import ObjectNotFound, ObjectStore, PreconditionFailed
from iceshelf.tables.objectstore.fileio import StoreFileIO
from iceshelf.tables.retry import backoff
from iceshelf.tables.settings import CacheSettings
from iceshelf.tables.state.entries import Entries, EntryExists, already_exists
from iceshelf.tables.state.namespaces import Namespaces
from iceshelf.tables.state.pointer import Kind, Pointer
from iceshelf.tables.viewstore import ViewFiles, ViewStore

log = logging.getLogger("iceshelf.tables")


class TableStore:
    def __init__(
        self,
        name: str,
        objects: ObjectStore,
        commit_attempts: int = 20,
        group_commit: bool = True,
        rebase_appends: bool = False,
        metadata_cache: ByteLRU[str, MetadataFile] | None = None,
        manifest_list_bytes: int = CacheSettings().manifest_list_bytes,
    ) -> None:
        self.name = name
        #: The warehouse's object store (a ``TableStore`` is ``tables``; its ``ObjectStore`` is ``objects``).
        self.objects = objects
        self.namespaces = Namespaces(objects, commit_attempts)
        self.entries = Entries(objects, self.namespaces, commit_attempts)
        self.files = MetadataFiles(objects, metadata_cache)
        self.io = StoreFileIO(objects)
        self.locations = WarehouseLocations(objects, self._locations)
        rebaser = AppendRebaser(ManifestLists(self.io, manifest_list_bytes), rebase_appends)
        self.committer = Committer(
            self.entries, self.files, self.io, self.locations, self.after_commit, rebaser, commit_attempts, group_commit
        )
        self.views = ViewStore(objects, self.namespaces, self.entries, ViewFiles(objects), self.locations, commit_attempts)

    # -- locations ---------------------------------------------------------------------------

    def _locations(self) -> Iterator[tuple[Identifier, str]]:
        """Every table and view with its location, read lazily (a fresh default location needs none)."""
        for kind, load in (("table", self.load_table), ("view", self.views.load_view)):
            for ident in self.all_identifiers(kind):
                try:
                    yield ident, load(ident).metadata.location
                except (NoSuchTableError, NoSuchViewError, NoSuchNamespaceError):
                    continue  # gone since listed

    def all_identifiers(self, kind: Kind = "table") -> list[Identifier]:
        """Every table (or view) of the warehouse, in namespaces at any depth."""
        found: list[Identifier] = []
        pending: list[Namespace] = [()]
        while pending:
            parent = pending.pop()
            try:
                pending += self.namespaces.list(parent)
                if parent:
                    found += [Identifier(parent, name) for name in self.entries.list(parent, kind)]
            except NoSuchNamespaceError:  # dropped while we walked
                continue
        return found

    # -- tables ------------------------------------------------------------------------------

    def new_metadata(
        self,
        ident: Identifier,
        schema: Schema,
        location: str | None = None,
        spec: PartitionSpec | None = None,
        order: SortOrder | None = None,
        properties: Properties | None = None,
    ) -> TableMetadata:
        if location:
            location = location.rstrip("/")
            self.locations.check(ident, location)
        else:
            location = self.locations.default(ident)
        try:
            return create_metadata(
                schema, spec or UNPARTITIONED_PARTITION_SPEC, order or UNSORTED_SORT_ORDER, location, dict(properties or {})
            )
        except ValueError as err:
            raise InvalidArgumentError(str(err)) from err

    def create_table(self, ident: Identifier, metadata: TableMetadata) -> LoadedTable:
        self.namespaces.require_open(ident.namespace)
        if (existing := self.entries.read(ident)) is not None:
            raise already_exists(existing.pointer.kind, ident, "table")
        written = self.files.write(metadata, None)
        self.entries.place(ident, Pointer("table", written.location), lambda: self.files.delete(written.location))
        return LoadedTable(ident, written)

    def stage_table(self, ident: Identifier, metadata: TableMetadata) -> TableMetadata:
        """``stage-create``: nothing is committed (the client commits with ``assert-create``), but the
        name must be free and the location ready for the files the client writes before that commit."""
        self.namespaces.require_open(ident.namespace)
        if (existing := self.entries.read(ident)) is not None:
            raise already_exists(existing.pointer.kind, ident, "table")
        for directory in ("metadata", "data"):
            self.objects.ensure_prefix(self.files.key(f"{metadata.location}/{directory}"))
        return metadata

    def load_table(self, ident: Identifier) -> LoadedTable:
        current = self.entries.read(ident)
        if current is None or current.pointer.kind != "table":
            raise not_found(ident)  # the spec's only 404 here, also in a missing namespace (Java's metadata-table fallback needs it)
        return LoadedTable(ident, self.files.read(current.pointer.metadata_location))

    def table_exists(self, ident: Identifier) -> bool:
        current = self.entries.read(ident)
        return current is not None and current.pointer.kind == "table"

    def list_tables(self, namespace: Namespace) -> list[str]:
        self._require_namespace(namespace)
        return self.entries.list(namespace, "table")

    def drop_table(self, ident: Identifier, purge: bool = False) -> LoadedTable:
        """Remove the table from the catalog; with ``purge``, delete its files too. Returns its last state."""
        table = self.unregister_table(ident)
        if purge:
            try:
                self.purge_files(table.metadata.location)
            except Exception:  # dropped already; what is left is unreferenced, for orphan removal
                log.warning("dropped %s; purging its files failed", table.identifier, exc_info=True)
        return table

    def unregister_table(self, ident: Identifier) -> LoadedTable:
        """Retire the pointer by compare-and-swap, so the state returned includes every earlier commit."""
        for attempt in range(self.committer.attempts):
            current = self.entries.read_settled(ident)
            if current is None or current.pointer.kind != "table":
                raise not_found(ident)
            last = LoadedTable(ident, self.files.read(current.pointer.metadata_location))
            try:
                self.entries.retire(ident, current)
            except PreconditionFailed:
                backoff(attempt)
                continue
            return last
        raise CommitFailedException(f"Too much contention dropping {ident}")

    def purge_files(self, location: str) -> int:
        """Delete every object under a dropped table's location; returns how many."""
        prefix = deletable_prefix(self.objects, location)
        if prefix is None:
            return 0  # never the whole warehouse, nor its catalog state (a registered file can name any location)
        keys = [meta.key for meta in self.objects.list(prefix)]
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(self.objects.delete, keys))
        return len(keys)

    def register_table(self, ident: Identifier, metadata_location: str, overwrite: bool = False) -> LoadedTable:
        try:
            file = self.files.read(metadata_location)
        except ObjectNotFound:
            raise BadRequestError(f"No metadata file at {metadata_location}") from None
        self._require_namespace(ident.namespace)
        self.locations.check_unshared(ident, file.metadata.location)
        if overwrite and (current := self.entries.read_settled(ident)) is not None:
            if current.pointer.kind != "table":
                raise already_exists(current.pointer.kind, ident, "table")
            self.entries.swing(ident, current.etag, current.pointer.at(metadata_location))
            return LoadedTable(ident, file)
        try:
            self.entries.create(ident, Pointer("table", metadata_location))
        except EntryExists as exists:
            raise already_exists(exists.kind, ident, "table") from None
        return LoadedTable(ident, file)

    def rename_table(self, source: Identifier, target: Identifier) -> None:
        self._require_namespace(source.namespace)
        self._require_namespace(target.namespace)
        self.entries.rename("table", source, target, not_found(source))

    # -- commits -----------------------------------------------------------------------------

    def commit(self, change: TableChange) -> LoadedTable:
        if change.creates:
            self._require_namespace(change.identifier.namespace)
        return LoadedTable(change.identifier, self.committer.commit(change))

    def commit_transaction(self, changes: list[TableChange]) -> list[LoadedTable]:
        return [LoadedTable(c.identifier, f) for c, f in zip(changes, self.committer.commit_many(changes))]

    def after_commit(self, staged: Staged) -> None:
        """Iceberg's ``write.metadata.delete-after-commit.enabled``: drop files that fell off the log."""
        if staged.base_metadata is None or staged.file is None:
            return
        new = staged.file.metadata
        if not property_as_bool(
            new.properties,
            TableProperties.METADATA_DELETE_AFTER_COMMIT_ENABLED,
            TableProperties.METADATA_DELETE_AFTER_COMMIT_ENABLED_DEFAULT,
        ):
            return
        kept = {entry.metadata_file for entry in new.metadata_log}
        for entry in staged.base_metadata.metadata_log:
            if entry.metadata_file not in kept:
                try:
                    self.files.delete(entry.metadata_file)
                except Exception:  # the commit stands; a leftover file is an orphan for maintenance
                    log.warning("could not delete old metadata file %s", entry.metadata_file, exc_info=True)

    def _require_namespace(self, namespace: Namespace) -> None:
        self.namespaces.load(namespace)


__all__ = ["LoadedTable", "NoSuchTableError", "TableChange", "TableStore"]
