"""The maintenance scheduler: inside ``iceshelf serve`` (a background thread) or alone (``iceshelf maintenance``).

Every pass walks each warehouse's tables and decides from metadata alone -- the pointer, the
cached metadata file, the table's maintenance configuration and state, at most one manifest
list -- which jobs are due. Only then does it take
the table's lease (``iceshelf.compaction.jobs.leases``), re-check under the lease (another replica may just
have done the work), run the due jobs and record each run in the table's maintenance state.
Tables are visited in a random order per pass, so replicas spread over the tables instead of
queueing behind each other on the same lease.

Jobs and when they are due:

* ``icebergCompaction``: enabled, the current snapshot changed since the last run, and its
  summary shows small data files (or its manifests are many and small);
* ``icebergSnapshotManagement``: enabled and the expiry policy lets some snapshot go;
* ``icebergUnreferencedFileRemoval``: enabled for the warehouse and not run on the table for a
  day -- listing the table's files is the one expensive check, and orphans are days old anyway.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from iceshelf.compaction.jobs.compaction import CompactionJob
from iceshelf.compaction.jobs.config import (
    JobType,
    TableConfig,
    WarehouseConfig,
    effective_warehouse_config,
    expiry_policy,
    is_enabled,
)
from iceshelf.compaction.jobs.expiry import expire_snapshots, snapshots_to_expire
from iceshelf.compaction.jobs.leases import Leases
from iceshelf.compaction.jobs.orphans import Noncurrent, remove_orphans
from iceshelf.compaction.jobs.records import JobRun, MaintenanceStore, TableState, run_timestamp
from iceshelf.compaction.settings import MaintenanceSettings
from iceshelf.tables import clock
from iceshelf.tables.errors import NoSuchTableError
from iceshelf.tables.names import Identifier
from iceshelf.tables.tablestore import LoadedTable, TableStore
from iceshelf.tables.warehouses import Warehouses

log = logging.getLogger("iceshelf.maintenance")

_DAY_MS = 86_400_000
#: How often a table's files are listed for orphans.
ORPHAN_SCAN_PERIOD_MS = _DAY_MS
_STOP_WAIT_S = 10.0


#: A run and the table it ran on.
TableRun = tuple[Identifier, JobRun]


def replica_id() -> str:
    """Names this process in leases and run history."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class TableView:
    """What the due-checks look at: the table, its configuration and its maintenance state."""

    table: LoadedTable
    config: TableConfig
    warehouse: WarehouseConfig
    state: TableState

    @property
    def uuid(self) -> str:
        return str(self.table.metadata.table_uuid)


class WarehouseMaintenance:
    """One replica's maintenance of one warehouse."""

    def __init__(self, tables: TableStore, replica: str, lease_s: float) -> None:
        self.tables = tables
        self.replica = replica
        self.documents = MaintenanceStore(tables.objects)
        self.leases = Leases(tables.objects, replica, lease_s)
        self.compaction = CompactionJob(tables)

    def run_pass(self, stop: threading.Event | None = None) -> list[TableRun]:
        identifiers = self.tables.all_identifiers()
        random.shuffle(identifiers)
        warehouse = effective_warehouse_config(self.documents.warehouse_config())
        runs: list[TableRun] = []
        for ident in identifiers:
            if stop is not None and stop.is_set():
                break
            try:
                runs += [(ident, run) for run in self.maintain(ident, warehouse)]
            except NoSuchTableError:
                continue
            except Exception:
                log.exception("maintenance of %s failed", ident)
        return runs

    def maintain(self, ident: Identifier, warehouse: WarehouseConfig) -> list[JobRun]:
        """Run the jobs due on one table, under its lease; the runs done (none if another replica holds it)."""
        view = self._view(ident, warehouse)
        if not self.due(view, clock.now_ms()):
            return []
        with self.leases.hold(f"tables/{view.uuid}") as lease:
            if lease is None:
                return []
            view = self._view(ident, warehouse)
            runs = []
            for job in self.due(view, clock.now_ms()):
                run = self.run_job(job, view)
                self.documents.record_run(view.uuid, run)
                runs.append(run)
            return runs

    def _view(self, ident: Identifier, warehouse: WarehouseConfig) -> TableView:
        table = self.tables.load_table(ident)
        table_uuid = str(table.metadata.table_uuid)
        return TableView(table, self.documents.table_config(table_uuid), warehouse, self.documents.table_state(table_uuid))

    def due(self, view: TableView, now_ms: int) -> list[JobType]:
        metadata = view.table.metadata
        jobs: list[JobType] = []
        if is_enabled("icebergCompaction", view.config, view.warehouse) and self.compaction.due(
            metadata, view.config.icebergCompaction, view.state.last.get("icebergCompaction")
        ):
            jobs.append("icebergCompaction")
        snapshots = view.config.icebergSnapshotManagement
        if is_enabled("icebergSnapshotManagement", view.config, view.warehouse) and snapshots_to_expire(
            metadata, expiry_policy(snapshots.settings.icebergSnapshotManagement, metadata.properties), now_ms
        ):
            jobs.append("icebergSnapshotManagement")
        last_scan = view.state.last.get("icebergUnreferencedFileRemoval")
        if is_enabled("icebergUnreferencedFileRemoval", view.config, view.warehouse) and (
            last_scan is None or _ms(last_scan.finishedAt) <= now_ms - ORPHAN_SCAN_PERIOD_MS
        ):
            jobs.append("icebergUnreferencedFileRemoval")
        return jobs

    def run_job(self, job: JobType, view: TableView) -> JobRun:
        started = run_timestamp()
        try:
            counts = _JOBS[job](self, view)
        except Exception as err:
            log.warning("%s of %s failed: %s", job, view.table.identifier, err, exc_info=True)
            return JobRun(
                type=job,
                status="Failed",
                replica=self.replica,
                startedAt=started,
                finishedAt=run_timestamp(),
                failureMessage=str(err)[:2000],
            )
        return JobRun(
            type=job, status="Successful", replica=self.replica, startedAt=started, finishedAt=run_timestamp(), **counts
        )

    # -- the jobs: each returns the counts of its JobRun ---------------------------------------

    def _compaction(self, view: TableView) -> dict:
        return self.compaction.run(view.table.identifier, view.config.icebergCompaction)

    def _snapshot_management(self, view: TableView) -> dict:
        settings = view.config.icebergSnapshotManagement.settings.icebergSnapshotManagement
        return expire_snapshots(self.tables, view.table.identifier, settings).counts()

    def _unreferenced_file_removal(self, view: TableView) -> dict:
        settings = view.warehouse.icebergUnreferencedFileRemoval.settings.icebergUnreferencedFileRemoval
        now = clock.now_ms()
        noncurrent = Noncurrent(self.documents, settings.nonCurrentDays * _DAY_MS, now)
        return remove_orphans(self.tables, view.table.identifier, now - settings.unreferencedDays * _DAY_MS, noncurrent).counts()


_JOBS: dict[JobType, Callable[[WarehouseMaintenance, TableView], dict]] = {
    "icebergCompaction": WarehouseMaintenance._compaction,
    "icebergSnapshotManagement": WarehouseMaintenance._snapshot_management,
    "icebergUnreferencedFileRemoval": WarehouseMaintenance._unreferenced_file_removal,
}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class Scheduler:
    """Passes over every warehouse, one every ``interval_s``, in a daemon thread (or once, for the CLI)."""

    def __init__(self, warehouses: Warehouses, settings: MaintenanceSettings, replica: str | None = None) -> None:
        self.replica = replica or replica_id()
        self.settings = settings
        self.warehouses = [WarehouseMaintenance(t, self.replica, settings.lease_s) for t in warehouses.tables.values()]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> list[TableRun]:
        runs: list[TableRun] = []
        for warehouse in self.warehouses:
            if self._stop.is_set():
                break
            try:
                runs += warehouse.run_pass(self._stop)
            except Exception:
                log.exception("maintenance pass over warehouse %s failed", warehouse.tables.name)
        return runs

    def run_forever(self) -> None:
        log.info("maintenance scheduler %s started: a pass every %ss", self.replica, self.settings.interval_s)
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.settings.interval_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="iceshelf-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish after the table it is working on, and wait a little for it.

        A job still running after that ends with the process: a job is crash-safe (its commit is
        one compare-and-swap, its leftovers are orphans), and its lease expires for another replica.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_STOP_WAIT_S)
