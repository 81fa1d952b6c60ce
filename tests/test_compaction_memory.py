"""A table larger than the rewrite's memory limit compacts, with every row exact.

DuckDB writes ~180 MB of Parquet (4M rows, ~300 MB once decoded) into a table over HTTP; a
zero-copy clone of it reads the same files, then ``iceshelf compact`` rewrites one copy with a plain
binpack under a 64 MB DuckDB memory limit and the other with a full sort -- which must spill --
under 128 MB (DuckDB 1.5's sort needs ~100 MB per thread with string columns, whatever the data
size). Each compaction runs as its own process, so its peak memory is measured: it must stay
below the baseline of the same command planning only (``--dry-run``) plus the input's size.
On the local warehouse only: the S3 path differs in I/O, not in memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import DoubleType, LongType, NestedField, StringType

from bench.clone import shallow_clone
from iceshelf.compaction.rewrite.datapath import EngineOptions, memory_bytes, threads_for
from iceshelf.tables.names import Identifier
from tests.clients import CatalogEnv, unique_name
from tests.compaction_support import data_files, table_store

ROWS = 4_000_000
CHECKSUM = "SELECT count(*), sum(hash(id, payload, v)) FROM lake.{table}"


def compact(env: CatalogEnv, table: str, *args: str) -> int:
    """Run ``iceshelf compact``; returns its peak resident memory in bytes."""
    command = [sys.executable, "-m", "iceshelf.catalog.cli", "compact", table, "--warehouse", env.warehouse, *args]
    root = Path(__file__).parents[1]
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)  # the child's own peak memory, which Popen.wait does not give
        process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, output
    return usage.ru_maxrss * 1024


def test_a_table_larger_than_the_memory_limit_compacts_exactly(local_env: CatalogEnv) -> None:
    namespace = unique_name()
    catalog = local_env.catalog()
    catalog.create_namespace(namespace)
    schema = Schema(NestedField(1, "id", LongType()), NestedField(2, "payload", StringType()), NestedField(3, "v", DoubleType()))
    # snappy, DuckDB's own default: the input must be larger than zstd (a new table's default) would make it
    catalog.create_table(f"{namespace}.big", schema=schema, properties={"write.parquet.compression-codec": "snappy"})
    con = local_env.duckdb()
    for n in range(5):
        lo, hi = n * ROWS // 5, (n + 1) * ROWS // 5
        con.execute(f"INSERT INTO lake.{namespace}.big SELECT range, md5(range::VARCHAR), hash(range) / 1e10 FROM range({lo}, {hi})")
    with catalog.load_table(f"{namespace}.big").update_sort_order() as order:
        order.asc("v", IdentityTransform())
    table = catalog.load_table(f"{namespace}.big")
    shallow_clone(table_store(local_env), Identifier((namespace,), "big"), Identifier((namespace,), "sorted"))
    input_bytes = sum(f.file_size_in_bytes for f in data_files(table))
    assert input_bytes > 150e6 and len(data_files(table)) >= 5
    expected = con.execute(CHECKSUM.format(table=f"{namespace}.big")).fetchall()
    assert expected[0][0] == ROWS

    baseline = compact(local_env, f"{namespace}.big", "--dry-run")
    binpack = compact(local_env, f"{namespace}.big", "--strategy", "binpack", "--memory-limit", "64MB")
    sort = compact(local_env, f"{namespace}.sorted", "--strategy", "sort", "--memory-limit", "128MB")

    con = local_env.duckdb()
    for name in ("big", "sorted"):
        assert con.execute(CHECKSUM.format(table=f"{namespace}.{name}")).fetchall() == expected
        assert len(data_files(catalog.load_table(f"{namespace}.{name}"))) == 1
    # Neither process held the decoded rows, nor even the compressed input, beyond its baseline.
    assert binpack - baseline < input_bytes and sort - baseline < input_bytes, (baseline, binpack, sort, input_bytes)
    # The sorted output really is sorted: its row groups' ranges of v follow each other.
    (sorted_file,) = data_files(catalog.load_table(f"{namespace}.sorted"))
    metadata = pq.read_metadata(sorted_file.file_path.removeprefix("file://"))
    column = metadata.schema.names.index("v")
    stats = [metadata.row_group(n).column(column).statistics for n in range(metadata.num_row_groups)]
    ranges = [(s.min, s.max) for s in stats]
    assert metadata.num_row_groups > 10 and all(ranges[n][1] <= ranges[n + 1][0] for n in range(len(ranges) - 1))


def test_threads_fit_the_memory_limit() -> None:
    """A thread per 128 MB of the limit at most: more threads under a small limit fail instead of spilling."""
    limits = ("64MB", "128MB", "300MB", "2GB", "1 GiB")
    assert [threads_for(EngineOptions(memory_limit=m, threads=4)) for m in limits] == [1, 1, 2, 4, 4]
    assert memory_bytes("2GB") == 2 * 10**9 and memory_bytes("1.5 GiB") == 3 * 2**29
    with pytest.raises(ValueError):
        memory_bytes("lots")
