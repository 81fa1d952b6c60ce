"""What every benchmark's report has in common, so the suites differ only in what they measure.

A suite collects its figures and setup facts in ``Results`` (a system that fails becomes a note,
the others still run), turns them into the JSON envelope with ``envelope`` (machine, config,
setup, benchmarks, notes, elapsed seconds), and is run by ``run_to_file``, which gives its ``run(cfg, workdir, log)``
a work directory and writes the report where ``python -m bench`` asks. ``print_report`` and the
``*_lines`` helpers are the human side: the summary table's shared parts.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from bench.harness import OnError
from bench.servers.iceshelf import IceshelfServer
from bench.servers.seaweed import SeaweedServer, weed_binary

Config = TypeVar("Config")
#: What a suite's ``run`` is told to say while it runs.
Log = Callable[[str], None]


@dataclass
class Results:
    """A run's findings so far: figures by benchmark and system, facts about how the systems were
    set up, the suite's own facts about the machine, notes on what failed, and when the run began
    (for ``elapsed_s``)."""

    benchmarks: dict[str, dict] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def record(self, benchmark: str, system: str, numbers: dict) -> None:
        self.benchmarks.setdefault(benchmark, {})[system] = numbers

    def failed(self, what: str, exc: BaseException) -> None:
        """Note that ``what`` failed, and why."""
        self.notes.append(f"{what} failed: {type(exc).__name__}: {exc}"[:600])

    def on_error(self, benchmark: str) -> OnError:
        """A failed system becomes a note instead of ending the run; the other rows still run."""

        def note(system: str, exc: BaseException) -> None:
            self.failed(f"{benchmark}/{system}", exc)
            print(f"  ! {benchmark}/{system} failed: {exc!r}"[:300], file=sys.stderr)

        return note

    def note_exits(self, servers: dict[str, IceshelfServer], seaweed: SeaweedServer | None = None) -> None:
        """Note every server (by label) that died during the run: its figures are suspect."""
        for label, server in servers.items():
            if server.process.poll() is not None:
                self.notes.append(f"{label} exited during the run: {server.log()[-400:]}")
        if seaweed is not None and not seaweed.alive():
            self.notes.append("SeaweedFS exited during the run")


def ratio(numerator: float | None, denominator: float | None, digits: int = 3) -> float | None:
    """``numerator / denominator`` rounded, or ``None`` when a figure is missing."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, digits)


def loadavg_1m() -> float:
    """The machine's one-minute load average: how busy the shared machine was."""
    return round(os.getloadavg()[0], 2)


def machine_info() -> dict[str, Any]:
    """The machine and the versions a figure was taken with."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = os.cpu_count()
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        info["loadavg_1m_at_end"] = loadavg_1m()
    except OSError:  # pragma: no cover
        pass
    try:
        from importlib.metadata import version

        for package in ("pyiceberg", "httpx", "botocore", "pyarrow"):
            info[package] = version(package)
    except Exception:  # noqa: BLE001
        pass
    try:
        out = subprocess.run([weed_binary(), "version"], capture_output=True, text=True, timeout=20).stdout
        info["seaweedfs"] = out.split("\n", 1)[0].removeprefix("version ").strip()
    except Exception:  # noqa: BLE001
        pass
    return info


def envelope(cfg: Any, results: Results) -> dict[str, Any]:
    """The report: machine (plus the suite's own facts about it), config, setup, benchmarks, notes
    and the run's duration."""
    return {
        "machine": {**machine_info(), **results.machine},
        "config": asdict(cfg),
        "setup": results.setup,
        "benchmarks": results.benchmarks,
        "notes": results.notes,
        "elapsed_s": round(time.perf_counter() - results.started, 1),
    }


def run_to_file(
    run: Callable[[Config, Path, Log], dict],
    cfg: Config,
    out: Path,
    prefix: str,
    workdir: Path | None = None,
    keep: bool = False,
) -> dict:
    """``run`` in ``workdir`` (by default a fresh temporary directory named ``prefix...``, deleted
    afterwards unless ``keep``), its report written to ``out`` as JSON and returned."""
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix=prefix)) if workdir is None else workdir
    try:
        report = run(cfg, workdir, lambda msg: print(msg, file=sys.stderr, flush=True))
    finally:
        if own and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def figure_lines(benchmarks: dict[str, dict], kinds: tuple[str, ...] = ("ratios",)) -> list[str]:
    """``  benchmark.name = value`` for every derived figure (the ``kinds`` sections) of every benchmark."""
    return [
        f"  {bench}.{name} = {value}"
        for bench, section in benchmarks.items()
        for kind in kinds
        for name, value in section.get(kind, {}).items()
    ]


def note_lines(report: dict) -> list[str]:
    return [f"note: {note}" for note in report.get("notes", [])]


def print_report(report: dict, out: Path, summary: Callable[[dict], str]) -> None:
    """What a suite prints after its run: its summary table and where the JSON went."""
    print(summary(report))
    print(f"\nwrote {out} ({report['elapsed_s']}s)")
