"""SQL endpoint benchmarks, each figure beside its baseline in the same run.

One Iceshelf server on a local warehouse (so the baseline reads the very same files from the
same disk). Systems, sampled in interleaved rounds (``bench.harness``):

``group_by`` -- ``SELECT k, count(*), sum(v), min(id), max(id) FROM t GROUP BY k`` over a
``rows``-row table (10M by default):
    ``endpoint_arrow``   POST /v1/sql/queries, then GET …/results?wait with
                          ``Accept: application/vnd.apache.arrow.stream``: the whole round trip.
    ``duckdb_read_parquet`` (baseline) the same aggregate by an in-process DuckDB over
                          ``read_parquet([...the table's data files...])``.
    Ratio ``endpoint_over_read_parquet_p50``; goal <= 1.2.

``one_row`` -- ``SELECT * FROM small WHERE id = 1`` on a 1 000-row table:
    ``endpoint_athena``   POST + GET results (JSON), as above.
    ``endpoint_trino``    the ``trino`` DB-API client (POST /v1/statement + nextUri).
    ``duckdb_iceberg_scan`` (baseline) in-process DuckDB, ``iceberg_scan('<metadata>')``: the
                          engine work without the endpoint.
    ``duckdb_attach``     in-process DuckDB through an ATTACH of the catalog: the read path the
                          endpoint did not take (see ``sql/rewrite.py``), measured to justify that.
    Figure ``endpoint_overhead_ms_p50`` = endpoint_athena p50 - duckdb_iceberg_scan p50; goal <= 15.

``read_path`` -- the group-by too through ``duckdb_iceberg_scan`` and ``duckdb_attach`` in-process.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from bench.harness import Close, Op, interleaved_latency, summarize
from bench.report import Log, Results, envelope, figure_lines, note_lines, ratio
from bench.report import run_to_file as write_report
from bench.servers.iceshelf import running_iceshelf
from bench.targets import duckdb_connection

NAMESPACE = "sqlbench"
GROUP_BY = "SELECT k, count(*) AS n, sum(v) AS s, min(id) AS lo, max(id) AS hi FROM {table} GROUP BY k"
ONE_ROW = "SELECT * FROM {table} WHERE id = 1"
ARROW = "application/vnd.apache.arrow.stream"


@dataclass
class SqlBenchConfig:
    rows: int = 10_000_000
    groups: int = 1000
    group_by_samples: int = 10
    one_row_samples: int = 200
    warmup: int = 3
    rounds: int = 5

    @classmethod
    def quick(cls) -> SqlBenchConfig:
        return cls(rows=200_000, groups=100, group_by_samples=2, one_row_samples=10, warmup=1, rounds=2)


def prepare(url: str, cfg: SqlBenchConfig) -> dict[str, Any]:
    """``sqlbench.t`` (``rows`` rows) and ``sqlbench.small`` (1 000 rows), written by DuckDB through the catalog."""
    con = duckdb_connection(url)
    try:
        con.execute(f"CREATE SCHEMA lake.{NAMESPACE}")
        con.execute(f"CREATE TABLE lake.{NAMESPACE}.t (id BIGINT, k VARCHAR, v DOUBLE)")
        con.execute(
            f"INSERT INTO lake.{NAMESPACE}.t SELECT i, 'key-' || (i % {cfg.groups}), (i % 9973) * 0.5 FROM range({cfg.rows}) r(i)"
        )
        con.execute(f"CREATE TABLE lake.{NAMESPACE}.small (id BIGINT, label VARCHAR)")
        con.execute(f"INSERT INTO lake.{NAMESPACE}.small SELECT i, 'row ' || i FROM range(1000) r(i)")
    finally:
        con.close()
    tables = {}
    for name in ("t", "small"):
        body = httpx.get(f"{url}/v1/default/namespaces/{NAMESPACE}/tables/{name}", timeout=60).raise_for_status().json()
        tables[name] = body["metadata-location"]
    probe = duckdb_connection()
    try:
        files = [r[0] for r in probe.execute(f"SELECT file_path FROM iceberg_metadata('{tables['t']}') WHERE content = 'EXISTING'").fetchall()]
    finally:
        probe.close()
    return {"metadata": tables, "data_files": files}


def endpoint_op(url: str, sql: str, arrow: bool) -> tuple[Op, Close]:
    client = httpx.Client(base_url=url, timeout=600)
    headers = {"Accept": ARROW} if arrow else {}

    def op() -> None:
        started = client.post("/v1/sql/queries", json={"sql": sql, "namespace": NAMESPACE}).raise_for_status().json()
        response = client.get(f"/v1/sql/queries/{started['query_id']}/results", params={"wait": 60}, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"query failed: {response.text[:300]}")

    return op, client.close


def trino_op(url: str, sql: str) -> tuple[Op, Close]:
    import trino

    parsed = urlparse(url)
    connection = trino.dbapi.connect(host=parsed.hostname, port=parsed.port, user="bench", catalog="default", schema=NAMESPACE)

    def op() -> None:
        cursor = connection.cursor()
        cursor.execute(sql)
        if not cursor.fetchall():
            raise RuntimeError("no row")

    return op, connection.close


def duckdb_op(sql: str, url: str | None = None) -> tuple[Op, Close]:
    con = duckdb_connection(url)

    def op() -> None:
        con.execute(sql).to_arrow_table()

    return op, con.close


def add_figures(benchmarks: dict[str, dict]) -> None:
    def p50(bench: str, system: str) -> float | None:
        return benchmarks.get(bench, {}).get(system, {}).get("p50_ms")

    group_by = benchmarks.get("group_by", {})
    group_by["ratios"] = {
        "endpoint_over_read_parquet_p50": ratio(p50("group_by", "endpoint_arrow"), p50("group_by", "duckdb_read_parquet")),
        "goal": 1.2,
    }
    one_row = benchmarks.get("one_row", {})
    endpoint, engine = p50("one_row", "endpoint_athena"), p50("one_row", "duckdb_iceberg_scan")
    one_row["figures"] = {
        "endpoint_overhead_ms_p50": round(endpoint - engine, 3) if endpoint and engine else None,
        "trino_overhead_ms_p50": round(p50("one_row", "endpoint_trino") - engine, 3) if p50("one_row", "endpoint_trino") and engine else None,
        "goal_ms": 15,
    }
    read_path = benchmarks.get("read_path", {})
    read_path["ratios"] = {
        "attach_over_iceberg_scan_group_by_p50": ratio(p50("read_path", "duckdb_attach"), p50("read_path", "duckdb_iceberg_scan")),
        "attach_over_iceberg_scan_one_row_p50": ratio(p50("one_row", "duckdb_attach"), p50("one_row", "duckdb_iceberg_scan")),
    }


def summary_table(report: dict[str, Any]) -> str:
    lines = [f"{'sql benchmark':<14} {'system':<22} {'p50 ms':>10} {'p99 ms':>10}", "-" * 59]
    for bench, systems in report["benchmarks"].items():
        for system, numbers in systems.items():
            if "p50_ms" in numbers:
                lines.append(f"{bench:<14} {system:<22} {numbers['p50_ms']:>10.2f} {numbers['p99_ms']:>10.2f}")
    lines += [*figure_lines(report["benchmarks"], ("ratios", "figures")), *note_lines(report)]
    return "\n".join(lines)


def run(cfg: SqlBenchConfig, workdir: Path, log: Log = print) -> dict[str, Any]:
    results = Results()
    with ExitStack() as stack:
        (workdir / "warehouse").mkdir(parents=True, exist_ok=True)
        server = stack.enter_context(running_iceshelf(str(workdir / "warehouse"), workdir))
        log(f"sql bench: writing {cfg.rows} rows through the catalog...")
        prepared = prepare(server.url, cfg)
        results.setup["data_files"] = len(prepared["data_files"])
        big, small = prepared["metadata"]["t"], prepared["metadata"]["small"]
        files = ", ".join(f"'{f}'" for f in prepared["data_files"])

        log(f"sql bench: group-by ({cfg.group_by_samples} samples per system)...")
        makers = {
            "endpoint_arrow": lambda: endpoint_op(server.url, GROUP_BY.format(table="t"), arrow=True),
            "duckdb_read_parquet": lambda: duckdb_op(GROUP_BY.format(table=f"read_parquet([{files}])")),
        }
        for name, samples in interleaved_latency(makers, cfg.group_by_samples, cfg.warmup, cfg.rounds, results.on_error("group_by")).items():
            results.record("group_by", name, summarize(samples))

        log(f"sql bench: read paths ({cfg.group_by_samples} samples per system)...")
        makers = {
            "duckdb_iceberg_scan": lambda: duckdb_op(GROUP_BY.format(table=f"iceberg_scan('{big}')")),
            "duckdb_attach": lambda: duckdb_op(GROUP_BY.format(table=f"lake.{NAMESPACE}.t"), server.url),
        }
        for name, samples in interleaved_latency(makers, cfg.group_by_samples, cfg.warmup, cfg.rounds, results.on_error("read_path")).items():
            results.record("read_path", name, summarize(samples))

        log(f"sql bench: one-row query ({cfg.one_row_samples} samples per system)...")
        makers = {
            "endpoint_athena": lambda: endpoint_op(server.url, ONE_ROW.format(table="small"), arrow=False),
            "endpoint_trino": lambda: trino_op(server.url, ONE_ROW.format(table="small")),
            "duckdb_iceberg_scan": lambda: duckdb_op(ONE_ROW.format(table=f"iceberg_scan('{small}')")),
            "duckdb_attach": lambda: duckdb_op(ONE_ROW.format(table=f"lake.{NAMESPACE}.small"), server.url),
        }
        for name, samples in interleaved_latency(makers, cfg.one_row_samples, cfg.warmup * 5, cfg.rounds, results.on_error("one_row")).items():
            results.record("one_row", name, summarize(samples))
        results.note_exits({"iceshelf": server})

    add_figures(results.benchmarks)
    return envelope(cfg, results)


def run_to_file(cfg: SqlBenchConfig, out: Path) -> dict[str, Any]:
    return write_report(run, cfg, out, "iceshelf-sqlbench-")
