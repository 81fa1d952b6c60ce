"""Smoke test of the catalog benchmark: ``python -m bench --quick`` runs and writes a complete report.

Not a timed test: it asserts the report's shape and that every figure is a positive number,
never how fast anything is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CATALOGS = ("iceshelf_s3", "seaweedfs_catalog", "iceshelf_local")
EXPECTED = {
    "load_table_latency": {
        "systems": ("object_store_floor", "object_store_floor_botocore", *CATALOGS),
        "keys": ("p50_ms", "p99_ms", "mean_ms", "samples"),
        "ratios": (
            "iceshelf_over_floor_p50",
            "iceshelf_over_floor_p99",
            "iceshelf_over_seaweedfs_p50",
            "iceshelf_over_seaweedfs_p99",
        ),
    },
    "load_table_throughput": {
        "systems": ("object_store_floor", *CATALOGS),
        "keys": ("ops_per_s", "threads", "ops", "seconds", "p50_ms_under_load", "p99_ms_under_load"),
        "ratios": ("seaweedfs_over_iceshelf", "iceshelf_over_floor"),
    },
    "commit_latency": {
        "systems": ("object_store_floor", "object_store_floor_botocore", *CATALOGS),
        "keys": ("p50_ms", "p99_ms", "samples"),
        "ratios": (
            "iceshelf_over_seaweedfs_p50",
            "iceshelf_over_seaweedfs_p99",
            "iceshelf_rest_over_seaweedfs_rest_p50",
            "iceshelf_rest_over_floor_put_p50",
        ),
    },
}


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "nested" / "catalog.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--skip-sql", "--skip-throughput", "--skip-memory", "--out", str(out), "--workdir", str(tmp / "work")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, f"bench failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert "loadTable" in proc.stdout  # the human summary table
    return json.loads(out.read_text())


def test_machine_section(report: dict) -> None:
    machine = report["machine"]
    assert _positive(machine["cpu_count"])
    assert machine["python"]
    assert machine["timestamp"]


def test_no_system_failed(report: dict) -> None:
    assert report["notes"] == []


@pytest.mark.parametrize("benchmark", sorted(EXPECTED))
def test_benchmark_figures(report: dict, benchmark: str) -> None:
    expected = EXPECTED[benchmark]
    section = report["benchmarks"][benchmark]
    for system in expected["systems"]:
        numbers = section[system]
        for key in expected["keys"]:
            assert _positive(numbers[key]), f"{benchmark}/{system}/{key} = {numbers.get(key)!r}"
        assert numbers.get("p99_ms", numbers.get("p99_ms_under_load")) >= numbers.get("p50_ms", numbers.get("p50_ms_under_load"))
    for ratio in expected["ratios"]:
        assert _positive(section["ratios"][ratio]), f"{benchmark} ratio {ratio} = {section['ratios'].get(ratio)!r}"


def test_commit_rest_call_timed(report: dict) -> None:
    for system in CATALOGS:
        numbers = report["benchmarks"]["commit_latency"][system]
        assert _positive(numbers["rest_commit_p50_ms"]) and _positive(numbers["rest_commit_p99_ms"])
        assert numbers["snapshots_after"] == report["config"]["commits"] + report["config"]["commit_warmup"]


def test_seaweedfs_catalog_setup_recorded(report: dict) -> None:
    setup = report["setup"]["seaweedfs_catalog"]
    assert setup["table_bucket"] and setup["table_bucket_arn"].startswith("arn:aws:s3tables:")
    assert setup["snapshots"] == report["config"]["snapshots"]
    assert _positive(report["setup"]["object_store_floor"]["object_bytes"])
