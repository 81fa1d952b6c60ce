"""Smoke test of the commit throughput benchmark: ``python -m bench.throughput --quick`` writes a
complete report. Shape, positive figures and exact snapshot counts -- never how fast anything is.

(``tests/test_bench_smoke.py`` runs ``python -m bench`` with ``--skip-throughput``, so the quick
throughput run happens once, here.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.throughput import (
    BASELINE,
    HEADLINE,
    HEADLINE_REBASE,
    REBASE_APPENDS,
    REPLICAS,
    REPLICAS_REBASE,
    SPEC_DEFAULT,
    ThroughputBenchConfig,
)

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = (HEADLINE, HEADLINE_REBASE, BASELINE, REPLICAS, REPLICAS_REBASE)
#: Each Iceshelf system and its mode: the spec's default (409 on a stale append) or the opt-in rebase.
MODES = {HEADLINE: SPEC_DEFAULT, REPLICAS: SPEC_DEFAULT, HEADLINE_REBASE: REBASE_APPENDS, REPLICAS_REBASE: REBASE_APPENDS}
WRITERS = [str(n) for n in ThroughputBenchConfig.quick().writers]


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("throughput-bench") / "throughput.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.throughput", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,  # inside pytest-timeout's 300 s
    )
    assert proc.returncode == 0, f"bench failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert "appends/s" in proc.stdout  # the human summary table
    return json.loads(out.read_text())


def test_no_system_failed(report: dict) -> None:
    assert report["notes"] == []
    assert _positive(report["machine"]["writer_processes"])


@pytest.mark.parametrize("system", SYSTEMS)
def test_figures_per_writer_count(report: dict, system: str) -> None:
    by_writers = report["benchmarks"]["appends"][system]
    assert sorted(by_writers, key=int) == WRITERS
    for n, figures in by_writers.items():
        assert figures["writers"] == int(n)
        for key in ("successes", "seconds", "p50_ms", "p99_ms", "rest_commit_p50_ms", "commit_calls_per_append"):
            assert _positive(figures[key]), f"{system}/{n}/{key} = {figures.get(key)!r}"
        # The rate counts only appends completed inside a short measured stretch: under heavy
        # conflicts the baseline may see none there.
        assert _positive(figures["appends_per_s"]) or (system == BASELINE and figures["appends_per_s"] == 0)
        assert figures["counted"] <= figures["successes"]
        assert figures["p99_ms"] >= figures["p50_ms"]
        assert isinstance(figures["failures"], int) and figures["failures"] >= 0
        assert _positive(figures["cpu_ms_per_append"]["writers"])
        assert _positive(figures["appends_per_metadata_version"])
        assert figures.get("mode") == MODES.get(system)


@pytest.mark.parametrize("system", MODES)
def test_iceshelf_lost_and_invented_nothing(report: dict, system: str) -> None:
    for n, figures in report["benchmarks"]["appends"][system].items():
        assert sum(figures["snapshots_after"]) == figures["successes"]
        if MODES[system] == REBASE_APPENDS:
            assert figures["failures"] == 0, f"{system}/{n}: {figures.get('failure_samples')}"
            assert figures["commit_calls_per_append"] == 1.0  # never a 409 for pyiceberg to retry
        else:  # a stale append is a 409: pyiceberg retries it, and one writer alone never conflicts
            assert figures["commit_calls_per_append"] >= 1.0
            assert n != "1" or (figures["conflicts_409"], figures["failures"]) == (0, 0)


@pytest.mark.parametrize("deployment", (HEADLINE, REPLICAS))
def test_both_modes_side_by_side(report: dict, deployment: str) -> None:
    appends = report["benchmarks"]["appends"]
    per = appends["modes"][deployment]
    assert sorted(per, key=int) == WRITERS
    for n, figures in per.items():
        assert figures["appends_per_s"] == {
            SPEC_DEFAULT: appends[deployment][n]["appends_per_s"],
            REBASE_APPENDS: appends[f"{deployment}_rebase"][n]["appends_per_s"],
        }
        assert figures["failures"][REBASE_APPENDS] == 0
        assert _positive(figures["rebase_over_spec_default"])


def test_ratios_and_goals(report: dict) -> None:
    appends = report["benchmarks"]["appends"]
    baseline = appends[BASELINE]
    for name in (f"{system}_over_seaweedfs" for system in MODES):
        assert sorted(appends["ratios"][name], key=int) == WRITERS
        for n, ratio in appends["ratios"][name].items():
            assert _positive(ratio) or (ratio is None and baseline[n]["appends_per_s"] == 0)
    goals = appends["goals"]
    assert goals["writers"] == int(WRITERS[-1]) and goals["system"] == HEADLINE_REBASE
    for flag in ("zero_failures", "rising"):
        assert isinstance(goals[flag], bool)
    if baseline[WRITERS[-1]]["appends_per_s"]:
        assert _positive(goals["iceshelf_over_seaweedfs"]) and isinstance(goals["at_least_10x"], bool)
