"""Maintenance documents kept in the warehouse: configurations, job status and run history, noncurrent marks.

Everything lives in the warehouse's object store under ``_catalog/maintenance/`` (no database,
like the rest of the catalog), keyed by the table's UUID so a rename keeps its configuration and
a dropped-and-recreated table starts fresh. Every write is a compare-and-swap on the document's
etag, and each version carries a new ``revision`` so its bytes -- and so its S3 etag -- never
repeat.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Callable, Literal, TypeVar

from iceshelf.compaction.jobs.config import JobType, Model, TableConfig, WarehouseConfig
from iceshelf.tables import clock
from iceshelf.tables.errors import CommitFailedException
from iceshelf.tables.objectstore import CREATE, ObjectAlreadyExists, ObjectNotFound, ObjectStore, PreconditionFailed, Update
from iceshelf.tables.retry import backoff

#: Runs kept in a table's history (newest first); the last run of each type is kept regardless.
HISTORY_LENGTH = 50

_ROOT = "_catalog/maintenance/"
_ATTEMPTS = 20


# -- job status and history ---------------------------------------------------------------------


class JobRun(Model):
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


class JobStatus(Model):
    status: Literal["Not_Yet_Run", "Successful", "Failed", "Disabled"]
    lastRunTimestamp: datetime | None = None
    failureMessage: str | None = None


class TableState(Model):
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


class NoncurrentFiles(Model):
    """Orphans marked noncurrent (key -> when, in ms); each is deleted ``nonCurrentDays`` after its mark."""

    marked: dict[str, int] = {}


# -- storage ------------------------------------------------------------------------------------

M = TypeVar("M", bound=Model)


class MaintenanceStore:
    """Reads and compare-and-swaps the maintenance documents of one warehouse."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def warehouse_config(self) -> WarehouseConfig:
        return self._read(f"{_ROOT}warehouse.json", WarehouseConfig)[0]

    def put_warehouse_config(self, job: JobType, value: Model) -> WarehouseConfig:
        return self._update(f"{_ROOT}warehouse.json", WarehouseConfig, lambda c: c.model_copy(update={job: value}))

    def table_config(self, table_uuid: str) -> TableConfig:
        return self._read(self._table_key(table_uuid, "config"), TableConfig)[0]

    def put_table_config(self, table_uuid: str, job: JobType, value: Model) -> TableConfig:
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
