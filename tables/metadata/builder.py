"""Table metadata: parse, serialize and update, with the v3 pieces pyiceberg 0.12 lacks.

pyiceberg models v3 metadata but refuses to write it and to upgrade a table to v3. Iceshelf
needs both (DuckDB creates v3 tables), so this module extends pyiceberg's own update machinery
instead of forking it: every update except ``upgrade-format-version`` to 3 goes through
pyiceberg's ``_apply_table_update``; row lineage (``next-row-id``) is kept right for v3.
"""

from __future__ import annotations

import uuid

from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema, _SetFreshIDs, pre_order_visit
from pyiceberg.table import TableProperties
from pyiceberg.table.metadata import (
    TableMetadata,
    TableMetadataUtil,
    TableMetadataV1,
    new_table_metadata,
)
from pyiceberg.table.sorting import SortOrder
from pyiceberg.table.update import (
    AddSortOrderUpdate,
    RemovePartitionStatisticsUpdate,
    RemovePropertiesUpdate,
    RemoveStatisticsUpdate,
    SetDefaultSortOrderUpdate,
    TableUpdate,
    UpgradeFormatVersionUpdate,
    _apply_table_update,
    _TableMetadataUpdateContext,
    _update_table_metadata_log,
)
from pyiceberg.typedef import IcebergBaseModel
from pyiceberg.types import IcebergType, StructType

from iceshelf.tables import clock
from iceshelf.tables.metadata.history import check_metadata_log, check_ordered
from iceshelf.tables.metadata.types import resolve_metadata_dict, resolved_metadata_json

#: The newest table format Iceshelf reads and writes.
MAX_FORMAT_VERSION = 3


def parse_metadata(data: bytes) -> TableMetadata:
    resolved = resolved_metadata_json(data)
    parsed = TableMetadataUtil.parse_raw(data) if resolved is None else TableMetadataUtil.parse_obj(resolved)
    return _with_row_lineage(parsed)


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
    """Fresh metadata for ``createTable``: field ids reassigned as the spec requires, column defaults
    kept (as Java's ``TypeUtil.assignFreshIds``; pyiceberg's reassignment drops them), and the
    reference's defaults for new tables."""
    version = int(properties.get(TableProperties.FORMAT_VERSION, TableProperties.DEFAULT_FORMAT_VERSION))
    if not 1 <= version <= MAX_FORMAT_VERSION:
        raise ValueError(f"Unsupported format-version {version}; supported: 1 to {MAX_FORMAT_VERSION}")
    properties = {**NEW_TABLE_PROPERTIES, **properties}
    metadata = new_table_metadata(schema, spec, order, location, properties, uuid.uuid4())
    fresh = pre_order_visit(schema, _FreshIdsKeepingDefaults())
    if version < 3:
        _refuse_defaults(fresh.as_struct())
    schema_update = {"schemas": [fresh]} if version > 1 else {"schema_": fresh, "schemas": [fresh]}
    return _with_row_lineage(metadata.model_copy(update=schema_update))


#: What Java's ``TableMetadata.newTableMetadata`` sets on every new table unless the client did: without
#: a codec, Java and Spark writers fall back to gzip.
NEW_TABLE_PROPERTIES = {TableProperties.PARQUET_COMPRESSION: "zstd"}


class _FreshIdsKeepingDefaults(_SetFreshIDs):
    """pyiceberg's fresh-id assignment, keeping each field's ``initial-default`` and ``write-default``."""

    def struct(self, struct: StructType, field_results: list) -> StructType:  # type: ignore[override]
        fresh = super().struct(struct, field_results)
        return StructType(
            *(
                new.model_copy(update={"initial_default": old.initial_default, "write_default": old.write_default})
                for new, old in zip(fresh.fields, struct.fields, strict=True)
            )
        )


def _refuse_defaults(struct: IcebergType) -> None:
    """Java's ``Schema.checkCompatibility``: non-null defaults need format v3."""
    for field in getattr(struct, "fields", ()):
        for kind, value in (("initial", field.initial_default), ("write", field.write_default)):
            if value is not None:
                raise ValueError(
                    f"Invalid {kind} default for {field.name}: non-null default ({value}) is not supported until v3"
                )
        _refuse_defaults(field.field_type)


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
        orders = _SortOrderIds()
        for update in updates:
            if isinstance(update, UpgradeFormatVersionUpdate) and update.format_version > 2:
                metadata = _upgrade(metadata, update.format_version)
                context.add_update(update)
                continue
            as_java = _as_java_builder(update, metadata, orders)
            if as_java is not None:
                metadata = _with_row_lineage(_apply_table_update(as_java, metadata, context), before=metadata)
        metadata.spec().check_compatible(metadata.schema())
        metadata.sort_order().check_compatible(metadata.schema())
        if context.has_changes():
            metadata = _stamped(metadata, self.state if self.state is not None else self._start)
        if self.base_location is None:
            # Built from nothing: run every model validator, as pyiceberg does for creates.
            metadata = TableMetadataUtil.parse_obj(resolve_metadata_dict(metadata.model_dump()))
        self.state, self._changed = metadata, self._changed or context.has_changes()
        return metadata

    def finish(self) -> TableMetadata:
        """The next version; ``base`` itself if nothing changed (the caller commits nothing, as Java does)."""
        if self.base_location is not None and not self._changed:
            return self._start
        metadata = self.state if self.state is not None else self._start
        if self._changed and self.base_location:
            metadata = _update_table_metadata_log(metadata, self.base_location, self._start.last_updated_ms)
        check_metadata_log(metadata)  # the rest of the order was checked when each change was applied
        return metadata


def apply_updates(base: TableMetadata, updates: tuple[TableUpdate, ...], base_location: str | None) -> TableMetadata:
    """Apply ``updates`` in order, as one change, to ``base`` (the metadata at ``base_location``)."""
    builder = MetadataBuilder(base, base_location)
    builder.apply(updates)
    return builder.finish()


class _SortOrderIds:
    """Java's ``lastAddedOrderId`` within one change: what ``set-default-sort-order -1`` means."""

    def __init__(self) -> None:
        self.last_added: int | None = None
        self.added: set[int] = set()

    def add(self, update: AddSortOrderUpdate, metadata: TableMetadata) -> AddSortOrderUpdate | None:
        """The requested id is a proposal (Java's ``addSortOrder``): an equal order is reused, else the
        order gets max+1 (0 for the unsorted order). ``None``: nothing to add."""
        order = update.sort_order
        if order.is_unsorted:
            order_id = 0
            existing = next((o for o in metadata.sort_orders if o.order_id == 0), None)
        else:
            existing = next((o for o in metadata.sort_orders if o.fields == order.fields), None)
            order_id = existing.order_id if existing else max((o.order_id for o in metadata.sort_orders), default=0) + 1
        if existing is not None:
            # Java: still "the last added" only if it was added by this change.
            self.last_added = order_id if self.last_added is not None and self.last_added in self.added else None
            return None
        self.last_added = order_id
        self.added.add(order_id)
        return AddSortOrderUpdate(sort_order=SortOrder(*order.fields, order_id=order_id))

    def default(self, update: SetDefaultSortOrderUpdate) -> SetDefaultSortOrderUpdate:
        if update.sort_order_id != -1:
            return update
        if self.last_added is None:
            raise ValueError("Cannot set last added sort order: no sort order has been added")
        return SetDefaultSortOrderUpdate(sort_order_id=self.last_added)


def _as_java_builder(update: TableUpdate, metadata: TableMetadata, orders: _SortOrderIds) -> TableUpdate | None:
    """``update`` as Java's ``TableMetadata.Builder`` reads it, where pyiceberg's handler differs; ``None``
    when Java's builder makes it a no-op."""
    if isinstance(update, RemovePropertiesUpdate):
        # Removing a key that is not set is no error (pyiceberg raises KeyError).
        return RemovePropertiesUpdate(removals=[k for k in update.removals if k in metadata.properties])
    if isinstance(update, RemoveStatisticsUpdate):
        # Trino's expire_snapshots removes a snapshot and then its statistics, already gone with it.
        return update if any(s.snapshot_id == update.snapshot_id for s in metadata.statistics) else None
    if isinstance(update, RemovePartitionStatisticsUpdate):
        return update if any(s.snapshot_id == update.snapshot_id for s in metadata.partition_statistics) else None
    if isinstance(update, AddSortOrderUpdate):
        return orders.add(update, metadata)
    if isinstance(update, SetDefaultSortOrderUpdate):
        return orders.default(update)
    return update


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
