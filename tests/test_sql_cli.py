"""``iceshelf sql`` against a running server: the three output formats and a failing statement."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients import CatalogEnv, unique_name

ROOT = Path(__file__).resolve().parents[1]


def iceshelf_sql(env: CatalogEnv, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "iceshelf.catalog.cli", "sql", "--url", env.url, *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def schema(local_env: CatalogEnv) -> str:
    name = unique_name("cli")
    local_env.catalog().create_namespace(name)
    done = iceshelf_sql(local_env, f"CREATE TABLE {name}.t AS SELECT range AS id, 'v' || range AS label FROM range(3)")
    assert done.returncode == 0, done.stderr
    return name


def test_table_csv_and_json(local_env: CatalogEnv, schema: str) -> None:
    statement = f"SELECT id, label, CAST(id AS DECIMAL(5,1)) AS amount FROM {schema}.t ORDER BY id"
    table = iceshelf_sql(local_env, statement)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines() == [
        "id | label | amount",
        "---+-------+-------",
        "0  | v0    | 0.0",
        "1  | v1    | 1.0",
        "2  | v2    | 2.0",
        "(3 rows)",
    ]
    as_csv = iceshelf_sql(local_env, statement, "--format", "csv")
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [["id", "label", "amount"], ["0", "v0", "0.0"], ["1", "v1", "1.0"], ["2", "v2", "2.0"]]
    as_json = iceshelf_sql(local_env, "SELECT count(*) AS n FROM t", "--format", "json", "--namespace", schema, "--dialect", "trino")
    assert json.loads(as_json.stdout) == [{"n": 3}]


def test_failures_exit_non_zero(local_env: CatalogEnv, schema: str) -> None:
    refused = iceshelf_sql(local_env, "SELECT * FROM read_csv('/etc/passwd')")
    assert refused.returncode == 1 and "not allowed" in refused.stderr
    failed = iceshelf_sql(local_env, f"SELECT 1 / 'x' FROM {schema}.t")
    assert failed.returncode == 1 and failed.stderr.startswith("error: FAILED")
