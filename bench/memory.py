"""Memory over history: the server's RSS while one table takes ``commits`` commits (10,000; 1,000 quick).

A long-lived replica's caches must not grow with a table's history: every commit writes a metadata
file a little larger than the last (it lists every snapshot), so a cache bounded by entries holds
ever more bytes. Iceshelf bounds its caches by bytes (``ICESHELF_CACHE_MB``); this shows RSS levelling off.

One Iceshelf server on a local warehouse (maintenance off, so nothing expires snapshots), one table.
A pyiceberg append writes a real data file and manifest list first; then every commit is a REST
``updateTable`` that appends a snapshot (operation ``append``) naming that same manifest list, and
moves ``main`` to it. The catalog's cost of an append is all there (read the pointer, validate,
build and write a metadata file with one more snapshot, swing the pointer); the client's parquet
writing is left out, so 10,000 commits take minutes, not hours. The server's RSS (``VmRSS`` from
``/proc``) is sampled at 0, 25, 50, 75 and 100 % of the commits.

Figures: RSS in MiB at each checkpoint, the metadata file's size at the end, commits/s, and
``last_over_first_plateau``: RSS at the end over RSS at 25 % -- about 1.0 when memory is bounded,
growing with the commit count when it is not.

``python -m bench.memory [--quick] [--commits N] [--out bench-results/memory.json]`` runs it alone;
``python -m bench`` runs it after the others (``--skip-memory`` to leave it out).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
from pyiceberg.catalog.rest import RestCatalog

from bench.report import Log, Results, envelope, loadavg_1m, note_lines, print_report, ratio
from bench.report import run_to_file as write_report
from bench.servers.iceshelf import start_iceshelf

NAMESPACE = "memory_bench"
TABLE = "history"
CHECKPOINTS = (0.0, 0.25, 0.5, 0.75, 1.0)
MIB = 1024 * 1024


@dataclass
class MemoryBenchConfig:
    commits: int = 10_000
    #: ``ICESHELF_CACHE_MB`` for the server (None: its default).
    cache_mb: int | None = None

    @classmethod
    def quick(cls) -> MemoryBenchConfig:
        """A tenth of the commits, so a tighter budget: the caches fill within the first quarter."""
        return cls(commits=1_000, cache_mb=64)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return round(kib / 1024, 1)


class SnapshotCommits:
    """Appends snapshot after snapshot to one table over REST, each naming the same manifest list."""

    def __init__(self, url: str, manifest_list: str, head: int, sequence: int, schema_id: int) -> None:
        self.http = httpx.Client(base_url=f"{url}/v1/default", timeout=120)
        self.manifest_list = manifest_list
        self.head, self.sequence, self.schema_id = head, sequence, schema_id

    def commit(self) -> None:
        snapshot_id = self.head + 1
        body = {
            "requirements": [{"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": self.head}],
            "updates": [
                {"action": "add-snapshot", "snapshot": {
                    "snapshot-id": snapshot_id, "parent-snapshot-id": self.head, "sequence-number": self.sequence + 1,
                    "timestamp-ms": int(time.time() * 1000), "manifest-list": self.manifest_list,
                    "summary": {"operation": "append"}, "schema-id": self.schema_id}},
                {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": snapshot_id},
            ],
        }
        response = self.http.post(f"/namespaces/{NAMESPACE}/tables/{TABLE}", json=body)
        response.raise_for_status()
        self.head, self.sequence = snapshot_id, self.sequence + 1

    def close(self) -> None:
        self.http.close()


def run(cfg: MemoryBenchConfig, workdir: Path, log: Log = print) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    results = Results(machine={"loadavg_1m_at_start": loadavg_1m()})
    warehouse = workdir / "warehouse"
    env = {"ICESHELF_CACHE_MB": str(cfg.cache_mb)} if cfg.cache_mb is not None else {}
    server = start_iceshelf(str(warehouse), workdir, env)
    try:
        catalog = RestCatalog("memory-bench", uri=server.url)
        catalog.create_namespace(NAMESPACE)
        schema = pa.schema([pa.field("i", pa.int64())])
        table = catalog.create_table(f"{NAMESPACE}.{TABLE}", schema)
        table.append(pa.table({"i": [0]}, schema=schema))
        table = catalog.load_table(f"{NAMESPACE}.{TABLE}")
        current = table.current_snapshot()
        commits = SnapshotCommits(
            server.url, current.manifest_list, current.snapshot_id, table.metadata.last_sequence_number, table.metadata.current_schema_id
        )
        marks = {round(cfg.commits * f): f for f in CHECKPOINTS}
        rss: dict[str, float] = {}
        started = time.perf_counter()
        log(f"memory bench: {cfg.commits} commits to one table...")
        try:
            for done in range(cfg.commits + 1):
                if done in marks:
                    rss[str(done)] = rss_mib(server.process.pid)
                    log(f"  {done} commits: RSS {rss[str(done)]} MiB")
                if done < cfg.commits:
                    commits.commit()
        finally:
            commits.close()
        elapsed = time.perf_counter() - started
        latest = catalog.load_table(f"{NAMESPACE}.{TABLE}")
        metadata_bytes = Path(latest.metadata_location.removeprefix("file://")).stat().st_size
        first_plateau = rss[str(round(cfg.commits * 0.25))]
        results.record("history", "iceshelf", {
            "commits": cfg.commits,
            "rss_mib": rss,
            "snapshots_at_end": len(latest.metadata.snapshots),
            "metadata_file_mib_at_end": round(metadata_bytes / MIB, 2),
            "commits_per_s": round(cfg.commits / elapsed, 1),
        })
        results.benchmarks["history"]["ratios"] = {"last_over_first_plateau": ratio(rss[str(cfg.commits)], first_plateau)}
        results.setup["iceshelf"] = {"warehouse": "local", "cache_mb": cfg.cache_mb or "default"}
        results.note_exits({"iceshelf": server})
    except Exception as exc:  # noqa: BLE001 - the report says what failed
        results.failed("history", exc)
    finally:
        server.stop()
    return envelope(cfg, results)


def summary_table(report: dict[str, Any]) -> str:
    history = report["benchmarks"].get("history", {})
    figures = history.get("iceshelf")
    lines = ["memory over history (one table, local warehouse)"]
    if figures:
        lines.append("  RSS MiB by commits: " + ", ".join(f"{n}: {v}" for n, v in figures["rss_mib"].items()))
        lines.append(
            f"  metadata file at end: {figures['metadata_file_mib_at_end']} MiB ({figures['snapshots_at_end']} snapshots), "
            f"{figures['commits_per_s']} commits/s"
        )
        lines.append(f"  last/first plateau: {history['ratios']['last_over_first_plateau']}")
    lines += note_lines(report)
    return "\n".join(lines)


def run_to_file(cfg: MemoryBenchConfig, out: Path) -> dict[str, Any]:
    return write_report(run, cfg, out, "iceshelf-membench-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/memory.json"))
    parser.add_argument("--quick", action="store_true", help="1,000 commits: a smoke run, not a measurement")
    parser.add_argument("--commits", type=int, help="commits to the table (default 10,000)")
    parser.add_argument("--cache-mb", type=int, help="ICESHELF_CACHE_MB for the server")
    args = parser.parse_args(argv)
    cfg = MemoryBenchConfig.quick() if args.quick else MemoryBenchConfig()
    if args.commits:
        cfg.commits = args.commits
    if args.cache_mb:
        cfg.cache_mb = args.cache_mb
    print_report(run_to_file(cfg, args.out), args.out, summary_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
