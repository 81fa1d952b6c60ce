"""Smoke test of the SQL benchmark: a tiny run writes a complete report (shape and positive figures,
never how fast anything is)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.sql import SqlBenchConfig, run_to_file

SYSTEMS = {
    "group_by": ("endpoint_arrow", "duckdb_read_parquet"),
    "read_path": ("duckdb_iceberg_scan", "duckdb_attach"),
    "one_row": ("endpoint_athena", "endpoint_trino", "duckdb_iceberg_scan", "duckdb_attach"),
}


def test_sql_bench_report(tmp_path: Path) -> None:
    cfg = SqlBenchConfig(rows=20_000, groups=10, group_by_samples=2, one_row_samples=4, warmup=1, rounds=2)
    out = tmp_path / "sql.json"
    run_to_file(cfg, out)
    report = json.loads(out.read_text())
    assert report["notes"] == []
    for bench, systems in SYSTEMS.items():
        for system in systems:
            numbers = report["benchmarks"][bench][system]
            assert numbers["samples"] == (cfg.one_row_samples if bench == "one_row" else cfg.group_by_samples)
            assert 0 < numbers["p50_ms"] <= numbers["p99_ms"]
    assert report["benchmarks"]["group_by"]["ratios"]["endpoint_over_read_parquet_p50"] > 0
    assert report["benchmarks"]["one_row"]["figures"]["endpoint_overhead_ms_p50"] is not None
    assert report["setup"]["data_files"] >= 1
