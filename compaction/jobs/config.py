"""Maintenance configuration in S3 Tables' shape: the models, their defaults, and what they resolve to.

The models mirror the S3 Tables API (``PutTableMaintenanceConfiguration``,
``GetTableMaintenanceJobStatus``, ``PutTableBucketMaintenanceConfiguration``) field for field, so a
user of S3 Tables reads them without a dictionary. Per table: ``icebergCompaction`` and
``icebergSnapshotManagement``; per warehouse: ``icebergUnreferencedFileRemoval``.

The documents are stored, with the jobs' status and run history, by ``records.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pyiceberg.table import TableProperties
from pyiceberg.typedef import Properties
from pyiceberg.utils.properties import property_as_int

from iceshelf.compaction.rewrite.planner import MIB, PlanOptions, Strategy, target_file_size

JobType = Literal["icebergCompaction", "icebergSnapshotManagement", "icebergUnreferencedFileRemoval"]
TABLE_JOB_TYPES: tuple[JobType, ...] = ("icebergCompaction", "icebergSnapshotManagement")
WAREHOUSE_JOB_TYPES: tuple[JobType, ...] = ("icebergUnreferencedFileRemoval",)
JOB_TYPES: tuple[JobType, ...] = TABLE_JOB_TYPES + WAREHOUSE_JOB_TYPES

#: S3 Tables' defaults (the target file size's, 512 MB, is the planner's).
DEFAULT_STRATEGY = "auto"
DEFAULT_UNREFERENCED_DAYS = 3
DEFAULT_NONCURRENT_DAYS = 10

_MS_PER_HOUR = 3_600_000


class Model(BaseModel):
    """A maintenance document: unknown fields are refused, as S3 Tables refuses them."""

    model_config = ConfigDict(extra="forbid")


# -- configuration: an unset field means "the table property, else the default" ----------------


class CompactionSettings(Model):
    targetFileSizeMB: int | None = Field(None, ge=64, le=512)
    strategy: Strategy | None = None


class CompactionSettingsValue(Model):
    icebergCompaction: CompactionSettings = CompactionSettings()


class CompactionConfig(Model):
    status: Literal["enabled", "disabled"] = "enabled"
    settings: CompactionSettingsValue = CompactionSettingsValue()


class SnapshotManagementSettings(Model):
    minSnapshotsToKeep: int | None = Field(None, ge=1)
    #: Hours; fractions are accepted (S3 Tables takes whole hours only).
    maxSnapshotAgeHours: int | float | None = Field(None, gt=0)


class SnapshotManagementSettingsValue(Model):
    icebergSnapshotManagement: SnapshotManagementSettings = SnapshotManagementSettings()


class SnapshotManagementConfig(Model):
    status: Literal["enabled", "disabled"] = "enabled"
    settings: SnapshotManagementSettingsValue = SnapshotManagementSettingsValue()


class UnreferencedFileRemovalSettings(Model):
    unreferencedDays: int | None = Field(None, ge=1)
    nonCurrentDays: int | None = Field(None, ge=1)


class UnreferencedFileRemovalSettingsValue(Model):
    icebergUnreferencedFileRemoval: UnreferencedFileRemovalSettings = UnreferencedFileRemovalSettings()


class UnreferencedFileRemovalConfig(Model):
    status: Literal["enabled", "disabled"] = "enabled"
    settings: UnreferencedFileRemovalSettingsValue = UnreferencedFileRemovalSettingsValue()


class TableConfig(Model):
    icebergCompaction: CompactionConfig = CompactionConfig()
    icebergSnapshotManagement: SnapshotManagementConfig = SnapshotManagementConfig()


class WarehouseConfig(Model):
    icebergUnreferencedFileRemoval: UnreferencedFileRemovalConfig = UnreferencedFileRemovalConfig()


#: The body of ``PUT .../maintenance/{type}``, per type, as in S3 Tables: ``{"value": {...}}``.
CONFIG_MODELS: dict[JobType, type[Model]] = {
    "icebergCompaction": CompactionConfig,
    "icebergSnapshotManagement": SnapshotManagementConfig,
    "icebergUnreferencedFileRemoval": UnreferencedFileRemovalConfig,
}


def is_enabled(job: JobType, table: TableConfig, warehouse: WarehouseConfig) -> bool:
    return getattr(table if job in TABLE_JOB_TYPES else warehouse, job).status == "enabled"


@dataclass(frozen=True)
class ExpiryPolicy:
    min_snapshots_to_keep: int
    max_snapshot_age_ms: int


def expiry_policy(settings: SnapshotManagementSettings, properties: Properties) -> ExpiryPolicy:
    """The maintenance configuration if set, else Iceberg's ``history.expire.*`` table properties, else defaults."""
    min_keep = settings.minSnapshotsToKeep or property_as_int(
        properties, TableProperties.MIN_SNAPSHOTS_TO_KEEP, TableProperties.MIN_SNAPSHOTS_TO_KEEP_DEFAULT
    )
    if settings.maxSnapshotAgeHours is not None:
        max_age_ms = int(settings.maxSnapshotAgeHours * _MS_PER_HOUR)
    else:
        max_age_ms = property_as_int(properties, TableProperties.MAX_SNAPSHOT_AGE_MS, TableProperties.MAX_SNAPSHOT_AGE_MS_DEFAULT)
    return ExpiryPolicy(int(min_keep), int(max_age_ms))


def plan_options(settings: CompactionSettings) -> PlanOptions:
    """The compaction planner's options; unset fields fall to the table's properties, then the defaults."""
    size = settings.targetFileSizeMB * MIB if settings.targetFileSizeMB is not None else None
    return PlanOptions(strategy=settings.strategy or DEFAULT_STRATEGY, target_file_size=size)


def effective_table_config(config: TableConfig, properties: Properties) -> TableConfig:
    """The configuration with every unset field resolved as the jobs will resolve it."""
    options = plan_options(config.icebergCompaction.settings.icebergCompaction)
    snapshots = config.icebergSnapshotManagement.settings.icebergSnapshotManagement
    policy = expiry_policy(snapshots, properties)
    hours = policy.max_snapshot_age_ms / _MS_PER_HOUR
    return TableConfig(
        icebergCompaction=CompactionConfig(
            status=config.icebergCompaction.status,
            settings=CompactionSettingsValue(
                # Not validated: a table property may legitimately lie outside S3 Tables' 64-512 MB.
                icebergCompaction=CompactionSettings.model_construct(
                    targetFileSizeMB=target_file_size(properties, options) // MIB,
                    strategy=options.strategy,
                )
            ),
        ),
        icebergSnapshotManagement=SnapshotManagementConfig(
            status=config.icebergSnapshotManagement.status,
            settings=SnapshotManagementSettingsValue(
                icebergSnapshotManagement=SnapshotManagementSettings(
                    minSnapshotsToKeep=policy.min_snapshots_to_keep,
                    maxSnapshotAgeHours=int(hours) if hours.is_integer() else hours,
                )
            ),
        ),
    )


def effective_warehouse_config(config: WarehouseConfig) -> WarehouseConfig:
    settings = config.icebergUnreferencedFileRemoval.settings.icebergUnreferencedFileRemoval
    return WarehouseConfig(
        icebergUnreferencedFileRemoval=UnreferencedFileRemovalConfig(
            status=config.icebergUnreferencedFileRemoval.status,
            settings=UnreferencedFileRemovalSettingsValue(
                icebergUnreferencedFileRemoval=UnreferencedFileRemovalSettings(
                    unreferencedDays=settings.unreferencedDays or DEFAULT_UNREFERENCED_DAYS,
                    nonCurrentDays=settings.nonCurrentDays or DEFAULT_NONCURRENT_DAYS,
                )
            ),
        )
    )
