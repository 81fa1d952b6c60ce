"""The view store of one warehouse: views live beside tables, under the same pointers.

A view is a pointer of kind ``view`` naming an immutable view metadata file, so every guarantee
tables have carries over: names are shared through ``Entries`` (a view and a table can never
share one), a rename is the same recoverable protocol, and a replace is the tables' commit
loop -- re-read, re-validate, reapply, swing the pointer by compare-and-swap.
"""

from __future__ import annotations

from pydantic import ValidationError as PydanticValidationError
from pyiceberg.schema import Schema
from pyiceberg.view.metadata import ViewMetadata, ViewVersion

from iceshelf.tables.errors import BadRequestError, CommitFailedException, NoSuchViewError
from iceshelf.tables.locations import WarehouseLocations, location_key
from iceshelf.tables.metadata.files import LoadedView, ViewFile, next_metadata_location
from iceshelf.tables.metadata.types import resolved_metadata_json
from iceshelf.tables.metadata.views import (
    AssertViewUUID,
    ViewUpdate,
    apply_view_updates,
    new_view_metadata,
)
from iceshelf.tables.names import Identifier, Namespace
from iceshelf.tables.objectstore import CREATE, ObjectNotFound, ObjectStore, PreconditionFailed
from iceshelf.tables.retry import backoff
from iceshelf.tables.state.entries import Entries, EntryExists, already_exists
from iceshelf.tables.state.namespaces import Namespaces
from iceshelf.tables.state.pointer import Pointer, VersionedPointer

#: Java's ``ViewProperties.WRITE_METADATA_LOCATION``: where a view's metadata files go instead of ``<location>/metadata``.
WRITE_METADATA_PATH = "write.metadata.path"


class ViewFiles:
    """View metadata files: written once with ``Create``, named like tables' (``NNNNN-<uuid>.metadata.json``)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def key(self, location: str) -> str:
        return location_key(self.store, location)

    def read(self, location: str) -> ViewFile:
        raw = self.store.get(self.key(location)).data
        resolved = resolved_metadata_json(raw)
        metadata = ViewMetadata.model_validate_json(raw) if resolved is None else ViewMetadata.model_validate(resolved)
        return ViewFile(location, metadata, raw)

    def write(self, metadata: ViewMetadata, previous: str | None) -> ViewFile:
        location = next_metadata_location(metadata.location, previous, metadata.properties.get(WRITE_METADATA_PATH))
        raw = metadata.model_dump_json().encode()
        self.store.put(self.key(location), raw, CREATE)
        return ViewFile(location, metadata, raw)

    def delete(self, location: str) -> None:
        self.store.delete(self.key(location))


def not_found(ident: Identifier) -> NoSuchViewError:
    return NoSuchViewError(f"View does not exist: {ident}")


class ViewStore:
    def __init__(
        self,
        store: ObjectStore,
        namespaces: Namespaces,
        entries: Entries,
        files: ViewFiles,
        locations: WarehouseLocations,
        attempts: int = 20,
    ) -> None:
        self.store = store
        self.namespaces = namespaces
        self.entries = entries
        self.files = files
        self.locations = locations
        self.attempts = attempts

    def _pointer(self, ident: Identifier) -> VersionedPointer:
        current = self.entries.read(ident)
        if current is None or current.pointer.kind != "view":
            raise not_found(ident)  # the spec's only 404 here, also in a missing namespace
        return current

    def create_view(
        self,
        ident: Identifier,
        schema: Schema,
        version: ViewVersion,
        location: str | None = None,
        properties: dict[str, str] | None = None,
    ) -> LoadedView:
        self.namespaces.require_open(ident.namespace)
        if (current := self.entries.read(ident)) is not None:
            raise already_exists(current.pointer.kind, ident, "view")
        location = (location or self.locations.default(ident)).rstrip("/")
        self.locations.check(ident, location, "view location")
        metadata = new_view_metadata(location, schema, version, dict(properties or {}))
        self._check_metadata_path(ident, metadata, None)
        written = self.files.write(metadata, None)
        self.entries.place(ident, Pointer("view", written.location), lambda: self.files.delete(written.location))
        return LoadedView(ident, written)

    def _check_metadata_path(self, ident: Identifier, metadata: ViewMetadata, base: ViewMetadata | None) -> None:
        """A ``write.metadata.path`` the client set must be a usable location of its own, as a view location is."""
        path = metadata.properties.get(WRITE_METADATA_PATH)
        if path and (base is None or path != base.properties.get(WRITE_METADATA_PATH)):
            self.locations.check(ident, path.rstrip("/"), f"view {WRITE_METADATA_PATH}")

    def load_view(self, ident: Identifier) -> LoadedView:
        return LoadedView(ident, self.files.read(self._pointer(ident).pointer.metadata_location))

    def view_exists(self, ident: Identifier) -> bool:
        current = self.entries.read(ident)
        return current is not None and current.pointer.kind == "view"

    def list_views(self, namespace: Namespace) -> list[str]:
        self.namespaces.load(namespace)
        return self.entries.list(namespace, "view")

    def drop_view(self, ident: Identifier) -> None:
        """Retire the pointer by compare-and-swap, like a table drop; the metadata files stay, as in Iceberg's catalogs."""
        for attempt in range(self.attempts):
            try:
                self.entries.retire(ident, self._pointer(ident))
            except PreconditionFailed:
                backoff(attempt)
                continue
            return
        raise CommitFailedException(f"Too much contention dropping view {ident}")

    def rename_view(self, source: Identifier, target: Identifier) -> None:
        self.namespaces.load(source.namespace)
        self.namespaces.load(target.namespace)
        self.entries.rename("view", source, target, not_found(source))

    def register_view(self, ident: Identifier, metadata_location: str) -> LoadedView:
        self.namespaces.require_open(ident.namespace)
        try:
            file = self.files.read(metadata_location)
        except ObjectNotFound:
            raise BadRequestError(f"View metadata file does not exist: {metadata_location}") from None
        except PydanticValidationError as err:
            raise BadRequestError(f"Not a view metadata file: {metadata_location}: {err}") from None
        try:
            self.entries.create(ident, Pointer("view", metadata_location))
        except EntryExists as exists:
            raise already_exists(exists.kind, ident, "view") from None
        return LoadedView(ident, file)

    def replace_view(
        self, ident: Identifier, requirements: tuple[AssertViewUUID, ...], updates: tuple[ViewUpdate, ...]
    ) -> LoadedView:
        """``replaceView``: validate, apply, write, swing; on a lost swing start over from the new pointer.

        The requirements alone decide whether the change still applies after a lost race; if one
        fails the caller gets ``CommitFailedException`` and no file this call wrote stays behind.
        """
        for attempt in range(self.attempts):
            current = self._pointer(ident)
            base = self.files.read(current.pointer.metadata_location)
            for requirement in requirements:
                requirement.validate(base.metadata)
            updated = apply_view_updates(base.metadata, updates)
            if updated is None:
                return LoadedView(ident, base)
            if updated.location != base.metadata.location:
                self.locations.check(ident, updated.location, "view location")
            self._check_metadata_path(ident, updated, base.metadata)
            written = self.files.write(updated, base.location)
            try:
                self.entries.publish(ident, current, current.pointer.at(written.location))
            except PreconditionFailed:
                self.files.delete(written.location)
                backoff(attempt)
                continue
            return LoadedView(ident, written)
        raise CommitFailedException(f"Commit to view {ident} lost {self.attempts} races in a row; retry later")
