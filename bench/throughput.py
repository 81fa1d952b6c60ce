"""Commit throughput: appends per second on ONE table with 1, 4 and 16 concurrent pyiceberg writers.

Every Iceberg catalog answers a concurrent append with 409 and leaves the client to reload and
retry, as the spec says, so success per attempt falls as writers are added; Iceshelf does too by
default. Opted in (``iceshelf.commit.rebase-appends=true``), it rebases a stale pure append on the
server instead (``tables/commit/rebase.py``), and either way it applies concurrent commits to a table
as one batch (``tables/commit/batching.py``). This measures both modes side by side, against
SeaweedFS's own Iceberg REST catalog on the same SeaweedFS, in the same run.

One throwaway SeaweedFS (``weed mini``, Iceberg catalog on) and, against it:

``iceshelf``
    One Iceshelf server on an ``s3://`` warehouse in that SeaweedFS, the spec's default mode:
    a stale append is a 409 that pyiceberg retries.
``iceshelf_rebase``
    The same server, on tables that opted in to the server-side rebase: the headline of the goals.
``seaweedfs_catalog``
    SeaweedFS's Iceberg REST catalog, a table bucket on the same SeaweedFS (set up by
    ``bench.targets``).
``iceshelf_2_replicas`` and ``iceshelf_2_replicas_rebase``
    Two Iceshelf servers on the same warehouse, writer *i* talking to replica *i mod 2*: group
    commit within a replica, the pointer's compare-and-swap between them; in each mode.

The mode is a property of each window's fresh table, so both modes run on the same servers, in
windows interleaved with each other's and the baseline's.

Writers: separate processes (``bench.writers``: the client is CPU-bound, and 16 pyiceberg threads
in one interpreter would measure its GIL), each with its own ``RestCatalog``, appending one-row
arrow tables with pyiceberg's DEFAULT settings (its commit retries on 409 included). A *failure*
is an append that raised after those retries. Each (system, writer count) gets ``seconds`` of
measured appending, in ``rounds`` windows that alternate with the other systems' (rotating who
goes first), every window on a fresh empty table so that all start alike. In a window the writers
append for ``ramp`` + ``seconds / rounds``; the rate counts the appends that completed after the
ramp and before the end (the ramp-up and the drain of in-flight appends each last about one
append latency and would penalise high writer counts). Failures and latencies count every append.

Figures per system and writer count: successful appends/s, failures, p50/p99 latency of a
successful append (the whole ``table.append``, retries included), REST commit calls and 409s per
successful append, and the mode (``spec_default`` or ``rebase_appends``). Then ``modes``: per
Iceshelf deployment and writer count, appends/s and failures in each mode and rebase over spec
default; ratios over seaweedfs per writer count; and the goals of the rebase mode: at the top
writer count >= 10x SeaweedFS's appends/s with 0 failures, and rising from the previous writer
count to the top one.

``python -m bench.throughput [--quick] [--out bench-results/throughput.json]`` runs it alone;
``python -m bench`` runs it after the others (``--skip-throughput`` to leave it out).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.harness import rotated, summarize
from bench.report import Log, Results, envelope, loadavg_1m, note_lines, print_report, ratio
from bench.report import run_to_file as write_report
from bench.rows import bench_schema
from bench.targets import (
    CatalogTarget,
    iceshelf_client_props,
    iceshelf_on_s3,
    iceshelf_target,
    seaweed_for_run,
    seaweedfs_catalog,
)
from bench.writers import AppendTask, Window, WriterPool

if TYPE_CHECKING:
    from botocore.client import BaseClient

NAMESPACE = "thrbench"
ICESHELF_BUCKET = "iceshelf-throughput"
SEAWEED_TABLE_BUCKET = "throughputcat"
HEADLINE, BASELINE, REPLICAS = "iceshelf", "seaweedfs_catalog", "iceshelf_2_replicas"
#: The same deployments on tables that opted in to the server-side rebase of stale appends.
HEADLINE_REBASE, REPLICAS_REBASE = f"{HEADLINE}_rebase", f"{REPLICAS}_rebase"
SPEC_DEFAULT, REBASE_APPENDS = "spec_default", "rebase_appends"
REBASE_PROPERTIES = {"iceshelf.commit.rebase-appends": "true"}
GOAL_RATIO = 10.0


@dataclass(frozen=True)
class System:
    """A catalog under test: its replicas, the properties of the tables it appends to, its mode."""

    targets: list[CatalogTarget]
    properties: dict[str, str] = field(default_factory=dict)
    mode: str | None = None  # Iceshelf's: SPEC_DEFAULT or REBASE_APPENDS


def iceshelf_modes(name: str, targets: list[CatalogTarget]) -> dict[str, System]:
    """One Iceshelf deployment in both modes: ``name`` (the spec's default) and ``name_rebase``."""
    return {name: System(targets, {}, SPEC_DEFAULT), f"{name}_rebase": System(targets, REBASE_PROPERTIES, REBASE_APPENDS)}


@dataclass
class ThroughputBenchConfig:
    writers: tuple[int, ...] = (1, 4, 16)
    #: Measured seconds of appending per system and writer count, split into ``rounds`` windows.
    seconds: float = 8.0
    rounds: int = 2
    #: Seconds at the start of each window before completions count (writers already appending).
    ramp: float = 1.0
    #: Also measure two Iceshelf replicas on one bucket (the optional row).
    replicas: bool = True

    @classmethod
    def quick(cls) -> ThroughputBenchConfig:
        return cls(writers=(1, 4), seconds=2.0, rounds=1, ramp=0.5)


class CpuProbe:
    """CPU seconds of the server processes, by role, over a window: where the machine's time went.

    Read from ``/proc/PID/stat`` (Linux; elsewhere the figures are left out).
    """

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}

    @staticmethod
    def _cpu(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def _sample(self) -> dict[str, float]:
        try:
            return {role: sum(self._cpu(pid) for pid in pids) for role, pids in self.pids.items()}
        except (OSError, ValueError, IndexError):
            return {}

    def start(self) -> None:
        self._start = self._sample()

    def used(self) -> dict[str, float]:
        end = self._sample()
        return {role: end[role] - self._start[role] for role in end if role in self._start}


@dataclass
class Cell:
    """One system at one writer count, summed over its windows."""

    writers: int
    mode: str | None = None
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    errors: list[str] = field(default_factory=list)
    commit_calls: int = 0
    conflicts: int = 0
    counted: int = 0  # successes that completed inside the measured part of a window
    seconds: float = 0.0  # measured seconds
    windows: int = 0
    snapshots_after: list[int] = field(default_factory=list)
    metadata_versions: list[int] = field(default_factory=list)
    rebased: list[int] = field(default_factory=list)
    commit_latencies: list[float] = field(default_factory=list)
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    def add(self, window: Window, ramp: float, measured: float, state: TableState, server_cpu: dict[str, float]) -> None:
        for role, seconds in {"writers": sum(r.cpu_seconds for r in window.results), **server_cpu}.items():
            self.cpu_seconds[role] = self.cpu_seconds.get(role, 0.0) + seconds
        for result in window.results:
            self.latencies += result.latencies
            self.commit_latencies += result.commit_latencies
            self.failures += result.failures
            self.errors += result.errors[: max(0, 3 - len(self.errors))]
            self.commit_calls += result.commit_calls
            self.conflicts += result.conflicts
        self.counted += window.completed_between(ramp, ramp + measured)
        self.seconds += measured
        self.windows += 1
        self.snapshots_after.append(state.snapshots)
        if state.metadata_versions is not None:
            self.metadata_versions.append(state.metadata_versions)
            self.rebased.append(state.rebased)

    def figures(self) -> dict[str, Any]:
        successes = len(self.latencies)
        out = {
            "writers": self.writers,
            **({"mode": self.mode} if self.mode else {}),
            "appends_per_s": round(self.counted / self.seconds, 3) if self.seconds else 0.0,
            "successes": successes,  # all of them, ramp and drain included
            "counted": self.counted,
            "failures": self.failures,
            "seconds": round(self.seconds, 3),
            "windows": self.windows,
            "commit_calls_per_append": round(self.commit_calls / successes, 3) if successes else None,
            "conflicts_409": self.conflicts,
            "snapshots_after": self.snapshots_after,
        }
        if self.metadata_versions and sum(self.metadata_versions):
            # Group commit at work: appends per metadata version written (one pointer swap each).
            out["appends_per_metadata_version"] = round(sum(self.snapshots_after) / sum(self.metadata_versions), 3)
            out["rebased_appends"] = sum(self.rebased)
        if successes:
            latency = summarize(self.latencies)
            out.update({"p50_ms": latency["p50_ms"], "p99_ms": latency["p99_ms"], "mean_ms": latency["mean_ms"]})
            rest = summarize(self.commit_latencies)
            out.update({"rest_commit_p50_ms": rest["p50_ms"], "rest_commit_p99_ms": rest["p99_ms"]})
            # Where the machine's time went, per successful append (the writers' own CPU, the servers').
            out["cpu_ms_per_append"] = {role: round(s * 1e3 / successes, 2) for role, s in self.cpu_seconds.items()}
        if self.errors:
            out["failure_samples"] = self.errors
        return out


# --------------------------------------------------------------------------- windows


def _fresh_table(target: CatalogTarget, name: str, properties: dict[str, str]) -> str:
    """An empty table for one window, so every window of every system starts alike (``properties``:
    the mode)."""
    from pyiceberg.exceptions import NoSuchTableError

    catalog = target.catalog()
    identifier = f"{NAMESPACE}.{name}"
    try:
        catalog.drop_table(identifier)
    except NoSuchTableError:
        pass
    catalog.create_table(identifier, bench_schema(), properties=properties)
    return identifier


@dataclass(frozen=True)
class TableState:
    """A window's table afterwards: its snapshots and, read from the bucket, how many metadata
    versions it took (the create's excluded) and how many appends the server rebased."""

    snapshots: int
    metadata_versions: int | None = None
    rebased: int | None = None


def table_state(target: CatalogTarget, identifier: str, s3: BaseClient | None) -> TableState:
    """``s3``: a botocore client of the store the table lives in, or ``None`` to skip the listing."""
    metadata = target.catalog().load_table(identifier).metadata
    if s3 is None or not metadata.location.startswith("s3://"):
        return TableState(len(metadata.snapshots))
    bucket, _, prefix = metadata.location.removeprefix("s3://").partition("/")
    names = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix.rstrip('/')}/metadata/"):
            names += [item["Key"].rsplit("/", 1)[-1] for item in page.get("Contents", [])]
    except Exception:  # noqa: BLE001 - a diagnostic only: the figures stand without it
        return TableState(len(metadata.snapshots))
    versions = sum(1 for n in names if n.endswith(".metadata.json")) - 1
    rebased = sum(1 for n in names if n.startswith("snap-") and "-rebased-" in n)
    return TableState(len(metadata.snapshots), versions, rebased)


def run_window(
    pool: WriterPool,
    system: System,
    table: str,
    writers: int,
    seconds: float | None,
    max_appends: int | None = None,
    probe: CpuProbe | None = None,
    s3: BaseClient | None = None,
) -> tuple[Window, TableState, dict[str, float]]:
    """``writers`` writers on a fresh ``table`` of ``system``, writer *i* through its replica *i mod n*:
    (window, the table afterwards, server CPU seconds used by role)."""
    replicas = system.targets
    identifier = _fresh_table(replicas[0], table, system.properties)
    tasks = [AppendTask(replicas[i % len(replicas)], identifier, i, seconds, max_appends) for i in range(writers)]
    window = pool.run(tasks, run_timeout=(seconds or 0) + 180, at_start=probe.start if probe else None)
    used = probe.used() if probe else {}
    return window, table_state(replicas[0], identifier, s3), used


def measure(
    pool: WriterPool,
    systems: dict[str, System],
    cfg: ThroughputBenchConfig,
    results: Results,
    log: Log,
    probe: CpuProbe | None = None,
    s3: BaseClient | None = None,
) -> dict[str, dict]:
    """Every (system, writer count) for ``cfg.seconds`` in ``cfg.rounds`` interleaved windows."""
    cells = {name: {n: Cell(n, system.mode) for n in cfg.writers} for name, system in systems.items()}
    measured = cfg.seconds / max(1, cfg.rounds)
    failed: set[str] = set()
    for r in range(max(1, cfg.rounds)):
        for k, writers in enumerate(cfg.writers):
            for name in rotated(list(systems), r + k):
                if name in failed:
                    continue
                log(f"  round {r + 1}/{cfg.rounds}: {name}, {writers} writers, {cfg.ramp:g}s + {measured:g}s")
                try:
                    window, state, cpu = run_window(
                        pool, systems[name], f"t_{name}_{writers}_{r}", writers, cfg.ramp + measured, probe=probe, s3=s3
                    )
                except Exception as exc:  # noqa: BLE001 - the other systems still run
                    results.on_error("appends")(name, exc)
                    failed.add(name)
                    continue
                cells[name][writers].add(window, cfg.ramp, measured, state, cpu)
    out = {}
    for name, by_writers in cells.items():
        if name in failed:
            continue
        out[name] = {str(n): cell.figures() for n, cell in by_writers.items()}
        for n, cell in by_writers.items():
            if sum(cell.snapshots_after) != len(cell.latencies):
                results.notes.append(
                    f"{name}/{n} writers: {sum(cell.snapshots_after)} snapshots for {len(cell.latencies)} successful appends"
                )
    return out


# --------------------------------------------------------------------------- ratios, goals, report


def add_modes(benchmark: dict[str, Any], writers: tuple[int, ...]) -> None:
    """Each Iceshelf deployment's two modes side by side, per writer count."""
    modes = {}
    for deployment in (HEADLINE, REPLICAS):
        spec, rebase = benchmark.get(deployment, {}), benchmark.get(f"{deployment}_rebase", {})
        if not spec and not rebase:
            continue
        per = {}
        for n in map(str, writers):
            rates = {SPEC_DEFAULT: spec.get(n, {}).get("appends_per_s"), REBASE_APPENDS: rebase.get(n, {}).get("appends_per_s")}
            failures = {SPEC_DEFAULT: spec.get(n, {}).get("failures"), REBASE_APPENDS: rebase.get(n, {}).get("failures")}
            per[n] = {"appends_per_s": rates, "failures": failures, "rebase_over_spec_default": ratio(rates[REBASE_APPENDS], rates[SPEC_DEFAULT])}
        modes[deployment] = per
    benchmark["modes"] = modes


def add_ratios(benchmark: dict[str, Any], writers: tuple[int, ...]) -> None:
    """Each Iceshelf system over seaweedfs per writer count, and the rebase mode's goals at the top count."""

    def rate(system: str, n: int) -> float | None:
        return benchmark.get(system, {}).get(str(n), {}).get("appends_per_s")

    ratios = {}
    for system in (HEADLINE, HEADLINE_REBASE, REPLICAS, REPLICAS_REBASE):
        per = {str(n): ratio(rate(system, n), rate(BASELINE, n)) for n in writers}
        if any(v is not None for v in per.values()):
            ratios[f"{system}_over_seaweedfs"] = per
    benchmark["ratios"] = ratios
    ordered = sorted(writers)
    top = ordered[-1]
    goals: dict[str, Any] = {"writers": top, "system": HEADLINE_REBASE}
    headline_top = benchmark.get(HEADLINE_REBASE, {}).get(str(top), {})
    over = ratio(rate(HEADLINE_REBASE, top), rate(BASELINE, top))
    if over is not None:
        goals.update({"iceshelf_over_seaweedfs": over, "at_least_10x": over >= GOAL_RATIO})
    if headline_top:
        goals.update({"iceshelf_failures": headline_top["failures"], "zero_failures": headline_top["failures"] == 0})
    if len(ordered) > 1:
        previous = ordered[-2]
        rising = ratio(rate(HEADLINE_REBASE, top), rate(HEADLINE_REBASE, previous))
        if rising is not None:
            goals.update({"rises_from": previous, f"iceshelf_{top}_over_{previous}": rising, "rising": rising > 1.0})
    benchmark["goals"] = goals


def summary_table(report: dict[str, Any]) -> str:
    benchmark = report["benchmarks"].get("appends", {})
    columns = ("writers", "appends/s", "fail", "p50 ms", "p99 ms", "rest p50", "calls/app", "app/ver")
    header = f"{'appends (1-row, one table)':<22}" + "".join(f"{c:>10}" for c in columns)
    lines = [header, "-" * len(header)]

    def cell(value: float | int | None, spec: str) -> str:
        return f"{'-' if value is None else format(value, spec):>10}"

    for system, by_writers in benchmark.items():
        if system in ("ratios", "goals", "modes"):
            continue
        for n, f in by_writers.items():
            lines.append(
                f"{system:<22}{n:>10}{cell(f['appends_per_s'], '.2f')}{cell(f['failures'], 'd')}{cell(f.get('p50_ms'), '.0f')}"
                f"{cell(f.get('p99_ms'), '.0f')}{cell(f.get('rest_commit_p50_ms'), '.0f')}"
                f"{cell(f.get('commit_calls_per_append'), '.2f')}{cell(f.get('appends_per_metadata_version'), '.2f')}"
            )
    for deployment, per in benchmark.get("modes", {}).items():
        lines.append(
            f"  {deployment} rebase over spec default: "
            + ", ".join(f"{n} writers {f['rebase_over_spec_default']}x" for n, f in per.items())
        )
    for name, per in benchmark.get("ratios", {}).items():
        lines.append(f"  {name}: " + ", ".join(f"{n} writers {v}x" for n, v in per.items()))
    lines.append(f"  goals: {benchmark.get('goals', {})}")
    lines += note_lines(report)
    return "\n".join(lines)


def run(cfg: ThroughputBenchConfig, workdir: Path, log: Log = print) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    results = Results(machine={"loadavg_1m_at_start": loadavg_1m()})
    with ExitStack() as stack:
        log("throughput bench: starting SeaweedFS (Iceberg catalog on) and Iceshelf...")
        seaweed, logs = seaweed_for_run(stack, workdir, ICESHELF_BUCKET)
        warehouse = f"s3://{ICESHELF_BUCKET}/warehouse"
        servers = [iceshelf_on_s3(stack, seaweed, warehouse, logs) for _ in range(2 if cfg.replicas else 1)]
        client = iceshelf_client_props(seaweed)
        replicas = [iceshelf_target(f"iceshelf-{i}", server.url, client) for i, server in enumerate(servers)]
        systems: dict[str, System] = iceshelf_modes(HEADLINE, replicas[:1])
        for name in systems:
            results.setup[name] = {"warehouse": warehouse, "servers": 1, "table_properties": systems[name].properties}
        seaweedfs = seaweedfs_catalog(seaweed, SEAWEED_TABLE_BUCKET, results)
        if seaweedfs is not None:
            systems[BASELINE] = System([seaweedfs])
        if cfg.replicas:
            for name, system in iceshelf_modes(REPLICAS, replicas).items():
                systems[name] = system
                results.setup[name] = {
                    "warehouse": warehouse,
                    "servers": 2,
                    "routing": "writer i -> replica i mod 2",
                    "table_properties": system.properties,
                }
        for name, system in list(systems.items()):
            try:
                system.targets[0].catalog().create_namespace_if_not_exists(NAMESPACE)
            except Exception as exc:  # noqa: BLE001
                results.failed(f"{name} namespace setup", exc)
                del systems[name]

        top = max(cfg.writers)
        log(f"throughput bench: starting {top} writer processes...")
        pool = stack.enter_context(WriterPool(top))
        log("throughput bench: warm-up (one append per writer per system)...")
        for name, system in systems.items():
            try:
                run_window(pool, system, f"warmup_{name}", top, None, max_appends=1)
            except Exception as exc:  # noqa: BLE001 - the window itself will report it
                log(f"  warm-up of {name} failed: {exc!r}"[:300])
        log(f"throughput bench: {cfg.writers} writers, {cfg.seconds:g}s per system and count in {cfg.rounds} rounds...")
        probe = CpuProbe({"iceshelf_servers": [s.process.pid for s in servers], "seaweedfs": [seaweed.pid]})
        s3 = stack.enter_context(closing(seaweed.client()))
        benchmark = measure(pool, systems, cfg, results, log, probe, s3)

        results.note_exits({f"iceshelf replica {i}": server for i, server in enumerate(servers)}, seaweed)

    add_modes(benchmark, cfg.writers)
    add_ratios(benchmark, cfg.writers)
    results.benchmarks["appends"] = benchmark
    results.machine["writer_processes"] = top
    return envelope(cfg, results)


def run_to_file(cfg: ThroughputBenchConfig, out: Path) -> dict[str, Any]:
    return write_report(run, cfg, out, "iceshelf-thrbench-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/throughput.json"))
    parser.add_argument("--quick", action="store_true", help="a smoke run, not a measurement")
    parser.add_argument("--writers", type=int, nargs="+", help="writer counts (default 1 4 16)")
    parser.add_argument("--seconds", type=float, help="seconds of appending per system and writer count")
    parser.add_argument("--rounds", type=int, help="interleaved windows per system and writer count")
    parser.add_argument("--no-replicas", action="store_true", help="leave out the two-replica row")
    args = parser.parse_args(argv)
    cfg = ThroughputBenchConfig.quick() if args.quick else ThroughputBenchConfig()
    if args.writers:
        cfg.writers = tuple(args.writers)
    cfg.seconds = args.seconds or cfg.seconds
    cfg.rounds = args.rounds or cfg.rounds
    cfg.replicas = cfg.replicas and not args.no_replicas
    print_report(run_to_file(cfg, args.out), args.out, summary_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
