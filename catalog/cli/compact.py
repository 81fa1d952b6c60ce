"""``iceshelf compact NAMESPACE.TABLE [--dry-run]``: compact one table now, with a progress bar
and a summary table at the end (``--dry-run``: the plan, nothing written).

It works on the warehouse directly, as any replica does: the same settings and flags as
``iceshelf serve`` (``--warehouse``/``ICESHELF_WAREHOUSE``, ``--s3-*``/``AWS_*``), it commits
through the same compare-and-swap, so it is safe next to running servers and writers, and it
holds the table's maintenance lease (a table the scheduler is working on is reported busy) and
records the run in the table's job history, as the scheduler does.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from iceshelf.catalog.cli.flags import add_warehouse_flags, settings_from
from iceshelf.catalog.cli.maintenance import parse_table
from iceshelf.compaction.jobs.compaction import CompactionRun, run_compaction
from iceshelf.compaction.jobs.leases import Leases
from iceshelf.compaction.jobs.records import JobRun, MaintenanceStore, run_timestamp
from iceshelf.compaction.jobs.scheduler import replica_id
from iceshelf.compaction.rewrite.compact import CompactionOptions, PlannedCompaction, plan_table
from iceshelf.compaction.rewrite.planner import MIB, REPARTITION, STRATEGIES, PlanOptions


def add_commands(commands: argparse._SubParsersAction) -> None:
    compact = commands.add_parser("compact", help="compact a table's small files now (or show the plan with --dry-run)")
    compact.add_argument("table", help="NAMESPACE.TABLE (a nested namespace is a.b.TABLE); in the first warehouse")
    compact.add_argument("--dry-run", action="store_true", help="show the plan; write nothing")
    add_warehouse_flags(compact)
    compact.add_argument("--strategy", choices=STRATEGIES, help="auto (default): sort if the table has a sort order")
    compact.add_argument("--zorder-columns", help="columns for --strategy z-order, comma-separated (default: the sort order's)")
    compact.add_argument("--target-file-size-mb", type=int, help="default: the table's write.target-file-size-bytes, else 512")
    compact.add_argument("--min-input-files", type=int, help="smallest group worth rewriting (default 5)")
    compact.add_argument("--memory-limit", help="DuckDB memory for the rewrite, e.g. 4GB (default 2GB; more spills to disk)")
    compact.set_defaults(run=run)


def options_from(args: argparse.Namespace) -> CompactionOptions:
    plan = PlanOptions()
    if args.strategy:
        plan = replace(plan, strategy=args.strategy)
    if args.target_file_size_mb:
        plan = replace(plan, target_file_size=args.target_file_size_mb * MIB)
    if args.min_input_files:
        plan = replace(plan, min_input_files=args.min_input_files)
    if args.zorder_columns:
        plan = replace(plan, zorder_columns=tuple(c.strip() for c in args.zorder_columns.split(",") if c.strip()))
    options = CompactionOptions(plan=plan)
    if args.memory_limit:
        options = replace(options, engine=replace(options.engine, memory_limit=args.memory_limit))
    return options


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    console = Console()
    warehouses = settings.open_warehouses()
    try:
        tables = warehouses.get(None)
        ident = parse_table(args.table)
        options = options_from(args)
        if args.dry_run:
            console.print(plan_table_view(plan_table(tables, ident, options)))
            return 0
        table = tables.load_table(ident)
        table_uuid = str(table.metadata.table_uuid)
        replica = f"cli-{replica_id()}"
        # The table's maintenance lease, as the scheduler takes it: no replica compacts it meanwhile.
        with Leases(tables.objects, replica, settings.maintenance.lease_s).hold(f"tables/{table_uuid}") as lease:
            if lease is None:
                console.print(f"{ident} is busy: another replica is maintaining it; try again later")
                return 1
            started = run_timestamp()
            with Progress(
                TextColumn(f"compacting {ident}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(), console=console, transient=True
            ) as progress:
                task = progress.add_task("rewrite", total=None)
                done = run_compaction(tables, ident, options, lambda done, total: progress.update(task, completed=done, total=total))
        finished = run_timestamp()
        run = JobRun(
            type="icebergCompaction", status="Successful", replica=replica, startedAt=started, finishedAt=finished, **done.counts()
        )
        MaintenanceStore(tables.objects).record_run(table_uuid, run)
        console.print(summary_view(done))
        return 0
    except Exception as err:  # a shell user wants the reason, not a traceback; the exit status says it failed
        console.print(f"[red]error:[/red] {err}")
        return 1
    finally:
        warehouses.close()


def plan_table_view(planned: PlannedCompaction) -> Table:
    plan = planned.plan
    view = Table(title=f"compaction plan for {planned.table.identifier}: {plan.strategy}, target {plan.target_file_size // MIB} MiB")
    for column in ("partition", "files", "MiB in", "files out (est.)", "why"):
        view.add_column(column, justify="left" if column in ("partition", "why") else "right")
    specs = planned.table.metadata.specs()
    schema = planned.table.metadata.schema()
    for group in plan.groups:
        entry = planned.files.data[group.files[0].path] if planned.files else None
        spec = specs[entry.data_file.spec_id] if entry else None
        partitioned = spec is not None and not spec.is_unpartitioned()
        where = spec.partition_to_path(entry.data_file.partition, schema) if partitioned else "(unpartitioned)"
        if group.partition == REPARTITION:
            where = f"older specs -> spec {planned.spec_id}"
        view.add_row(where, str(len(group.files)), f"{group.size / MIB:.2f}", str(plan.expected_outputs(group)), group.reason)
    if not plan.groups:
        view.caption = "nothing to compact"
    else:
        view.caption = f"{plan.files} files, {plan.size / MIB:.2f} MiB in {len(plan.groups)} groups (dry run: nothing written)"
    return view


def summary_view(done: CompactionRun) -> Table:
    result, manifests = done.data, done.manifests
    view = Table(title=f"compacted {result.table}" if result.snapshot_id else f"{result.table}: nothing to compact")
    view.add_column("")
    view.add_column("in", justify="right")
    view.add_column("out", justify="right")
    view.add_row("data files", str(result.files_in), str(result.files_out))
    view.add_row("MiB", f"{result.bytes_in / MIB:.2f}", f"{result.bytes_out / MIB:.2f}")
    view.add_row("rows", str(result.records_in), str(result.records_out))
    view.add_row("delete files removed", "", str(result.delete_files_removed))
    view.add_row("manifests", str(manifests.replaced), str(manifests.created))
    if result.snapshot_id:
        view.add_row("replace snapshot", "", str(result.snapshot_id))
    if manifests.snapshot_id:
        view.add_row("manifest snapshot", "", str(manifests.snapshot_id))
    view.caption = (
        f"{result.strategy}, {result.groups} groups"
        + (f", {result.conflicted_groups} dropped (concurrent changes)" if result.conflicted_groups else "")
        + f", {result.seconds:.1f}s"
    )
    return view
