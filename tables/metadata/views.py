"""View metadata: the REST spec's view updates and requirement, and their application.

pyiceberg 0.12 models view metadata (``ViewMetadata``, ``ViewVersion``) but has no view
updates, so this module adds the two view-only actions and reuses pyiceberg's table update
models for the six actions views share with tables. Application is pure (no I/O) and follows
Iceberg Java's ``ViewMetadata.Builder``: an identical version or schema is reused instead of
duplicated, new ids are one past the highest, ``set-current-view-version`` writes a
version-log entry, ``version.history.num-entries`` bounds the kept versions, and a replace
may not drop a SQL dialect unless ``replace.drop-dialect.allowed`` is set.

Two deliberate leniencies over Java, both for requests Java rejects although they have one
meaning: ``schema-id: -1`` is resolved before looking for an identical version, and an
``add-schema`` or ``add-view-version`` that reuses an existing schema or version makes it the
"last added" one -- so "replace the view with SQL it once had" followed by
``set-current-view-version: -1`` reverts to that version instead of failing.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal, Union

from pydantic import Field
from pyiceberg.schema import Schema
from pyiceberg.table.update import (
    AddSchemaUpdate,
    AssignUUIDUpdate,
    RemovePropertiesUpdate,
    SetLocationUpdate,
    SetPropertiesUpdate,
    UpgradeFormatVersionUpdate,
)
from pyiceberg.typedef import IcebergBaseModel
from pyiceberg.view.metadata import ViewHistoryEntry, ViewMetadata, ViewVersion

from iceshelf.tables.errors import BadRequestError, CommitFailedException, InvalidArgumentError

#: ``schema-id`` / ``view-version-id`` meaning "the one added last in this change".
LAST_ADDED = -1
SUPPORTED_FORMAT_VERSION = 1
VERSION_HISTORY_SIZE = "version.history.num-entries"
VERSION_HISTORY_SIZE_DEFAULT = 10
REPLACE_DROP_DIALECT_ALLOWED = "replace.drop-dialect.allowed"


class AddViewVersionUpdate(IcebergBaseModel):
    action: Literal["add-view-version"] = Field(default="add-view-version")
    view_version: ViewVersion = Field(alias="view-version")


class SetCurrentViewVersionUpdate(IcebergBaseModel):
    action: Literal["set-current-view-version"] = Field(default="set-current-view-version")
    view_version_id: int = Field(alias="view-version-id")


ViewUpdate = Annotated[
    Union[
        AssignUUIDUpdate,
        UpgradeFormatVersionUpdate,
        AddSchemaUpdate,
        SetLocationUpdate,
        SetPropertiesUpdate,
        RemovePropertiesUpdate,
        AddViewVersionUpdate,
        SetCurrentViewVersionUpdate,
    ],
    Field(discriminator="action"),
]


class AssertViewUUID(IcebergBaseModel):
    """The spec's only ``ViewRequirement``: the view is still the one the client loaded."""

    type: Literal["assert-view-uuid"] = Field(default="assert-view-uuid")
    uuid: str

    def validate(self, base: ViewMetadata) -> None:  # type: ignore[override]
        if base.view_uuid.lower() != self.uuid.lower():
            raise CommitFailedException(f"Requirement failed: view UUID does not match: expected {base.view_uuid} != {self.uuid}")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _same_schema(one: Schema, two: Schema) -> bool:
    # Not ``Schema.__eq__``: it calls an empty schema unequal to everything, itself included.
    return one.fields == two.fields and one.identifier_field_ids == two.identifier_field_ids


def _same_version(one: ViewVersion, two: ViewVersion) -> bool:
    """Java's ``sameViewVersion``: equal but for id and timestamp."""
    return (
        one.summary == two.summary
        and one.representations == two.representations
        and one.default_catalog == two.default_catalog
        and list(one.default_namespace) == list(two.default_namespace)
        and one.schema_id == two.schema_id
    )


def _dialects(version: ViewVersion) -> set[str]:
    return {r.root.dialect.lower() for r in version.representations}


def _history_of(history: list[ViewHistoryEntry], kept: set[int]) -> list[ViewHistoryEntry]:
    """The log must stay contiguous: an entry for an expired version cuts off everything before it."""
    retained: list[ViewHistoryEntry] = []
    for entry in history:
        if entry.version_id in kept:
            retained.append(entry)
        else:
            retained.clear()
    return retained


class _Builder:
    """A mutable working copy of view metadata; ``build`` validates and freezes it."""

    def __init__(self, base: ViewMetadata | None) -> None:
        self.uuid = None if base is None else base.view_uuid
        self.format_version = SUPPORTED_FORMAT_VERSION if base is None else base.format_version
        self.location = None if base is None else base.location
        self.schemas = [] if base is None else list(base.schemas)
        self.versions = [] if base is None else list(base.versions)
        self.history = [] if base is None else list(base.version_log)
        self.properties = {} if base is None else dict(base.properties)
        self.current_version_id = None if base is None else base.current_version_id
        self.previous_version = None if base is None else self._version(base.current_version_id)
        self.changed = False
        self.added_version_ids: set[int] = set()
        self.last_added_version_id: int | None = None
        self.last_added_schema_id: int | None = None
        self.history_entry: ViewHistoryEntry | None = None

    def _version(self, version_id: int) -> ViewVersion | None:
        return next((v for v in self.versions if v.version_id == version_id), None)

    def apply(self, update: ViewUpdate) -> None:
        if isinstance(update, AssignUUIDUpdate):
            self.assign_uuid(str(update.uuid))
        elif isinstance(update, UpgradeFormatVersionUpdate):
            self.upgrade_format_version(update.format_version)
        elif isinstance(update, AddSchemaUpdate):
            self.add_schema(update.schema_)
        elif isinstance(update, SetLocationUpdate):
            self.set_location(update.location)
        elif isinstance(update, SetPropertiesUpdate):
            self.set_properties(update.updates)
        elif isinstance(update, RemovePropertiesUpdate):
            self.remove_properties(update.removals)
        elif isinstance(update, AddViewVersionUpdate):
            self.add_version(update.view_version)
        else:
            self.set_current_version_id(update.view_version_id)

    def assign_uuid(self, new_uuid: str) -> None:
        if self.uuid is not None and new_uuid.lower() != self.uuid.lower():
            raise BadRequestError(f"Cannot reassign view uuid {self.uuid} to {new_uuid}")
        if self.uuid is None:
            self.uuid = new_uuid
            self.changed = True

    def upgrade_format_version(self, version: int) -> None:
        if version < self.format_version:
            raise BadRequestError(f"Cannot downgrade v{self.format_version} view to v{version}")
        if version > SUPPORTED_FORMAT_VERSION:
            raise BadRequestError(f"Unsupported view format version: {version}")

    def set_location(self, location: str) -> None:
        location = location.rstrip("/")
        if location != self.location:
            self.location = location
            self.changed = True

    def set_properties(self, updates: dict[str, str]) -> None:
        if updates:
            self.properties.update(updates)
            self.changed = True

    def remove_properties(self, removals: list[str]) -> None:
        if removals:
            for key in removals:
                self.properties.pop(key, None)
            self.changed = True

    def add_schema(self, schema: Schema) -> int:
        existing = next((s for s in self.schemas if _same_schema(s, schema)), None)
        if existing is not None:
            self.last_added_schema_id = existing.schema_id
            return existing.schema_id
        schema_id = max((s.schema_id for s in self.schemas), default=-1) + 1
        self.schemas.append(schema.model_copy(update={"schema_id": schema_id}))
        self.changed = True
        self.last_added_schema_id = schema_id
        return schema_id

    def add_version(self, version: ViewVersion) -> int:
        if version.schema_id == LAST_ADDED:
            if self.last_added_schema_id is None:
                raise BadRequestError("Cannot set last added schema: no schema has been added")
            version = version.model_copy(update={"schema_id": self.last_added_schema_id})
        existing = next((v for v in self.versions if _same_version(v, version)), None)
        if existing is not None:
            self.last_added_version_id = existing.version_id
            return existing.version_id
        if not any(s.schema_id == version.schema_id for s in self.schemas):
            raise BadRequestError(f"Cannot add version with unknown schema: {version.schema_id}")
        dialects = [r.root.dialect.lower() for r in version.representations]
        if repeated := next((d for i, d in enumerate(dialects) if d in dialects[:i]), None):
            raise InvalidArgumentError(f"Invalid view version: Cannot add multiple queries for dialect {repeated}")
        version_id = max([version.version_id, *(v.version_id + 1 for v in self.versions)])
        self.versions.append(version.model_copy(update={"version_id": version_id}))
        self.added_version_ids.add(version_id)
        self.last_added_version_id = version_id
        self.changed = True
        return version_id

    def set_current_version_id(self, version_id: int) -> None:
        if version_id == LAST_ADDED:
            if self.last_added_version_id is None:
                raise BadRequestError("Cannot set last version id: no view version has been added")
            version_id = self.last_added_version_id
        if version_id == self.current_version_id:
            return
        version = self._version(version_id)
        if version is None:
            raise BadRequestError(f"Cannot set current version to unknown version: {version_id}")
        self.current_version_id = version_id
        self.changed = True
        # A version added in this change became current when it was made; an old one, now.
        added_here = version_id in self.added_version_ids
        self.history_entry = ViewHistoryEntry(
            timestamp_ms=version.timestamp_ms if added_here else _now_ms(), version_id=version_id
        )

    def build(self) -> ViewMetadata:
        if self.location is None:
            raise BadRequestError("Invalid view: no location")
        current = None if self.current_version_id is None else self._version(self.current_version_id)
        if current is None:
            raise BadRequestError("Invalid view: no current version")
        history = self.history + ([self.history_entry] if self.history_entry is not None else [])
        if self.previous_version is not None and self.properties.get(REPLACE_DROP_DIALECT_ALLOWED, "false").lower() != "true":
            dropped = _dialects(self.previous_version) - _dialects(current)
            if dropped:
                raise BadRequestError(
                    f"Cannot replace view due to loss of view dialects {sorted(dropped)} ({REPLACE_DROP_DIALECT_ALLOWED}=false)"
                )
        versions = self._retained_versions(current.version_id)
        if len(versions) < len(self.versions):
            history = _history_of(history, {v.version_id for v in versions})
        return ViewMetadata(
            view_uuid=self.uuid or str(uuid.uuid4()),
            format_version=self.format_version,
            location=self.location,
            schemas=self.schemas,
            current_version_id=current.version_id,
            versions=versions,
            version_log=history,
            properties=self.properties,
        )

    def _retained_versions(self, current_id: int) -> list[ViewVersion]:
        """The newest versions by id, at most ``version.history.num-entries`` but never this change's or the current."""
        try:
            size = int(self.properties.get(VERSION_HISTORY_SIZE, VERSION_HISTORY_SIZE_DEFAULT))
        except ValueError:
            raise BadRequestError(f"{VERSION_HISTORY_SIZE} must be an integer") from None
        if size < 1:
            raise BadRequestError(f"{VERSION_HISTORY_SIZE} must be positive but was {size}")
        keep = max(len(self.added_version_ids | {current_id}), size)
        if len(self.versions) <= keep:
            return self.versions
        newest = sorted((v.version_id for v in self.versions if v.version_id != current_id), reverse=True)
        kept = {current_id, *newest[: keep - 1]}
        return [v for v in self.versions if v.version_id in kept]


def new_view_metadata(location: str, schema: Schema, version: ViewVersion, properties: dict[str, str]) -> ViewMetadata:
    """Metadata for ``createView``: the request's version becomes current, its ``schema-id`` replaced by the schema's."""
    builder = _Builder(None)
    builder.assign_uuid(str(uuid.uuid4()))
    builder.set_location(location)
    builder.set_properties(properties)
    schema_id = builder.add_schema(schema)
    builder.set_current_version_id(builder.add_version(version.model_copy(update={"schema_id": schema_id})))
    return builder.build()


def apply_view_updates(base: ViewMetadata, updates: tuple[ViewUpdate, ...]) -> ViewMetadata | None:
    """``base`` with ``updates`` applied in order, as one change; ``None`` when nothing changed."""
    builder = _Builder(base)
    for update in updates:
        builder.apply(update)
    return builder.build() if builder.changed else None
