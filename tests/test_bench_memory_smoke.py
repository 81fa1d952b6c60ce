"""Smoke test of the memory-over-history benchmark: ``python -m bench.memory`` writes a complete report.

Shape and exact counts only -- never how much memory anything takes (the figures are the benchmark's).
(``tests/test_bench_smoke.py`` runs ``python -m bench`` with ``--skip-memory``; a short run happens here.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMITS = 120


def test_memory_bench_reports_rss_at_every_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--commits", str(COMMITS), "--cache-mb", "8", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, f"bench failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "last/first plateau" in proc.stdout
    report = json.loads(out.read_text())
    assert report["notes"] == []
    history = report["benchmarks"]["history"]
    figures = history["iceshelf"]
    assert list(figures["rss_mib"]) == ["0", "30", "60", "90", "120"]
    assert all(v > 0 for v in figures["rss_mib"].values())
    assert figures["snapshots_at_end"] == COMMITS + 1  # the first append, then one snapshot per commit
    assert figures["commits"] == COMMITS and figures["commits_per_s"] > 0
    assert history["ratios"]["last_over_first_plateau"] > 0
    assert report["config"] == {"commits": COMMITS, "cache_mb": 8}
