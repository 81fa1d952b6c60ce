"""Maintenance configuration and job status, in S3 Tables' shape, stored in the warehouse itself.

The models mirror the S3 Tables API (``PutTableMaintenanceConfiguration``,
``GetTableMaintenanceJobStatus``, ``PutTableBucketMaintenanceConfiguration``) field for field, so a
user of S3 Tables reads them without a dictionary. Per table: ``icebergCompaction`` and
``icebergSnapshotManagement``; per warehouse: ``icebergUnreferencedFileRemoval``.

Everything lives in the warehouse's object store under ``_catalog/maintenance/`` (no database,
like the rest of the catalog), keyed by the table's UUID so a rename keeps its configuration and
a dropped-and-recreated table starts fresh. Every write is a compare-and-swap on the document's
etag, and each version carries a new ``revision`` so its bytes -- and so its S3 etag -- never
repeat.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pyiceberg.table import TableProperties
from pyiceberg.typedef import Properties
from pyiceberg.utils.properties import property_as_int

from iceshelf.compaction.rewrite.planner import MIB, PlanOptions, Strategy, target_file_size
from iceshelf.tables import clock
from iceshelf.tables.errors import CommitFailedException
from iceshelf.tables.objectstore import CREATE, ObjectAlreadyExists, ObjectNotFound, ObjectStore, PreconditionFailed, Update
from iceshelf.tables.retry import backoff

JobType = Literal["icebergCompaction", "icebergSnapshotManagement", "icebergUnreferencedFileRemoval"]
TABLE_JOB_TYPES: tuple[JobType, ...] = ("icebergCompaction", "icebergSnapshotManagement")
WAREHOUSE_JOB_TYPES: tuple[JobType, ...] = ("icebergUnreferencedFileRemoval",)
JOB_TYPES: tuple[JobType, ...] = TABLE_JOB_TYPES + WAREHOUSE_JOB_TYPES

#: S3 Tables' defaults (the target file size's, 512 MB, is the planner's).
DEFAULT_STRATEGY = "auto"
DEFAULT_UNREFERENCED_DAYS = 3
DEFAULT_NONCURRENT_DAYS = 10
#: Runs kept in a table's history (newest first); the last run of each type is kept regardless.
HISTORY_LENGTH = 50

_ROOT = "_catalog/maintenance/"
_MS_PER_HOUR = 3_600_000
_ATTEMPTS = 20


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- configuration: an unset field means "the table property, else the default" ----------------


class CompactionSettings(_Model):
    targetFileSizeMB: int | None = Field(None, ge=64, le=512)
    strategy: Strategy | None = None


class CompactionSettingsValue(_Model):
    icebergCompaction: CompactionSettings = CompactionSettings()


class CompactionConfig(_Model):
    status: Literal["enabled", "disabled"] = "enabled"
    settings: CompactionSettingsValue = CompactionSettingsValue()


class SnapshotManagementSettings(_Model):
    minSnapshotsToKeep: int | None = Field(None, ge=1)
    #: Hours; fractions are accepted (S3 Tables takes whole hours only).
    maxSnapshotAgeHours: int | float | None = Field(None, gt=0)


class SnapshotManagementSettingsValue(_Model):
    icebergSnapshotManagement: SnapshotManagementSettings = SnapshotManagementSettings()


class SnapshotManagementConfig(_Model):
    status: Literal["enabled", "disabled"] = "enabled"
    settings: SnapshotManagementSettingsValue = SnapshotManagementSettingsValue()


class UnreferencedFileRemovalSettings(_Model):
    unreferencedDays: int | None = Field(None, ge=1)
    nonCurrentDays: int | None = Field(None, ge=1)


class UnreferencedFileRemovalSettingsValue(_Model):
    icebergUnreferencedFileRemoval: UnreferencedFileRemovalSettings = UnreferencedFileRemovalSettings()


class UnreferencedFileRemovalConfig(_Model):
    status: Literal["enabled", "disabled"] = "enabled"
    settings: UnreferencedFileRemovalSettingsValue = UnreferencedFileRemovalSettingsValue()


class TableConfig(_Model):
    icebergCompaction: CompactionConfig = CompactionConfig()
    icebergSnapshotManagement: SnapshotManagementConfig = SnapshotManagementConfig()


class WarehouseConfig(_Model):
    icebergUnreferencedFileRemoval: UnreferencedFileRemovalConfig = UnreferencedFileRemovalConfig()


#: The body of ``PUT .../maintenance/{type}``, per type, as in S3 Tables: ``{"value": {...}}``.
CONFIG_MODELS: dict[JobType, type[_Model]] = {
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


# -- job status and history ---------------------------------------------------------------------


class JobRun(_Model):
    """One run of one job on one table.

    ``filesIn``/``bytesIn`` are the files the job consumed -- rewritten inputs, or expired and
    orphaned files it deleted; ``filesOut``/``bytesOut`` the files it wrote.
    """

    type: JobType
    status: Literal["Successful", "Failed"]
    replica: str
    startedAt: datetime
    finishedAt: datetime
    filesIn: int = 0
    bytesIn: int = 0
    filesOut: int = 0
    bytesOut: int = 0
    failureMessage: str | None = None
    detail: dict[str, int | str | bool | None] = {}


def run_timestamp() -> datetime:
    """Now, as a run's ``startedAt``/``finishedAt`` (UTC, from the protocols' clock seam)."""
    return datetime.fromtimestamp(clock.now_ms() / 1000, timezone.utc)


class JobStatus(_Model):
    status: Literal["Not_Yet_Run", "Successful", "Failed", "Disabled"]
    lastRunTimestamp: datetime | None = None
    failureMessage: str | None = None


class TableState(_Model):
    last: dict[JobType, JobRun] = {}
    history: list[JobRun] = []

    def with_run(self, run: JobRun) -> "TableState":
        return TableState(last={**self.last, run.type: run}, history=[run, *self.history][:HISTORY_LENGTH])

    def status(self, job: JobType, enabled: bool) -> JobStatus:
        last = self.last.get(job)
        if not enabled:
            return JobStatus(status="Disabled", lastRunTimestamp=last and last.finishedAt)
        if last is None:
            return JobStatus(status="Not_Yet_Run")
        return JobStatus(status=last.status, lastRunTimestamp=last.finishedAt, failureMessage=last.failureMessage)


class NoncurrentFiles(_Model):
    """Orphans marked noncurrent (key -> when, in ms); each is deleted ``nonCurrentDays`` after its mark."""

    marked: dict[str, int] = {}


# -- storage ------------------------------------------------------------------------------------

M = TypeVar("M", bound=_Model)


class MaintenanceStore:
    """Reads and compare-and-swaps the maintenance documents of one warehouse."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def warehouse_config(self) -> WarehouseConfig:
        return self._read(f"{_ROOT}warehouse.json", WarehouseConfig)[0]

    def put_warehouse_config(self, job: JobType, value: _Model) -> WarehouseConfig:
        return self._update(f"{_ROOT}warehouse.json", WarehouseConfig, lambda c: c.model_copy(update={job: value}))

    def table_config(self, table_uuid: str) -> TableConfig:
        return self._read(self._table_key(table_uuid, "config"), TableConfig)[0]

    def put_table_config(self, table_uuid: str, job: JobType, value: _Model) -> TableConfig:
        return self._update(self._table_key(table_uuid, "config"), TableConfig, lambda c: c.model_copy(update={job: value}))

    def table_state(self, table_uuid: str) -> TableState:
        return self._read(self._table_key(table_uuid, "state"), TableState)[0]

    def record_run(self, table_uuid: str, run: JobRun) -> TableState:
        return self._update(self._table_key(table_uuid, "state"), TableState, lambda s: s.with_run(run))

    def noncurrent(self, table_uuid: str) -> NoncurrentFiles:
        return self._read(self._table_key(table_uuid, "noncurrent"), NoncurrentFiles)[0]

    def put_noncurrent(self, table_uuid: str, marks: NoncurrentFiles) -> NoncurrentFiles:
        return self._update(self._table_key(table_uuid, "noncurrent"), NoncurrentFiles, lambda _: marks)

    @staticmethod
    def _table_key(table_uuid: str, document: str) -> str:
        return f"{_ROOT}tables/{table_uuid}/{document}.json"

    def _read(self, key: str, model: type[M]) -> tuple[M, int, str | None]:
        """The document (defaults if absent), its revision and its etag (``None`` if absent)."""
        try:
            got = self.store.get(key)
        except ObjectNotFound:
            return model(), 0, None
        doc = json.loads(got.data)
        return model.model_validate(doc["value"]), doc["revision"], got.etag

    def _update(self, key: str, model: type[M], change: Callable[[M], M]) -> M:
        for attempt in range(_ATTEMPTS):
            current, revision, etag = self._read(key, model)
            new = change(current)
            data = json.dumps({"revision": revision + 1, "value": new.model_dump(mode="json", exclude_none=True)}).encode()
            try:
                self.store.put(key, data, CREATE if etag is None else Update(etag))
            except (PreconditionFailed, ObjectAlreadyExists):
                backoff(attempt)
                continue
            return new
        raise CommitFailedException(f"Too much contention updating {key}; retry later")
