"""``python -m bench [--quick] [--out bench-results/catalog.json]``: run the catalog benchmarks.

Run from the repository root: ``bench`` is not an installed package, it is imported from there.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from bench import compaction as compaction_bench  # noqa: E402
from bench import memory as memory_bench  # noqa: E402
from bench import sql as sql_bench  # noqa: E402
from bench import throughput as throughput_bench  # noqa: E402
from bench.catalog import BenchConfig, run_to_file, summary_table  # noqa: E402
from bench.report import print_report  # noqa: E402

#: The suites run after the catalog one, each writing ``<name>.json`` beside ``--out``; ``--skip-<name>`` skips one.
_SUITES = (
    ("sql", sql_bench, sql_bench.SqlBenchConfig),
    ("compaction", compaction_bench, compaction_bench.CompactionBenchConfig),
    ("throughput", throughput_bench, throughput_bench.ThroughputBenchConfig),
    ("memory", memory_bench, memory_bench.MemoryBenchConfig),
)


def build_parser() -> argparse.ArgumentParser:
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/catalog.json"), help="JSON report path")
    parser.add_argument("--quick", action="store_true", help="tiny sample sizes: a smoke run, not a measurement")
    parser.add_argument("--loads", type=int, help=f"sequential loadTable GETs per system (default {defaults.loads})")
    parser.add_argument("--warmup", type=int, help=f"untimed GETs before each latency series (default {defaults.warmup})")
    parser.add_argument("--threads", type=int, help=f"client threads for throughput (default {defaults.threads})")
    parser.add_argument(
        "--throughput-seconds", type=float, help=f"throughput window per system (default {defaults.throughput_seconds})"
    )
    parser.add_argument("--commits", type=int, help=f"timed one-row appends per system (default {defaults.commits})")
    parser.add_argument("--snapshots", type=int, help=f"snapshots in the loaded table (default {defaults.snapshots})")
    parser.add_argument(
        "--rounds", type=int, help=f"interleaved rounds the systems take turns in (default {defaults.rounds})"
    )
    parser.add_argument("--workdir", type=Path, help="keep SeaweedFS data, warehouses and server logs here")
    parser.add_argument("--keep", action="store_true", help="do not delete the temporary work directory")
    parser.add_argument("--skip-sql", action="store_true", help="do not run the SQL endpoint benchmarks (sql.json beside --out)")
    parser.add_argument(
        "--skip-compaction", action="store_true", help="do not run the compaction benchmarks (compaction.json beside --out)"
    )
    parser.add_argument(
        "--skip-throughput", action="store_true", help="do not run the commit throughput benchmark (throughput.json beside --out)"
    )
    parser.add_argument(
        "--skip-memory", action="store_true", help="do not run the memory-over-history benchmark (memory.json beside --out)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = BenchConfig.quick() if args.quick else BenchConfig()
    for name in ("loads", "warmup", "threads", "throughput_seconds", "commits", "snapshots", "rounds"):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, name, value)
    # SIGTERM unwinds like Ctrl-C so the servers started for the run are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print_report(run_to_file(cfg, args.out, workdir=args.workdir, keep=args.keep), args.out, summary_table)
    for name, module, config in _SUITES:
        if getattr(args, f"skip_{name}"):
            continue
        out = args.out.parent / f"{name}.json"
        print_report(module.run_to_file(config.quick() if args.quick else config(), out), out, module.summary_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
