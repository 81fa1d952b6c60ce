"""Two Iceshelf replicas on one SeaweedFS bucket: the pointer's compare-and-swap decides every race."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest

from bench.servers.iceshelf import start_iceshelf
from tests.clients import CatalogEnv, unique_name

WRITERS = 8
APPENDS_PER_WRITER = 6


@pytest.fixture
def second_replica(s3_env: CatalogEnv, tmp_path):
    server = start_iceshelf(s3_env.warehouse, tmp_path, s3_env.s3_env())
    yield server
    server.stop()


def test_appenders_on_two_replicas_land_exactly_once(s3_env: CatalogEnv, second_replica) -> None:
    namespace = unique_name()
    admin = s3_env.catalog()
    admin.create_namespace(namespace)
    schema = pa.schema([pa.field("writer", pa.int64()), pa.field("seq", pa.int64())])
    # pyiceberg's own retry loop (refresh + re-apply on 409), with room for 8-way contention.
    admin.create_table(f"{namespace}.log", schema, properties={"commit.retry.num-retries": "100", "commit.retry.max-wait-ms": "200"})
    urls = [s3_env.url, second_replica.url]

    def write(writer: int) -> int:
        table = s3_env.catalog(url=urls[writer % 2]).load_table(f"{namespace}.log")
        for seq in range(APPENDS_PER_WRITER):
            table.append(pa.table({"writer": pa.array([writer], pa.int64()), "seq": pa.array([seq], pa.int64())}))
        return writer

    with ThreadPoolExecutor(WRITERS) as pool:
        assert sorted(pool.map(write, range(WRITERS))) == list(range(WRITERS))

    for url in urls:  # both replicas see the same, complete history
        table = s3_env.catalog(url=url).load_table(f"{namespace}.log")
        snapshots = table.metadata.snapshots
        assert len(snapshots) == WRITERS * APPENDS_PER_WRITER
        assert len({s.snapshot_id for s in snapshots}) == len(snapshots)
        # One linear history: every snapshot but the first has its predecessor as parent.
        by_id = {s.snapshot_id: s for s in snapshots}
        chain, current = [], table.current_snapshot()
        while current is not None:
            chain.append(current)
            current = by_id.get(current.parent_snapshot_id) if current.parent_snapshot_id else None
        assert len(chain) == len(snapshots)
        data = table.scan().to_arrow()
        pairs = sorted(zip(data["writer"].to_pylist(), data["seq"].to_pylist()))
        assert pairs == [(w, s) for w in range(WRITERS) for s in range(APPENDS_PER_WRITER)]
