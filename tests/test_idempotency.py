"""``Idempotency-Key``: a retried request is never applied twice, on any replica."""

from __future__ import annotations

import uuid

import httpx
import pyarrow as pa
import pytest

from iceshelf.tables.objectstore import open_store
from iceshelf.tables.settings import S3Settings
from iceshelf.tables.state.idempotency import IdempotencyRecords
from tests.clients import CatalogEnv, unique_name


def http(env: CatalogEnv, url: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=f"{url or env.url}/v1/default", timeout=30)


def test_config_advertises_the_lifetime(catalog_env: CatalogEnv) -> None:
    assert httpx.get(f"{catalog_env.url}/v1/config").json()["idempotency-key-lifetime"] == "PT30M"


def test_retried_commit_is_applied_once_and_replayed(catalog_env: CatalogEnv, namespace: str) -> None:
    table = catalog_env.catalog().create_table(f"{namespace}.t", pa.schema([("id", pa.int64())]))
    key = str(uuid.uuid4())
    body = {"requirements": [], "updates": [{"action": "set-properties", "updates": {"runs": "1"}}]}
    with http(catalog_env) as client:
        first = client.post(f"/namespaces/{namespace}/tables/t", json=body, headers={"Idempotency-Key": key})
        again = client.post(f"/namespaces/{namespace}/tables/t", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 200
    assert first.json()["metadata-location"] == again.json()["metadata-location"]
    reloaded = catalog_env.catalog().load_table(f"{namespace}.t")
    assert len(reloaded.metadata.metadata_log) == len(table.metadata.metadata_log) + 1  # one new version, not two


def test_retry_on_the_other_replica_replays_and_409_is_final(s3_env: CatalogEnv, tmp_path) -> None:
    from bench.servers.iceshelf import running_iceshelf

    namespace = unique_name()
    key = str(uuid.uuid4())
    with running_iceshelf(s3_env.warehouse, tmp_path, s3_env.s3_env()) as other, http(s3_env) as first, http(
        s3_env, other.url
    ) as second:
        created = first.post("/namespaces", json={"namespace": [namespace]}, headers={"Idempotency-Key": key})
        replayed = second.post("/namespaces", json={"namespace": [namespace]}, headers={"Idempotency-Key": key})
        assert created.status_code == replayed.status_code == 200
        assert replayed.json() == created.json()
        # A deterministic 4xx is final too: the same key answers the same 409 again.
        conflict_key = str(uuid.uuid4())
        once = first.post("/namespaces", json={"namespace": [namespace]}, headers={"Idempotency-Key": conflict_key})
        twice = second.post("/namespaces", json={"namespace": [namespace]}, headers={"Idempotency-Key": conflict_key})
        assert once.status_code == twice.status_code == 409
        assert once.json() == twice.json()


def test_key_reused_for_another_request_is_refused(local_env: CatalogEnv) -> None:
    key = str(uuid.uuid4())
    with http(local_env) as client:
        assert client.post("/namespaces", json={"namespace": [unique_name()]}, headers={"Idempotency-Key": key}).status_code == 200
        other = client.post("/namespaces", json={"namespace": [unique_name()]}, headers={"Idempotency-Key": key})
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "BadRequestException"


def test_abandoned_request_is_taken_over_without_applying_twice(local_env: CatalogEnv, monkeypatch) -> None:
    """A runner that died after its commit landed: the retry finds the key in the pointer."""
    namespace = unique_name()
    catalog = local_env.catalog()
    catalog.create_namespace(namespace)
    catalog.create_table(f"{namespace}.t", pa.schema([("id", pa.int64())]))
    key = str(uuid.uuid4())
    body = {"requirements": [], "updates": [{"action": "set-properties", "updates": {"n": "1"}}]}
    with http(local_env) as client:
        assert client.post(f"/namespaces/{namespace}/tables/t", json=body, headers={"Idempotency-Key": key}).status_code == 200
        versions = len(catalog.load_table(f"{namespace}.t").metadata.metadata_log)
        # Make the finished record look like an abandoned in-progress one (its runner died).
        records = IdempotencyRecords(open_store(local_env.warehouse, S3Settings()))
        record = records.read(key)
        records.store.put(records.key(key), type(record)(record.fingerprint, "in-progress", 0).to_bytes())
        retried = client.post(f"/namespaces/{namespace}/tables/t", json=body, headers={"Idempotency-Key": key})
    assert retried.status_code == 200
    assert len(catalog.load_table(f"{namespace}.t").metadata.metadata_log) == versions


@pytest.mark.parametrize("tables", [2])
def test_retried_transaction_is_applied_once(catalog_env: CatalogEnv, namespace: str, tables: int) -> None:
    catalog = catalog_env.catalog()
    names = [f"t{i}" for i in range(tables)]
    for name in names:
        catalog.create_table(f"{namespace}.{name}", pa.schema([("id", pa.int64())]))
    before = {n: len(catalog.load_table(f"{namespace}.{n}").metadata.metadata_log) for n in names}
    body = {
        "table-changes": [
            {"identifier": {"namespace": [namespace], "name": n}, "requirements": [], "updates": [{"action": "set-properties", "updates": {"x": "1"}}]}
            for n in names
        ]
    }
    key = str(uuid.uuid4())
    with http(catalog_env) as client:
        assert client.post("/transactions/commit", json=body, headers={"Idempotency-Key": key}).status_code == 204
        assert client.post("/transactions/commit", json=body, headers={"Idempotency-Key": key}).status_code == 204
    after = {n: len(catalog.load_table(f"{namespace}.{n}").metadata.metadata_log) for n in names}
    assert after == {n: v + 1 for n, v in before.items()}
