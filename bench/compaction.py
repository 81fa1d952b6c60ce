"""Compaction benchmarks, each figure beside its baseline in the same run, on SeaweedFS S3 and a local disk.

``throughput`` -- MB/s of input, rewriting a table of ``input_files`` small files (``input_mib`` in all):
    ``iceshelf_compact``   ``compact_table`` on the table: plan, rewrite, commit a ``replace`` snapshot.
    ``duckdb_copy``        (baseline) the raw statement over the very same files:
                           ``COPY (SELECT * FROM read_parquet([...])) TO '...parquet'`` in one DuckDB
                           connection with the same threads, memory limit and codec (zstd, the
                           table's), timing the statement alone.
    Ratio ``compact_over_copy`` (MB/s over MB/s); goal >= 0.8.
    Every compaction sample needs the small files again: one zero-copy clone (``bench/clone.py``)
    of the table per sample.

``group_by`` -- ``SELECT k, count(*), sum(v) FROM t GROUP BY k`` through DuckDB's ``ATTACH`` of
    the catalog, on a table of ``small_files`` files of ~16 KiB:
    ``before``  the table as written;
    ``after``   a clone of it, compacted once.
    Ratio ``before_over_after_p50``; goal >= 15.
    ``after_job`` a clone compacted as the ``icebergCompaction`` job and ``iceshelf compact`` do
                it: the same compaction, then the manifest step, which drops the manifest
                recording the compaction's removals (on a table nobody writes to after, nothing
                else would).
    Ratio ``before_over_after_job_p50``.
    Where the time goes: ``before_files`` and ``after_files`` run the same GROUP BY straight over
    the tables' data files (``read_parquet``: no catalog, no Iceberg metadata), so ``after`` minus
    ``after_files`` is what the catalog round trip and the metadata reads cost.

Systems take turns in ``rounds`` rounds (rotating who goes first): ``bench.harness``.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from bench.clone import shallow_clone
from bench.harness import Close, Op, interleaved_latency, summarize
from bench.report import Log, Results, envelope, figure_lines, note_lines, print_report, ratio
from bench.report import run_to_file as write_report
from bench.servers.iceshelf import running_iceshelf
from bench.targets import duckdb_connection, iceshelf_client_props, iceshelf_on_s3, seaweed_for_run
from iceshelf.tables.names import Identifier
from iceshelf.tables.settings import S3Settings

if TYPE_CHECKING:
    from pyiceberg.catalog.rest import RestCatalog

    from iceshelf.tables.tablestore import TableStore

NAMESPACE = "compactbench"
BUCKET = "compaction-bench"
GROUP_BY = "SELECT k, count(*) AS n, sum(v) AS s FROM {table} GROUP BY k"
MIB = 1024 * 1024
#: On-disk bytes per row of ``_rows`` once written as Parquet (random doubles dominate); sizes the files.
_PARQUET_BYTES_PER_ROW = 12.5
_PAYLOAD_BYTES_PER_ROW = 20.0


@dataclass
class CompactionBenchConfig:
    input_mib: int = 256
    input_files: int = 256
    throughput_samples: int = 3
    small_files: int = 2000
    query_samples: int = 10
    warmup: int = 1
    rounds: int = 3
    warehouses: tuple[str, ...] = ("s3", "local")

    @classmethod
    def quick(cls) -> CompactionBenchConfig:
        return cls(input_mib=8, input_files=16, throughput_samples=2, small_files=100, query_samples=2, rounds=2)


@dataclass
class Warehouse:
    kind: str
    url: str
    location: str
    client: dict[str, str]
    s3: S3Settings | None

    def catalog(self) -> RestCatalog:
        from pyiceberg.catalog.rest import RestCatalog

        return RestCatalog(f"bench-{uuid.uuid4().hex[:6]}", uri=self.url, **self.client)

    def duckdb(self, attach: bool = True) -> duckdb.DuckDBPyConnection:
        """A DuckDB that reads this warehouse's store, with its catalog attached as ``lake`` if ``attach``."""
        return duckdb_connection(self.url if attach else None, self.s3)

    def tables(self) -> TableStore:
        from iceshelf.tables.objectstore import open_store
        from iceshelf.tables.tablestore import TableStore

        return TableStore("default", open_store(self.location, self.s3 or S3Settings()))


def _rows(count: int, seed: int, payload: bool) -> pa.Table:
    """Event-like rows; with ``payload`` also a wide column the benchmark query does not read."""
    extra = ", md5(range::VARCHAR) AS payload" if payload else ""
    con = duckdb.connect()
    try:
        con.execute(f"SELECT setseed({seed / 10})")
        sql = f"SELECT range AS id, 'key-' || (range % 97) AS k, random() AS v{extra} FROM range({count})"
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def write_table(wh: Warehouse, name: str, files: int, total_bytes: int, seed: int, payload: bool = False) -> dict[str, Any]:
    """A table of about ``files`` files: pyiceberg splits one append at a tiny target size, then the
    target property is removed so compaction aims at its default (512 MiB)."""
    catalog = wh.catalog()
    data = _rows(int(total_bytes / (_PARQUET_BYTES_PER_ROW + (_PAYLOAD_BYTES_PER_ROW if payload else 0))), seed, payload)
    target = max(1, data.nbytes // files)
    table = catalog.create_table(f"{NAMESPACE}.{name}", schema=data.schema, properties={"write.target-file-size-bytes": str(target)})
    table.append(data)
    with table.transaction() as tx:
        tx.remove_properties("write.target-file-size-bytes")
    table = catalog.load_table(f"{NAMESPACE}.{name}")
    written = [task.file for task in table.scan().plan_files()]
    return {
        "metadata_location": table.metadata_location,
        "files": [f.file_path for f in written],
        "bytes": sum(f.file_size_in_bytes for f in written),
        "rows": data.num_rows,
    }


def run_compaction_job(wh: Warehouse, name: str) -> None:
    """What the ``icebergCompaction`` job (and ``iceshelf compact``) does to a table: compact, then its manifest step."""
    from iceshelf.compaction.jobs.compaction import run_compaction
    from iceshelf.compaction.rewrite.compact import CompactionOptions

    tables = wh.tables()
    try:
        run_compaction(tables, Identifier((NAMESPACE,), name), CompactionOptions())
    finally:
        tables.objects.close()


def clone(wh: Warehouse, source: str, name: str) -> str:
    tables = wh.tables()
    try:
        shallow_clone(tables, Identifier((NAMESPACE,), source), Identifier((NAMESPACE,), name))
    finally:
        tables.objects.close()
    return name


def compact_op(wh: Warehouse, clones: list[str], report: list[dict[str, int]]) -> tuple[Op, Close]:
    from iceshelf.compaction.rewrite.compact import compact_table

    tables = wh.tables()

    def op() -> None:
        result = compact_table(tables, Identifier((NAMESPACE,), clones.pop()))
        if result.files_out == 0:
            raise RuntimeError("nothing was compacted")
        report.append({"files_in": result.files_in, "files_out": result.files_out, "bytes_out": result.bytes_out})

    return op, lambda: tables.objects.close()


def copy_op(wh: Warehouse, files: list[str], out_root: str, threads: int, memory_limit: str, codec: str = "zstd") -> tuple[Op, Close]:
    """The same bytes out as the compaction: the table's codec (Iceberg's default, zstd), not DuckDB's snappy."""
    con = wh.duckdb(attach=False)
    con.execute(f"SET threads = {threads}")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    paths = ", ".join(f"'{_duck_path(f)}'" for f in files)
    if not out_root.startswith("s3://"):
        Path(out_root).mkdir(parents=True, exist_ok=True)

    def op() -> None:
        target = f"{out_root.rstrip('/')}/copy-{uuid.uuid4().hex}.parquet"
        con.execute(f"COPY (SELECT * FROM read_parquet([{paths}])) TO '{target}' (FORMAT parquet, COMPRESSION {codec})")

    return op, con.close


def query_op(wh: Warehouse, table: str) -> tuple[Op, Close]:
    return _group_by_op(wh, f"lake.{NAMESPACE}.{table}", attach=True)


def files_op(wh: Warehouse, files: list[str]) -> tuple[Op, Close]:
    """The GROUP BY over the data files alone: what is left without the catalog and the metadata."""
    return _group_by_op(wh, f"read_parquet([{', '.join(repr(_duck_path(f)) for f in files)}])", attach=False)


def _group_by_op(wh: Warehouse, table: str, attach: bool) -> tuple[Op, Close]:
    """A cold read each time, as a new engine would do it: DuckDB's file cache is off."""
    con = wh.duckdb(attach=attach)
    con.execute("SET enable_external_file_cache = false")
    sql = GROUP_BY.format(table=table)

    def op() -> None:
        if not con.execute(sql).fetchall():
            raise RuntimeError("empty result")

    return op, con.close


def _duck_path(location: str) -> str:
    return location.removeprefix("file://")


def add_figures(benchmarks: dict[str, dict], input_bytes: dict[str, int]) -> None:
    for kind, bytes_in in input_bytes.items():
        section = benchmarks.get(f"throughput_{kind}", {})
        for name, numbers in list(section.items()):
            if name != "ratios":
                numbers["mb_per_s"] = round(bytes_in / 1e6 / (numbers["p50_ms"] / 1000), 1)
        if "iceshelf_compact" in section and "duckdb_copy" in section:
            section["ratios"] = {"compact_over_copy": ratio(section["iceshelf_compact"]["mb_per_s"], section["duckdb_copy"]["mb_per_s"])}
        group_by = benchmarks.get(f"group_by_{kind}", {})
        ratios = {}
        for name, over, under in (
            ("before_over_after_p50", "before", "after"),
            ("before_over_after_job_p50", "before", "after_job"),
            ("files_only_before_over_after_p50", "before_files", "after_files"),
        ):
            if over in group_by and under in group_by:
                ratios[name] = ratio(group_by[over]["p50_ms"], group_by[under]["p50_ms"], digits=2)
        if ratios:
            group_by["ratios"] = ratios


def summary_table(report: dict[str, Any]) -> str:
    lines = [f"{'benchmark':<22} {'system':<18} {'p50 ms':>10} {'MB/s':>8}", "-" * 61]
    for bench, section in report["benchmarks"].items():
        for system, numbers in section.items():
            if system != "ratios":
                lines.append(f"{bench:<22} {system:<18} {numbers['p50_ms']:>10.1f} {numbers.get('mb_per_s', ''):>8}")
    lines += ["", "ratios:", *figure_lines(report["benchmarks"]), *note_lines(report)]
    return "\n".join(lines)


def _warehouses(cfg: CompactionBenchConfig, stack: ExitStack, workdir: Path, log: Log) -> list[Warehouse]:
    out = []
    if "s3" in cfg.warehouses:
        log("compaction bench: starting SeaweedFS and Iceshelf on it...")
        seaweed, logs = seaweed_for_run(stack, workdir, BUCKET, iceberg=False)
        location = f"s3://{BUCKET}/warehouse"
        server = iceshelf_on_s3(stack, seaweed, location, logs)
        out.append(Warehouse("s3", server.url, location, iceshelf_client_props(seaweed), seaweed.s3_settings()))
    if "local" in cfg.warehouses:
        location = str(workdir / "local-warehouse")
        Path(location).mkdir(parents=True, exist_ok=True)
        server = stack.enter_context(running_iceshelf(location, workdir))
        out.append(Warehouse("local", server.url, location, {}, None))
    return out


def run(cfg: CompactionBenchConfig, workdir: Path, log: Log = print) -> dict[str, Any]:
    from iceshelf.compaction.rewrite.datapath import EngineOptions

    results = Results()
    input_bytes: dict[str, int] = {}
    engine = EngineOptions()
    threads = engine.threads or os.cpu_count() or 1
    with ExitStack() as stack:
        for wh in _warehouses(cfg, stack, workdir, log):
            wh.catalog().create_namespace(NAMESPACE)
            log(f"compaction bench [{wh.kind}]: writing {cfg.input_files} files, {cfg.input_mib} MiB...")
            source = write_table(wh, "throughput", cfg.input_files, cfg.input_mib * MIB, seed=1)
            input_bytes[wh.kind] = source["bytes"]
            clones = [clone(wh, "throughput", f"throughput_{n}") for n in range(cfg.throughput_samples + cfg.warmup)]
            compacted: list[dict] = []
            out_root = f"{wh.location.rstrip('/')}/bench-copy" if wh.kind == "s3" else str(workdir / "copy-out")
            makers = {
                "iceshelf_compact": lambda wh=wh, clones=clones: compact_op(wh, clones, compacted),
                "duckdb_copy": lambda wh=wh, files=source["files"]: copy_op(wh, files, out_root, threads, engine.memory_limit),
            }
            bench = f"throughput_{wh.kind}"
            log(f"compaction bench [{wh.kind}]: throughput ({cfg.throughput_samples} samples per system)...")
            samples = interleaved_latency(makers, cfg.throughput_samples, cfg.warmup, cfg.rounds, results.on_error(bench))
            for name, durations in samples.items():
                results.record(bench, name, summarize(durations))

            log(f"compaction bench [{wh.kind}]: writing {cfg.small_files} small files...")
            small = write_table(wh, "small", cfg.small_files, cfg.small_files * 16 * 1024, seed=2, payload=True)
            clone(wh, "small", "small_compacted")
            compact_op(wh, ["small_compacted"], compacted)[0]()
            clone(wh, "small", "small_job")
            run_compaction_job(wh, "small_job")
            after_files = [task.file.file_path for task in wh.catalog().load_table(f"{NAMESPACE}.small_compacted").scan().plan_files()]
            bench = f"group_by_{wh.kind}"
            log(f"compaction bench [{wh.kind}]: group-by before and after ({cfg.query_samples} samples each)...")
            makers = {
                "before": lambda wh=wh: query_op(wh, "small"),
                "after": lambda wh=wh: query_op(wh, "small_compacted"),
                "after_job": lambda wh=wh: query_op(wh, "small_job"),
                "before_files": lambda wh=wh, files=small["files"]: files_op(wh, files),
                "after_files": lambda wh=wh, files=after_files: files_op(wh, files),
            }
            samples = interleaved_latency(makers, cfg.query_samples, cfg.warmup, cfg.rounds, results.on_error(bench))
            for name, durations in samples.items():
                results.record(bench, name, summarize(durations))
            results.setup[wh.kind] = {
                "throughput_input": {"files": len(source["files"]), "bytes": source["bytes"], "rows": source["rows"]},
                "small_table": {
                    "files": len(small["files"]),
                    "avg_file_kib": round(small["bytes"] / max(1, len(small["files"])) / 1024, 1),
                    "rows": small["rows"],
                },
                "compactions": compacted,
            }
    add_figures(results.benchmarks, input_bytes)
    return envelope(cfg, results)


def run_to_file(cfg: CompactionBenchConfig, out: Path) -> dict[str, Any]:
    return write_report(run, cfg, out, "iceshelf-compactbench-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compaction", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/compaction.json"))
    parser.add_argument("--quick", action="store_true", help="a smoke run, not a measurement")
    parser.add_argument("--warehouses", nargs="+", choices=("s3", "local"), help="default: s3 local")
    args = parser.parse_args(argv)
    cfg = CompactionBenchConfig.quick() if args.quick else CompactionBenchConfig()
    if args.warehouses:
        cfg.warehouses = tuple(args.warehouses)
    print_report(run_to_file(cfg, args.out), args.out, summary_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
