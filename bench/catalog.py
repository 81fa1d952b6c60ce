"""Catalog benchmarks: Iceshelf against the object-store floor and SeaweedFS's own Iceberg catalog.

One run starts one throwaway SeaweedFS (``weed mini`` with its Iceberg REST catalog enabled) on
loopback and, against it, side by side:

``iceshelf_s3``
    Iceshelf serving an ``s3://bucket/prefix`` warehouse on that SeaweedFS.
``object_store_floor``
    The floor any catalog on that store pays: a plain HTTP GET (PUT for commits) of a
    metadata-sized object, through a presigned URL with the same httpx client the catalog
    rows use, so client overhead is the same. ``object_store_floor_botocore`` is the same
    operation through a signing botocore client.
``seaweedfs_catalog``
    SeaweedFS's Iceberg REST catalog on the same process and disks. It serves S3 *table
    buckets*: the bucket is created with the S3 Tables API (``CreateTableBucket``, here through
    botocore's ``s3tables`` client at the S3 endpoint), the bucket name is the REST prefix
    (pyiceberg ``warehouse=<bucket>``; ``s3://<bucket>`` and the table bucket ARN work too), and
    requests are authenticated by OAuth2 client credentials (access key : secret key) at
    ``/v1/oauth/tokens`` (SigV4 works too, but pyiceberg's SigV4 needs boto3).
``iceshelf_local``
    Iceshelf on a local-filesystem warehouse, an extra row.

Benchmarks (each system's samples are taken in ``rounds`` turns, the systems alternating, so that
background load on a shared machine does not land on one system only):

``load_table_latency``
    One client, N sequential ``GET /v1/{prefix}/namespaces/bench/tables/load_t`` with httpx
    (a table with a few snapshots); p50/p99.
``load_table_throughput``
    The same GET from ``threads`` client threads, each with its own connection, for a fixed
    time; loads/s (client and servers share the machine's cores: this is a same-box figure).
``commit_latency``
    Sequential pyiceberg ``table.append`` of a one-row arrow table; p50/p99 of the whole append
    and of the catalog's ``commit_table`` REST call inside it (``rest_commit_*``). The floor row
    is a PUT of a metadata-sized object, the least a commit has to write. Every append adds a
    snapshot (and a manifest to the manifest list), so later appends are a little heavier: the
    same for every system.
"""

from __future__ import annotations

import time
import warnings
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench.harness import Close, MakeOp, Op, interleaved_latency, interleaved_throughput, summarize
from bench.report import Log, Results, envelope, figure_lines, loadavg_1m, note_lines, ratio
from bench.report import run_to_file as write_report
from bench.rows import bench_schema, one_row
from bench.servers.iceshelf import running_iceshelf
from bench.targets import (
    CatalogTarget,
    Floor,
    iceshelf_client_props,
    iceshelf_on_s3,
    iceshelf_target,
    seaweed_for_run,
    seaweedfs_catalog,
)

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

NAMESPACE = "bench"
LOAD_TABLE = "load_t"
COMMIT_TABLE = "commit_t"
SEAWEED_TABLE_BUCKET = "benchcat"
ICESHELF_BUCKET = "iceshelf-bench"
#: The catalogs measured, in the order they take turns (the floor's rows go first).
CATALOGS = ("iceshelf_s3", "seaweedfs_catalog", "iceshelf_local")


@dataclass
class BenchConfig:
    loads: int = 1000
    warmup: int = 50
    threads: int = 8
    throughput_seconds: float = 5.0
    commits: int = 100
    commit_warmup: int = 2
    snapshots: int = 5
    #: Systems take turns in this many rounds, so background load falls on all of them alike.
    rounds: int = 5

    @classmethod
    def quick(cls) -> BenchConfig:
        return cls(loads=30, warmup=3, threads=8, throughput_seconds=0.6, commits=4, commit_warmup=1, snapshots=2, rounds=2)


def prepare_tables(target: CatalogTarget, snapshots: int) -> dict[str, Any]:
    """``bench.load_t`` with ``snapshots`` one-row appends and an empty ``bench.commit_t``."""
    from pyiceberg.exceptions import NoSuchTableError

    catalog = target.catalog()
    catalog.create_namespace_if_not_exists(NAMESPACE)
    schema = bench_schema()
    for name in (LOAD_TABLE, COMMIT_TABLE):
        try:
            catalog.drop_table(f"{NAMESPACE}.{name}")
        except NoSuchTableError:
            pass
    table = catalog.create_table(f"{NAMESPACE}.{LOAD_TABLE}", schema)
    for i in range(snapshots):
        table.append(one_row(i))
    catalog.create_table(f"{NAMESPACE}.{COMMIT_TABLE}", schema)
    response = httpx.get(target.uri + target.table_path(NAMESPACE, LOAD_TABLE), headers=target.headers, timeout=30).raise_for_status()
    body = response.json()
    return {
        "metadata_location": body["metadata-location"],
        "snapshots": len(body["metadata"].get("snapshots", [])),
        "load_response_bytes": len(response.content),
    }


def load_table_op(target: CatalogTarget) -> tuple[Op, Close]:
    """A plain httpx GET of the loadTable endpoint, on one kept-alive connection."""
    path = target.table_path(NAMESPACE, LOAD_TABLE)
    client = httpx.Client(base_url=target.uri, headers=target.headers, timeout=30)

    def op() -> None:
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")

    return op, client.close


class CommitSeries:
    """One-row pyiceberg appends to ``bench.commit_t``, timing the catalog REST call inside each."""

    def __init__(self, target: CatalogTarget) -> None:
        self.catalog: Catalog = target.catalog()
        self.table: Table = self.catalog.load_table(f"{NAMESPACE}.{COMMIT_TABLE}")
        self.rest_calls: list[float] = []
        self.appends = 0
        commit_table = self.catalog.commit_table

        def timed_commit_table(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return commit_table(*args, **kwargs)
            finally:
                self.rest_calls.append(time.perf_counter() - start)

        self.catalog.commit_table = timed_commit_table  # Table._do_commit calls self.catalog.commit_table

    def op(self) -> None:
        self.table.append(one_row(self.appends))
        self.appends += 1

    def close(self) -> None:
        pass

    def check(self) -> int:
        snapshots = len(self.catalog.load_table(f"{NAMESPACE}.{COMMIT_TABLE}").metadata.snapshots)
        if snapshots != self.appends:
            raise RuntimeError(f"{snapshots} snapshots after {self.appends} appends")
        return snapshots


#: Each benchmark's ratios: name -> (numerator system, its figure, denominator system, its figure).
RATIOS: dict[str, dict[str, tuple[str, str, str, str]]] = {
    "load_table_latency": {
        "iceshelf_over_floor_p50": ("iceshelf_s3", "p50_ms", "object_store_floor", "p50_ms"),
        "iceshelf_over_floor_p99": ("iceshelf_s3", "p99_ms", "object_store_floor", "p99_ms"),
        "iceshelf_over_floor_botocore_p50": ("iceshelf_s3", "p50_ms", "object_store_floor_botocore", "p50_ms"),
        "iceshelf_over_seaweedfs_p50": ("iceshelf_s3", "p50_ms", "seaweedfs_catalog", "p50_ms"),
        "iceshelf_over_seaweedfs_p99": ("iceshelf_s3", "p99_ms", "seaweedfs_catalog", "p99_ms"),
        "iceshelf_local_over_iceshelf_s3_p50": ("iceshelf_local", "p50_ms", "iceshelf_s3", "p50_ms"),
    },
    "load_table_throughput": {
        "seaweedfs_over_iceshelf": ("seaweedfs_catalog", "ops_per_s", "iceshelf_s3", "ops_per_s"),
        "iceshelf_over_floor": ("iceshelf_s3", "ops_per_s", "object_store_floor", "ops_per_s"),
        "iceshelf_local_over_iceshelf_s3": ("iceshelf_local", "ops_per_s", "iceshelf_s3", "ops_per_s"),
    },
    "commit_latency": {
        "iceshelf_over_seaweedfs_p50": ("iceshelf_s3", "p50_ms", "seaweedfs_catalog", "p50_ms"),
        "iceshelf_over_seaweedfs_p99": ("iceshelf_s3", "p99_ms", "seaweedfs_catalog", "p99_ms"),
        "iceshelf_rest_over_seaweedfs_rest_p50": ("iceshelf_s3", "rest_commit_p50_ms", "seaweedfs_catalog", "rest_commit_p50_ms"),
        "iceshelf_rest_over_seaweedfs_rest_p99": ("iceshelf_s3", "rest_commit_p99_ms", "seaweedfs_catalog", "rest_commit_p99_ms"),
        "iceshelf_rest_over_floor_put_p50": ("iceshelf_s3", "rest_commit_p50_ms", "object_store_floor", "p50_ms"),
        "iceshelf_rest_over_floor_put_p99": ("iceshelf_s3", "rest_commit_p99_ms", "object_store_floor", "p99_ms"),
    },
}


def add_ratios(benchmarks: dict[str, dict]) -> None:
    """Each measured benchmark's ``RATIOS``, leaving out those with a system missing."""
    for bench, ratios in RATIOS.items():
        section = benchmarks.get(bench)
        if section is None:
            continue
        figures = {
            name: ratio(section.get(top, {}).get(top_key), section.get(bottom, {}).get(bottom_key))
            for name, (top, top_key, bottom, bottom_key) in ratios.items()
        }
        section["ratios"] = {name: value for name, value in figures.items() if value is not None}


def summary_table(report: dict[str, Any]) -> str:
    b = report["benchmarks"]
    lines = []
    header = f"{'benchmark':<26} {'system':<28} {'p50 ms':>9} {'p99 ms':>9} {'ops/s':>9}"
    lines += [header, "-" * len(header)]

    def row(bench: str, system: str, p50: str, p99: str, ops: str = "") -> None:
        lines.append(f"{bench:<26} {system:<28} {p50:>9} {p99:>9} {ops:>9}")

    for system, numbers in b.get("load_table_latency", {}).items():
        if system != "ratios":
            row("loadTable (1 client)", system, f"{numbers['p50_ms']:.2f}", f"{numbers['p99_ms']:.2f}")
    for system, numbers in b.get("load_table_throughput", {}).items():
        if system != "ratios":
            row(
                f"loadTable ({numbers['threads']} threads)",
                system,
                f"{numbers['p50_ms_under_load']:.2f}",
                f"{numbers['p99_ms_under_load']:.2f}",
                f"{numbers['ops_per_s']:.0f}",
            )
    for system, numbers in b.get("commit_latency", {}).items():
        if system == "ratios":
            continue
        label = "commit: PUT metadata obj" if system.startswith("object_store_floor") else "commit: pyiceberg append"
        row(label, system, f"{numbers['p50_ms']:.2f}", f"{numbers['p99_ms']:.2f}")
        if "rest_commit_p50_ms" in numbers:
            row("commit: REST call only", system, f"{numbers['rest_commit_p50_ms']:.2f}", f"{numbers['rest_commit_p99_ms']:.2f}")
    lines += ["", "ratios:", *figure_lines(b), *note_lines(report)]
    return "\n".join(lines)


def measure_load_table(cfg: BenchConfig, makers: dict[str, MakeOp], results: Results, log: Log) -> None:
    """``load_table_latency`` and ``load_table_throughput`` (the latter without the botocore floor)."""
    bench = "load_table_latency"
    log(f"loadTable latency ({cfg.loads} sequential GETs per system, {cfg.rounds} interleaved rounds)...")
    samples = interleaved_latency(makers, cfg.loads, cfg.warmup, cfg.rounds, results.on_error(bench))
    for name, durations in samples.items():
        results.record(bench, name, summarize(durations))

    bench = "load_table_throughput"
    log(f"loadTable throughput ({cfg.threads} threads, {cfg.throughput_seconds}s per system)...")
    makers = {name: make for name, make in makers.items() if name != "object_store_floor_botocore"}
    for name, numbers in interleaved_throughput(makers, cfg.threads, cfg.throughput_seconds, cfg.rounds, results.on_error(bench)).items():
        results.record(bench, name, numbers)


def measure_commits(cfg: BenchConfig, targets: dict[str, CatalogTarget], floor_makers: dict[str, MakeOp], results: Results) -> None:
    """``commit_latency``: the catalogs' appends (and their REST calls) beside the floor's PUTs."""
    bench = "commit_latency"
    series: dict[str, CommitSeries] = {}
    makers: dict[str, MakeOp] = dict(floor_makers)
    for name, target in targets.items():

        def make(name: str = name, target: CatalogTarget = target) -> tuple[Op, Close]:
            series[name] = CommitSeries(target)
            return series[name].op, series[name].close

        makers[name] = make
    samples = interleaved_latency(makers, cfg.commits, cfg.commit_warmup, cfg.rounds, results.on_error(bench))
    for name, durations in samples.items():
        numbers = summarize(durations)
        if name in series:
            try:
                numbers["snapshots_after"] = series[name].check()
            except Exception as exc:  # noqa: BLE001
                results.on_error(bench)(name, exc)
                continue
            rest = summarize(series[name].rest_calls[cfg.commit_warmup :])
            numbers.update({f"rest_commit_{k}": v for k, v in rest.items() if k != "samples"})
        results.record(bench, name, numbers)


def run(cfg: BenchConfig, workdir: Path, log: Log = print) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    results = Results(machine={"loadavg_1m_at_start": loadavg_1m()})
    with ExitStack() as stack:
        log("starting SeaweedFS (weed mini, Iceberg catalog on)...")
        seaweed, logs = seaweed_for_run(stack, workdir, ICESHELF_BUCKET)
        log("starting Iceshelf (S3 warehouse, local warehouse)...")
        iceshelf_s3 = iceshelf_on_s3(stack, seaweed, f"s3://{ICESHELF_BUCKET}/warehouse", logs)
        local_dir = workdir / "local-warehouse"
        local_dir.mkdir(parents=True, exist_ok=True)
        iceshelf_local = stack.enter_context(running_iceshelf(str(local_dir), logs))

        targets: dict[str, CatalogTarget] = {
            "iceshelf_s3": iceshelf_target("iceshelf_s3", iceshelf_s3.url, iceshelf_client_props(seaweed)),
            "iceshelf_local": iceshelf_target("iceshelf_local", iceshelf_local.url, {}),
        }
        seaweedfs = seaweedfs_catalog(seaweed, SEAWEED_TABLE_BUCKET, results)
        if seaweedfs is not None:
            targets["seaweedfs_catalog"] = seaweedfs

        log(f"creating tables ({cfg.snapshots} snapshots each)...")
        for name in list(targets):
            try:
                results.setup[name] = {**results.setup.get(name, {}), **prepare_tables(targets[name], cfg.snapshots)}
            except Exception as exc:  # noqa: BLE001
                results.failed(f"{name} table setup", exc)
                del targets[name]

        get_makers: dict[str, MakeOp] = {}
        put_makers: dict[str, MakeOp] = {}
        if "iceshelf_s3" in targets:
            floor = stack.enter_context(closing(Floor(seaweed, results.setup["iceshelf_s3"]["metadata_location"])))
            results.setup["object_store_floor"] = {"object_bytes": floor.size, "object": f"s3://{floor.get_bucket}/{floor.get_key}"}
            get_makers = {"object_store_floor": floor.http_get_op, "object_store_floor_botocore": floor.botocore_get_op}
            put_makers = {"object_store_floor": floor.http_put_op, "object_store_floor_botocore": floor.botocore_put_op}
        catalogs = {name: targets[name] for name in CATALOGS if name in targets}

        load_makers = {**get_makers, **{name: (lambda t=target: load_table_op(t)) for name, target in catalogs.items()}}
        measure_load_table(cfg, load_makers, results, log)
        log(f"commit latency ({cfg.commits} sequential one-row appends per system)...")
        measure_commits(cfg, catalogs, put_makers, results)

        results.note_exits({"iceshelf_s3 server": iceshelf_s3, "iceshelf_local server": iceshelf_local}, seaweed)

    add_ratios(results.benchmarks)
    return envelope(cfg, results)


def run_to_file(cfg: BenchConfig, out: Path, workdir: Path | None = None, keep: bool = False) -> dict[str, Any]:
    return write_report(run, cfg, out, "iceshelf-bench-", workdir, keep)
