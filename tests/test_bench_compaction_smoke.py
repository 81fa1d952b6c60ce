"""Smoke test of the compaction benchmark: a quick run on the local warehouse produces every figure.

Not a timed test: it checks the report's shape, that every figure is a positive number and that
the compactions it timed really rewrote the files -- never how fast anything was.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench.compaction import CompactionBenchConfig, run, summary_table


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cfg = dataclasses.replace(CompactionBenchConfig.quick(), warehouses=("local",))
    return run(cfg, Path(tmp_path_factory.mktemp("compaction-bench")), log=lambda _: None)


def test_every_figure_is_there(report: dict) -> None:
    assert report["notes"] == []
    throughput, group_by = report["benchmarks"]["throughput_local"], report["benchmarks"]["group_by_local"]
    for system in ("iceshelf_compact", "duckdb_copy"):
        assert throughput[system]["p50_ms"] > 0 and throughput[system]["mb_per_s"] > 0
    for system in ("before", "after", "after_job", "before_files", "after_files"):
        assert group_by[system]["p50_ms"] > 0
    assert throughput["ratios"]["compact_over_copy"] > 0
    assert all(group_by["ratios"][r] > 0 for r in ("before_over_after_p50", "before_over_after_job_p50", "files_only_before_over_after_p50"))
    assert "compact_over_copy" in summary_table(report)


def test_the_timed_compactions_rewrote_the_tables(report: dict) -> None:
    setup = report["setup"]["local"]
    assert setup["small_table"]["files"] >= CompactionBenchConfig.quick().small_files
    assert setup["compactions"] and all(c["files_out"] == 1 and c["files_in"] > 1 for c in setup["compactions"])
