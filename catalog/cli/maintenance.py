"""``iceshelf expire``, ``iceshelf remove-orphans`` and ``iceshelf maintenance``: run maintenance from a shell.

They work on the warehouse directly (no server needed) and take each table's lease like the
scheduler does, so they are safe to run next to serving replicas: a table another replica is
maintaining at that moment is reported as busy and skipped. Long work shows a progress bar; a
summary table ends every command. Runs (not dry runs) land in the table's job history too.
"""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import replace
from datetime import datetime, timezone
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from iceshelf.catalog.cli.flags import add_warehouse_flags, settings_from
from iceshelf.catalog.settings import Settings
from iceshelf.compaction.jobs.config import JobType, SnapshotManagementSettings, effective_warehouse_config
from iceshelf.compaction.jobs.expiry import expire_snapshots
from iceshelf.compaction.jobs.leases import Leases
from iceshelf.compaction.jobs.orphans import remove_orphans
from iceshelf.compaction.jobs.records import JobRun, MaintenanceStore, run_timestamp
from iceshelf.compaction.jobs.removal import OnProgress
from iceshelf.compaction.jobs.scheduler import Scheduler, replica_id
from iceshelf.tables import clock
from iceshelf.tables.errors import BadRequestError
from iceshelf.tables.names import Identifier, check_identifier
from iceshelf.tables.tablestore import LoadedTable, TableStore

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

#: One table's work: given the table and a progress callback, returns the row of the summary and
#: the run to record (``None`` for a dry run).
Work = Callable[[TableStore, LoadedTable, OnProgress], tuple[list[str], JobRun | None]]


def add_serve_flags(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--no-maintenance",
        dest="maintenance",
        action="store_false",
        default=None,
        help="do not run the maintenance scheduler in this server (env ICESHELF_MAINTENANCE=off)",
    )
    serve.add_argument(
        "--maintenance-interval",
        type=float,
        help="seconds between maintenance passes (env ICESHELF_MAINTENANCE_INTERVAL, default 300)",
    )


def with_serve_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    changes = {"enabled": args.maintenance, "interval_s": args.maintenance_interval}
    changes = {k: v for k, v in changes.items() if v is not None}
    return replace(settings, maintenance=replace(settings.maintenance, **changes)) if changes else settings


def add_commands(commands: argparse._SubParsersAction) -> None:
    """``maintenance``, ``expire`` and ``remove-orphans``."""
    maintenance = commands.add_parser("maintenance", help="run the maintenance scheduler alone, without serving")
    add_warehouse_flags(maintenance)
    maintenance.add_argument(
        "--interval", dest="maintenance_interval", type=float, help="seconds between passes (env ICESHELF_MAINTENANCE_INTERVAL)"
    )
    maintenance.add_argument("--once", action="store_true", help="one pass over every table, then a summary")
    maintenance.set_defaults(
        maintenance=None, run=lambda args: maintenance_command(with_serve_flags(settings_from(args), args), args.once)
    )

    expire = commands.add_parser("expire", help="expire old snapshots and delete the files only they reached")
    add_warehouse_flags(expire)
    expire.add_argument("table", nargs="?", help="NAMESPACE.TABLE (default: every table of the default warehouse)")
    expire.add_argument("--min-snapshots", type=int, help="minSnapshotsToKeep (default: the table's configuration)")
    expire.add_argument("--max-age-hours", type=float, help="maxSnapshotAgeHours (default: the table's configuration)")
    expire.add_argument("--dry-run", action="store_true", help="show what would be expired and deleted; change nothing")
    expire.set_defaults(
        run=lambda args: expire_command(settings_from(args), args.table, args.min_snapshots, args.max_age_hours, args.dry_run)
    )

    orphans = commands.add_parser("remove-orphans", help="delete files under a table's location that nothing references")
    add_warehouse_flags(orphans)
    orphans.add_argument("table", nargs="?", help="NAMESPACE.TABLE (default: every table of the default warehouse)")
    orphans.add_argument(
        "--older-than",
        help="only files older than this: 3d, 12h, 30m, or an ISO-8601 time (default: the warehouse's unreferencedDays)",
    )
    orphans.add_argument("--dry-run", action="store_true", help="show what would be deleted; delete nothing")
    orphans.set_defaults(run=lambda args: remove_orphans_command(settings_from(args), args.table, args.older_than, args.dry_run))


def parse_table(text: str) -> Identifier:
    """``NAMESPACE[.LEVEL...].TABLE`` as the other Iceberg CLIs write it."""
    *namespace, name = text.split(".")
    if not namespace:
        raise BadRequestError(f"{text!r} is not NAMESPACE.TABLE")
    return check_identifier(tuple(namespace), name)


def parse_cutoff(text: str, now_ms: int) -> int:
    """``--older-than``: a duration back from now (``3d``, ``12h``, ``30m``, ``0s``) or an ISO-8601 instant."""
    if match := _DURATION.fullmatch(text.strip()):
        return now_ms - int(float(match.group(1)) * _UNIT_MS[match.group(2)])
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    exponent = min(3, (n.bit_length() - 1) // 10)
    return f"{n / 1024**exponent:.1f} {('KiB', 'MiB', 'GiB')[exponent - 1]}"


def _run(job: JobType, started: datetime, counts: dict) -> JobRun:
    return JobRun(
        type=job, status="Successful", replica=f"cli-{replica_id()}", startedAt=started, finishedAt=run_timestamp(), **counts
    )


def _note(message: str, columns: list[str]) -> list[str]:
    return [message, *[""] * (len(columns) - 1)]


def _for_each_table(settings: Settings, table: str | None, columns: list[str], work: Work, console: Console) -> int:
    """Run ``work`` on one table or on every table of the default warehouse, each under its lease."""
    warehouses = settings.open_warehouses()
    try:
        tables = warehouses.get(None)
        idents = [parse_table(table)] if table else tables.all_identifiers()
        leases = Leases(tables.objects, f"cli-{replica_id()}", settings.maintenance.lease_s)
        documents = MaintenanceStore(tables.objects)
        summary = Table(*["table", *columns])
        failed = 0
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            overall = progress.add_task("tables", total=len(idents))
            for ident in idents:
                task = progress.add_task(f"{ident}: deleting", total=None)
                try:
                    loaded = tables.load_table(ident)
                    table_uuid = str(loaded.metadata.table_uuid)
                    with leases.hold(f"tables/{table_uuid}") as lease:
                        if lease is None:
                            summary.add_row(str(ident), *_note("busy: another replica holds its lease", columns))
                            continue
                        row, run = work(
                            tables, loaded, lambda done, total, t=task: progress.update(t, completed=done, total=total)
                        )
                    if run is not None:
                        documents.record_run(table_uuid, run)
                    summary.add_row(str(ident), *row)
                except Exception as err:
                    failed += 1
                    summary.add_row(str(ident), *_note(f"[red]failed: {err}[/red]", columns))
                finally:
                    progress.remove_task(task)
                    progress.advance(overall)
        console.print(summary)
        return 1 if failed else 0
    finally:
        warehouses.close()


def expire_command(
    settings: Settings,
    table: str | None,
    min_snapshots: int | None = None,
    max_age_hours: float | None = None,
    dry_run: bool = False,
    console: Console | None = None,
) -> int:
    """Expire snapshots by the flags, else by each table's maintenance configuration and properties."""

    def work(tables: TableStore, table: LoadedTable, progress: OnProgress) -> tuple[list[str], JobRun | None]:
        started = run_timestamp()
        stored = MaintenanceStore(tables.objects).table_config(str(table.metadata.table_uuid))
        configured = stored.icebergSnapshotManagement.settings.icebergSnapshotManagement
        overrides = {"minSnapshotsToKeep": min_snapshots, "maxSnapshotAgeHours": max_age_hours}
        chosen = SnapshotManagementSettings(
            **{**configured.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
        )
        result = expire_snapshots(tables, table.identifier, chosen, dry_run=dry_run, progress=progress)
        row = [str(len(result.expired_snapshot_ids)), str(result.removed.files), _size(result.removed.bytes)]
        return row, None if dry_run else _run("icebergSnapshotManagement", started, result.counts())

    verb = "would delete" if dry_run else "deleted"
    return _for_each_table(settings, table, ["expired snapshots", f"files {verb}", f"bytes {verb}"], work, console or Console())


def remove_orphans_command(
    settings: Settings,
    table: str | None,
    older_than: str | None = None,
    dry_run: bool = False,
    console: Console | None = None,
) -> int:
    """Delete unreferenced files older than ``older_than`` (default: the warehouse's ``unreferencedDays``) at once."""
    now = clock.now_ms()

    def work(tables: TableStore, table: LoadedTable, progress: OnProgress) -> tuple[list[str], JobRun | None]:
        started = run_timestamp()
        cutoff = parse_cutoff(older_than or f"{_unreferenced_days(tables)}d", now)
        result = remove_orphans(tables, table.identifier, cutoff, dry_run=dry_run, progress=progress)
        row = [str(result.orphans), str(result.removed.files), _size(result.removed.bytes)]
        return row, None if dry_run else _run("icebergUnreferencedFileRemoval", started, result.counts())

    verb = "would delete" if dry_run else "deleted"
    return _for_each_table(settings, table, ["orphans", f"files {verb}", f"bytes {verb}"], work, console or Console())


def _unreferenced_days(tables: TableStore) -> int:
    config = effective_warehouse_config(MaintenanceStore(tables.objects).warehouse_config())
    return config.icebergUnreferencedFileRemoval.settings.icebergUnreferencedFileRemoval.unreferencedDays


def maintenance_command(settings: Settings, once: bool = False, console: Console | None = None) -> int:
    """The scheduler alone, without serving: forever, or one pass with a summary of its runs."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    warehouses = settings.open_warehouses()
    scheduler = Scheduler(warehouses, settings.maintenance)
    try:
        if not once:
            scheduler.run_forever()
            return 0
        runs = scheduler.run_once()
    finally:
        warehouses.close()
    summary = Table(
        "table",
        "job",
        "status",
        "files in",
        "bytes in",
        "files out",
        "bytes out",
        "detail",
        caption=None if runs else "nothing was due",
    )
    for ident, run in runs:
        summary.add_row(
            str(ident),
            run.type,
            run.status,
            str(run.filesIn),
            _size(run.bytesIn),
            str(run.filesOut),
            _size(run.bytesOut),
            run.failureMessage or ", ".join(f"{k}={v}" for k, v in run.detail.items()),
        )
    (console or Console()).print(summary)
    return 1 if any(run.status == "Failed" for _, run in runs) else 0
