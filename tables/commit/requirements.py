"""Commit requirements, validated as Java's ``UpdateRequirement`` validates them, in its words.

pyiceberg's models parse the requirements; their own ``validate`` words failures differently from
the reference (``Table UUID does not match: a != b``, ``Table already exists``). Clients and the
REST Compatibility Kit match the reference's messages, and users search for them, so each
requirement type the spec defines is checked here, with the message of
``org.apache.iceberg.UpdateRequirement`` (Iceberg 1.11). A requirement of the server's own (e.g.
compaction's ``AssertStillExpirable``) keeps its own ``validate``.
"""

from __future__ import annotations

from typing import Callable

from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import SnapshotRefType
from pyiceberg.table.update import (
    AssertCreate,
    AssertCurrentSchemaId,
    AssertDefaultSortOrderId,
    AssertDefaultSpecId,
    AssertLastAssignedFieldId,
    AssertLastAssignedPartitionId,
    AssertRefSnapshotId,
    AssertTableUUID,
    TableRequirement,
)

from iceshelf.tables.errors import CommitFailedException

TABLE_EXISTS = "Requirement failed: table already exists"


def _failed(message: str) -> CommitFailedException:
    return CommitFailedException(f"Requirement failed: {message}")


def _create(requirement: AssertCreate, base: TableMetadata | None) -> None:
    if base is not None:
        raise CommitFailedException(TABLE_EXISTS)


def _uuid(requirement: AssertTableUUID, base: TableMetadata) -> None:
    if str(requirement.uuid).lower() != str(base.table_uuid).lower():
        raise _failed(f"UUID does not match: expected {base.table_uuid} != {requirement.uuid}")


def _ref(requirement: AssertRefSnapshotId, base: TableMetadata) -> None:
    ref, name, expected = base.refs.get(requirement.ref), requirement.ref, requirement.snapshot_id
    if ref is not None:
        kind = "branch" if ref.snapshot_ref_type == SnapshotRefType.BRANCH else "tag"
        if expected is None:  # the ref must not exist yet
            raise _failed(f"{kind} {name} was created concurrently")
        if expected != ref.snapshot_id:
            raise _failed(f"{kind} {name} has changed: expected id {expected} != {ref.snapshot_id}")
    elif expected is not None:
        raise _failed(f"branch or tag {name} is missing, expected {expected}")


def _unchanged(what: str, required: Callable[[TableRequirement], int], actual: Callable[[TableMetadata], int | None]):
    """A requirement that one id of the table is still what the client saw."""

    def validate(requirement: TableRequirement, base: TableMetadata) -> None:
        if required(requirement) != actual(base):
            raise _failed(f"{what} changed: expected id {required(requirement)} != {actual(base)}")

    return validate


#: Per requirement type: the check, given the table as it is now (``None`` only for ``assert-create``).
VALIDATORS: dict[type, Callable] = {
    AssertCreate: _create,
    AssertTableUUID: _uuid,
    AssertRefSnapshotId: _ref,
    AssertCurrentSchemaId: _unchanged("current schema", lambda r: r.current_schema_id, lambda b: b.current_schema_id),
    AssertLastAssignedFieldId: _unchanged(
        "last assigned field id", lambda r: r.last_assigned_field_id, lambda b: b.last_column_id
    ),
    AssertLastAssignedPartitionId: _unchanged(
        "last assigned partition id", lambda r: r.last_assigned_partition_id, lambda b: b.last_partition_id
    ),
    AssertDefaultSpecId: _unchanged("default partition spec", lambda r: r.default_spec_id, lambda b: b.default_spec_id),
    AssertDefaultSortOrderId: _unchanged(
        "default sort order", lambda r: r.default_sort_order_id, lambda b: b.default_sort_order_id
    ),
}


def validate(requirement: TableRequirement, base: TableMetadata | None) -> None:
    """Raise ``CommitFailedException`` (409) if ``requirement`` does not hold on ``base``."""
    check = VALIDATORS.get(type(requirement))
    if check is None:
        return requirement.validate(base)  # the server's own requirement types
    if base is None and not isinstance(requirement, AssertCreate):
        raise _failed("current table metadata is missing")
    check(requirement, base)
