"""More writers means more throughput, not more conflicts: rebase and group commit, end to end.

Two replicas on one SeaweedFS bucket; writers that each build on the head they last saw (as
every Iceberg client does) and never retry, on tables that opted in to the server-side rebase
(``iceshelf.commit.rebase-appends=true``; the spec's default is a 409). Every append must land
exactly once, in one linear history with strictly increasing sequence numbers, timestamps that
never step back, and exact ``total-*`` summary fields.
"""

from __future__ import annotations

import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pyarrow as pa
import pytest
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.manifest import write_manifest_list

from bench.servers.iceshelf import start_iceshelf
from iceshelf.tables.objectstore.fileio import StoreFileIO
from iceshelf.tables.objectstore.s3 import S3Store
from tests.clients import CatalogEnv, unique_name

WRITERS, COMMITS = 16, 50
#: The opt-in these tests are about: without it a stale append is a 409, as the spec says.
REBASE = {"iceshelf.commit.rebase-appends": "true"}


@pytest.fixture
def replicas(s3_env: CatalogEnv, tmp_path):
    second = start_iceshelf(s3_env.warehouse, tmp_path, s3_env.s3_env())
    yield [s3_env.url, second.url]
    second.stop()


def empty_manifest_list(env: CatalogEnv, location: str, snapshot_id: int) -> str:
    """A real (empty) manifest list: each REST append below adds a snapshot without data files."""
    bucket, prefix = env.warehouse.removeprefix("s3://").split("/", 1)
    io_ = StoreFileIO(S3Store(bucket, prefix, env.seaweed.s3_settings()))
    path = f"{location}/metadata/snap-{snapshot_id}-{uuid.uuid4()}.avro"
    with write_manifest_list(2, io_.new_output(path), snapshot_id, None, 1, "deflate") as writer:
        writer.add_manifests([])
    return path


class RestAppender:
    """A client that appends by REST the way pyiceberg does: on its last seen head, no retries."""

    def __init__(self, url: str, namespace: str, table: str, manifest_list: str) -> None:
        self.http = httpx.Client(base_url=f"{url}/v1/default", timeout=120)
        self.path = f"/namespaces/{namespace}/tables/{table}"
        self.manifest_list = manifest_list
        self.seen(self.http.get(self.path).json()["metadata"])

    def seen(self, metadata: dict) -> None:
        self.head, self.sequence = metadata.get("current-snapshot-id"), metadata["last-sequence-number"]
        current = [s for s in metadata.get("snapshots", []) if s["snapshot-id"] == self.head]
        self.total = int(current[0]["summary"].get("total-records", 0)) if current else 0

    def change(self, records: int) -> dict:
        snapshot_id = random.getrandbits(62)
        snapshot = {
            "snapshot-id": snapshot_id,
            "parent-snapshot-id": self.head,
            "sequence-number": self.sequence + 1,  # right on the head it saw; the server rebases if stale
            "timestamp-ms": int(time.time() * 1000),  # the client's clock, when it built the append
            "manifest-list": self.manifest_list,
            "summary": {"operation": "append", "added-records": str(records), "total-records": str(self.total + records)},
            "schema-id": 0,
        }
        return {
            "requirements": [{"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": self.head}],
            "updates": [
                {"action": "add-snapshot", "snapshot": snapshot},
                {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": snapshot_id},
            ],
        }

    def append(self, records: int = 1) -> None:
        response = self.http.post(self.path, json=self.change(records))
        response.raise_for_status()
        self.seen(response.json()["metadata"])


def linear_history(metadata: dict) -> list[dict]:
    by_id = {s["snapshot-id"]: s for s in metadata.get("snapshots", [])}
    chain, current = [], by_id.get(metadata.get("current-snapshot-id"))
    while current is not None:
        chain.append(current)
        current = by_id.get(current.get("parent-snapshot-id"))
    return chain[::-1]


def test_sixteen_writers_and_transactions_on_two_replicas(s3_env: CatalogEnv, replicas: list[str]) -> None:
    namespace = unique_name()
    catalog = s3_env.catalog()
    catalog.create_namespace(namespace)
    schema = pa.schema([pa.field("id", pa.int64())])
    tables = {name: catalog.create_table(f"{namespace}.{name}", schema, properties=REBASE) for name in ("log", "left", "right")}
    lists = {name: empty_manifest_list(s3_env, t.metadata.location, 1) for name, t in tables.items()}
    transactions = 20

    def writer(i: int) -> int:
        client = RestAppender(replicas[i % 2], namespace, "log", lists["log"])
        for _ in range(COMMITS):
            client.append()
        return COMMITS

    def transactor() -> int:
        left = RestAppender(replicas[0], namespace, "left", lists["left"])
        right = RestAppender(replicas[1], namespace, "right", lists["right"])
        for _ in range(transactions):
            body = {"table-changes": [
                {"identifier": {"namespace": [namespace], "name": "left"}, **left.change(2)},
                {"identifier": {"namespace": [namespace], "name": "right"}, **right.change(3)},
            ]}
            left.http.post("/transactions/commit", json=body).raise_for_status()
            left.seen(left.http.get(left.path).json()["metadata"])
            right.seen(right.http.get(right.path).json()["metadata"])
        return transactions

    with ThreadPoolExecutor(WRITERS + 1) as pool:
        done = [pool.submit(writer, i) for i in range(WRITERS)] + [pool.submit(transactor)]
        assert sum(f.result() for f in done) == WRITERS * COMMITS + transactions

    for url in replicas:
        http = httpx.Client(base_url=f"{url}/v1/default", timeout=60)
        for name, expected_snapshots, per_commit in (("log", WRITERS * COMMITS, 1), ("left", transactions, 2), ("right", transactions, 3)):
            metadata = http.get(f"/namespaces/{namespace}/tables/{name}").json()["metadata"]
            chain = linear_history(metadata)
            assert len(metadata["snapshots"]) == len(chain) == expected_snapshots, name
            assert len({s["snapshot-id"] for s in chain}) == expected_snapshots
            sequence = [s["sequence-number"] for s in chain]
            assert sequence == sorted(set(sequence)), f"{name}: sequence numbers not strictly increasing"
            totals = [int(s["summary"]["total-records"]) for s in chain]
            assert totals == [per_commit * (k + 1) for k in range(expected_snapshots)], name
            stamps = [s["timestamp-ms"] for s in chain]
            assert stamps == sorted(stamps), f"{name}: a snapshot is older than its parent"
            log = [e["timestamp-ms"] for e in metadata["snapshot-log"]]
            assert log == sorted(log) and metadata["last-updated-ms"] >= log[-1], f"{name}: the snapshot log steps back"


def test_pyiceberg_and_duckdb_writers_lose_nothing(s3_env: CatalogEnv, replicas: list[str]) -> None:
    namespace = unique_name()
    catalog = s3_env.catalog()
    catalog.create_namespace(namespace)
    catalog.create_table(
        f"{namespace}.events", pa.schema([pa.field("writer", pa.int64()), pa.field("n", pa.int64())]), properties=REBASE
    )
    py_writers, duck_writers, appends = 16, 4, 3
    failures: list[BaseException] = []

    def py_writer(i: int) -> None:
        table = s3_env.catalog(url=replicas[i % 2]).load_table(f"{namespace}.events")  # default client settings
        for n in range(appends):
            try:
                table.append(pa.table({"writer": pa.array([i], pa.int64()), "n": pa.array([n], pa.int64())}))
            except Exception as err:  # counted, then asserted to be none
                failures.append(err)

    def duck_writer(i: int) -> None:
        con = s3_env.duckdb(url=replicas[i % 2])
        try:
            for n in range(appends):
                try:
                    con.execute(f"INSERT INTO lake.{namespace}.events VALUES ({100 + i}, {n})")
                except Exception as err:
                    failures.append(err)
        finally:
            con.close()

    with ThreadPoolExecutor(py_writers + duck_writers) as pool:
        jobs = [pool.submit(py_writer, i) for i in range(py_writers)] + [pool.submit(duck_writer, i) for i in range(duck_writers)]
        for job in jobs:
            job.result()
    assert failures == []

    table = catalog.load_table(f"{namespace}.events")
    expected = sorted([(w, n) for w in range(py_writers) for n in range(appends)] + [(100 + w, n) for w in range(duck_writers) for n in range(appends)])
    data = table.scan().to_arrow()
    assert sorted(zip(data["writer"].to_pylist(), data["n"].to_pylist())) == expected
    chain = linear_history({"snapshots": [s.model_dump(by_alias=True) for s in table.metadata.snapshots], "current-snapshot-id": table.metadata.current_snapshot_id})
    assert len(chain) == len(table.metadata.snapshots) == len(expected)
    # Time travel: every snapshot holds exactly the rows appended up to it.
    for k in (0, len(chain) // 2, len(chain) - 1):
        snapshot = chain[k]
        rows = table.scan(snapshot_id=snapshot["snapshot-id"]).to_arrow().num_rows
        assert rows == k + 1 == int(snapshot["summary"]["total-records"])


def test_concurrent_overwrite_still_conflicts(s3_env: CatalogEnv) -> None:
    namespace = unique_name()
    catalog = s3_env.catalog()
    catalog.create_namespace(namespace)
    stale = catalog.create_table(
        f"{namespace}.t", pa.schema([pa.field("id", pa.int64())]), properties={"commit.retry.num-retries": "0"}
    )
    stale.append(pa.table({"id": pa.array([1, 2], pa.int64())}))
    catalog.load_table(f"{namespace}.t").append(pa.table({"id": pa.array([3], pa.int64())}))  # moves the head
    with pytest.raises(CommitFailedException):
        stale.delete("id = 1")  # built on the old head, and not an append: still a conflict
    assert sorted(catalog.load_table(f"{namespace}.t").scan().to_arrow()["id"].to_pylist()) == [1, 2, 3]
