"""Table metadata: parse, serialize and update, with the v3 pieces pyiceberg 0.12 lacks.

pyiceberg models v3 metadata but refuses to write it and to upgrade a table to v3. Iceshelf
needs both (DuckDB creates v3 tables), so this module extends pyiceberg's own update machinery
instead of forking it: every update except ``upgrade-format-version`` to 3 goes through
pyiceberg's ``_apply_table_update``; row lineage (``next-row-id``) is kept right for v3.
"""

from __future__ import annotations

import uuid

from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import TableProperties
from pyiceberg.table.metadata import (
    TableMetadata,
    TableMetadataUtil,
    TableMetadataV1,
    new_table_metadata,
)
from pyiceberg.table.sorting import SortOrder
from pyiceberg.table.update import (
    RemovePropertiesUpdate,
    TableUpdate,
    UpgradeFormatVersionUpdate,
    _apply_table_update,
    _TableMetadataUpdateContext,
    _update_table_metadata_log,
)
from pyiceberg.typedef import IcebergBaseModel

from iceshelf.tables import clock
from iceshelf.tables.metadata.history import check_ordered

#: The newest table format Iceshelf reads and writes.
MAX_FORMAT_VERSION = 3


def parse_metadata(data: bytes) -> TableMetadata:
    return _with_row_lineage(TableMetadataUtil.parse_raw(data))


def serialize_metadata(metadata: TableMetadata) -> bytes:
    """JSON bytes of the metadata; for v3 through the base model, since pyiceberg's v3 writer is switched off."""
    return IcebergBaseModel.model_dump_json(metadata, exclude_none=True, by_alias=True).encode()


def empty_metadata() -> TableMetadata:
    """The base a create-by-updates (stage-create + ``assert-create``) applies its updates to."""
    return TableMetadataV1.model_construct(last_column_id=-1, schema=Schema())


def create_metadata(
    schema: Schema,
    spec: PartitionSpec,
    order: SortOrder,
    location: str,
    properties: dict[str, str],
) -> TableMetadata:
    """Fresh metadata for ``createTable``: field ids reassigned as the spec requires."""
    version = int(properties.get(TableProperties.FORMAT_VERSION, TableProperties.DEFAULT_FORMAT_VERSION))
    if not 1 <= version <= MAX_FORMAT_VERSION:
        raise ValueError(f"Unsupported format-version {version}; supported: 1 to {MAX_FORMAT_VERSION}")
    metadata = new_table_metadata(schema, spec, order, location, dict(properties), uuid.uuid4())
    return _with_row_lineage(metadata)


class MetadataBuilder:
    """Changes applied one after another to one base, finished once into the next metadata version.

    Mirrors ``pyiceberg.table.update.update_table_metadata`` (same update handlers, same
    metadata-log and ``previous-versions-max`` handling) and adds the v3 upgrade. Each ``apply``
    is one change, with its own update context, checked as pyiceberg checks a commit and as Java's
    ``TableMetadata`` checks the history's order (``history.check_ordered``: so a change that breaks
    it is refused on its own, also within a batch); ``finish`` adds the metadata-log entry, once, and
    asserts the order of the whole: a group commit applies every change of its batch to one builder.

    ``last-updated-ms`` is set by ``_stamped``: the server's clock, never going back.

    The result shares what did not change with ``base`` (the update handlers copy what they
    change). pyiceberg ends with a deep copy instead, which here would protect nothing: metadata
    objects are immutable values in Iceshelf, parsed once per file and shared by every reader
    through ``MetadataFiles``' cache. That copy grows with the table's snapshots; made once per
    change it was the largest part of a busy table's commit CPU.
    """

    def __init__(self, base: TableMetadata | None, base_location: str | None) -> None:
        self.base_location = base_location
        #: What the next change's requirements are validated against; ``None`` while the table is
        #: still to be created (``base`` is ``None``, and so is ``base_location``).
        self.state: TableMetadata | None = base
        self._start = base if base is not None else empty_metadata()
        self._changed = False

    def apply(self, updates: tuple[TableUpdate, ...]) -> TableMetadata:
        """Apply one change's ``updates`` to ``state``. If one fails, ``state`` is left as it was (the
        update handlers return new objects, never modify their input)."""
        context = _TableMetadataUpdateContext()
        metadata = self.state if self.state is not None else self._start
        for update in updates:
            if isinstance(update, UpgradeFormatVersionUpdate) and update.format_version > 2:
                metadata = _upgrade(metadata, update.format_version)
                context.add_update(update)
            else:
                if isinstance(update, RemovePropertiesUpdate):
                    # As Java's builder: removing a key that is not set is no error (pyiceberg raises KeyError).
                    update = RemovePropertiesUpdate(removals=[k for k in update.removals if k in metadata.properties])
                metadata = _with_row_lineage(_apply_table_update(update, metadata, context), before=metadata)
        metadata.spec().check_compatible(metadata.schema())
        metadata.sort_order().check_compatible(metadata.schema())
        if context.has_changes():
            metadata = _stamped(metadata, self.state if self.state is not None else self._start)
        if self.base_location is None:
            # Built from nothing: run every model validator, as pyiceberg does for creates.
            metadata = TableMetadataUtil.parse_obj(metadata.model_dump())
        self.state, self._changed = metadata, self._changed or context.has_changes()
        return metadata

    def finish(self) -> TableMetadata:
        """The next version; ``base`` itself if nothing changed (the caller commits nothing, as Java does)."""
        if self.base_location is not None and not self._changed:
            return self._start
        metadata = self.state if self.state is not None else self._start
        if self._changed and self.base_location:
            metadata = _update_table_metadata_log(metadata, self.base_location, self._start.last_updated_ms)
        check_ordered(metadata)
        return metadata


def apply_updates(base: TableMetadata, updates: tuple[TableUpdate, ...], base_location: str | None) -> TableMetadata:
    """Apply ``updates`` in order, as one change, to ``base`` (the metadata at ``base_location``)."""
    builder = MetadataBuilder(base, base_location)
    builder.apply(updates)
    return builder.finish()


def _stamped(metadata: TableMetadata, before: TableMetadata) -> TableMetadata:
    """``metadata`` as changed at this moment, after Java's order checks.

    The checks see Java's ``last-updated-ms``, the server's clock (pyiceberg takes a new snapshot's
    timestamp, so a client clock running ahead would pass unchecked); what is written is also never
    before the base's nor the snapshot log's newest entry, so it never goes back and no reader sees the
    table updated before its own current snapshot.
    """
    updated = max(clock.now_ms(), before.last_updated_ms)
    check_ordered(metadata, updated)
    logged = metadata.snapshot_log[-1].timestamp_ms if metadata.snapshot_log else updated
    return metadata.model_copy(update={"last_updated_ms": max(updated, logged)})


def _upgrade(metadata: TableMetadata, version: int) -> TableMetadata:
    if version > MAX_FORMAT_VERSION:
        raise ValueError(f"Unsupported table format version: {version}")
    if version < metadata.format_version:
        raise ValueError(f"Cannot downgrade v{metadata.format_version} table to v{version}")
    if version == metadata.format_version:
        return metadata
    upgraded = metadata.model_copy(update={"format_version": version})
    return _with_row_lineage(TableMetadataUtil._construct_without_validation(upgraded))


def _with_row_lineage(metadata: TableMetadata, before: TableMetadata | None = None) -> TableMetadata:
    """Keep v3's ``next-row-id`` defined: 0 for a new table, unchanged by a snapshot that reports no rows."""
    if metadata.format_version < 3 or metadata.next_row_id is not None:
        return metadata
    previous = getattr(before, "next_row_id", None) if before is not None else None
    return metadata.model_copy(update={"next_row_id": previous or 0})
