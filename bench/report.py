"""What every benchmark module's report has in common: the JSON envelope and writing it to a file.

A module provides ``run(cfg, workdir, log) -> dict``; ``run_in_tempdir`` gives it a throwaway work
directory and writes the report where ``python -m bench`` asks; ``envelope`` is the report itself.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from bench.catalog import Results, machine_info


def envelope(cfg: Any, setup: dict, results: Results, started: float) -> dict:
    """The report: machine, config, setup, benchmarks, notes and the run's duration."""
    return {
        "machine": machine_info(),
        "config": asdict(cfg),
        "setup": setup,
        "benchmarks": results.benchmarks,
        "notes": results.notes,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


def run_in_tempdir(run: Callable[[Any, Path, Callable[[str], None]], dict], cfg: Any, out: Path, prefix: str) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        report = run(cfg, workdir, lambda msg: print(msg, file=sys.stderr, flush=True))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def print_report(report: dict, out: Path, summary: Callable[[dict], str]) -> int:
    """What a suite run alone (``python -m bench.<suite>``) prints: its summary table and where the JSON went."""
    print(summary(report))
    print(f"\nwrote {out} ({report['elapsed_s']}s)")
    return 0
