"""Transport faults between Iceshelf and SeaweedFS: cut bodies, resets and stalls, injected by a TCP proxy.

Every fault is real: ``bench.servers.faultproxy`` sits on loopback between the S3 client and SeaweedFS
and cuts, resets or stalls real responses. First the store alone (``S3Store`` through the proxy), then
a replica whose every S3 request goes through it, driven by pyiceberg over HTTP; clients reach the
data files directly, so only the server's requests suffer. Compaction runs in-process on a table
store over the proxied S3 store, as a maintenance replica would.
"""

from __future__ import annotations

import dataclasses
import time
import uuid

import httpx
import pyarrow as pa
import pytest
from pyiceberg.exceptions import CommitFailedException, ServiceUnavailableError

from bench.servers.faultproxy import FaultProxy
from bench.servers.iceshelf import start_iceshelf
from iceshelf.compaction.rewrite.compact import compact_table
from iceshelf.tables.names import Identifier
from iceshelf.tables.objectstore import (
    CREATE,
    StoreConnectionLost,
    StoreTimeout,
    StoreUnavailable,
)
from iceshelf.tables.objectstore.s3 import S3Store
from iceshelf.tables.tablestore import TableStore
from tests.clients import CatalogEnv, unique_name
from tests.compaction_support import scanned_rows

#: The proxied replica's S3 budget: short, so a fault past it answers within seconds.
READ_TIMEOUT_S = 1.5
RETRY_BUDGET_S = 6.0
RETRY_ATTEMPTS = 3

SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("note", pa.string())])


@pytest.fixture(scope="module")
def proxy(seaweed):
    with FaultProxy(seaweed.endpoint_url) as running:
        yield running


@pytest.fixture(autouse=True)
def healed(proxy: FaultProxy):
    proxy.heal()
    proxy.injected.update(dict.fromkeys(proxy.injected, 0))
    yield
    proxy.heal()


@pytest.fixture(scope="module")
def faulty(s3_env: CatalogEnv, proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory):
    """A second replica on the session's S3 warehouse whose every store request goes through the proxy."""
    env = {
        **s3_env.s3_env(),
        "AWS_ENDPOINT_URL": proxy.url,
        "ICESHELF_S3_CONNECT_TIMEOUT": "2",
        "ICESHELF_S3_READ_TIMEOUT": str(READ_TIMEOUT_S),
        "ICESHELF_S3_RETRY_BUDGET": str(RETRY_BUDGET_S),
        "ICESHELF_S3_RETRY_ATTEMPTS": str(RETRY_ATTEMPTS),
    }
    server = start_iceshelf(s3_env.warehouse, tmp_path_factory.mktemp("faulty"), env)
    yield server
    server.stop()


def _settings(seaweed, proxy: FaultProxy):
    return dataclasses.replace(
        seaweed.s3_settings(), endpoint_url=proxy.url, read_timeout_s=READ_TIMEOUT_S, retry_budget_s=RETRY_BUDGET_S,
        retry_attempts=RETRY_ATTEMPTS,
    )


@pytest.fixture
def store(seaweed, proxy: FaultProxy):
    bucket = seaweed.create_bucket()
    through = S3Store(bucket, f"faults/{uuid.uuid4().hex}", _settings(seaweed, proxy))
    direct = S3Store(bucket, through.prefix, seaweed.s3_settings())
    yield through, direct
    through.close()
    direct.close()


def _client(s3_env: CatalogEnv, url: str):
    """pyiceberg on ``url``, reading and writing data files straight at SeaweedFS (not through the proxy)."""
    return s3_env.catalog(url=url, **{"s3.endpoint": s3_env.seaweed.endpoint_url})


# -- the store alone --------------------------------------------------------------------------------


BIG = bytes(range(256)) * 800  # 200 KiB: many reads, so a cut lands mid-body


@pytest.mark.parametrize("arm", ["cut", "reset", "stall"])
def test_one_fault_on_a_read_is_retried(store, proxy: FaultProxy, arm: str) -> None:
    through, direct = store
    direct.put("big", BIG)
    {"cut": lambda: proxy.cut(after=20_000), "reset": proxy.reset, "stall": lambda: proxy.stall(READ_TIMEOUT_S * 3)}[arm]()
    assert through.get("big").data == BIG
    assert proxy.injected[arm] >= 1 and proxy._armed is None  # the fault fired, once


@pytest.mark.parametrize(
    ("arm", "error"),
    [("cut", StoreConnectionLost), ("reset", StoreConnectionLost), ("stall", StoreTimeout)],
)
def test_a_persistent_fault_is_a_typed_error_within_the_budget(store, proxy: FaultProxy, arm: str, error) -> None:
    through, direct = store
    direct.put("big", BIG)
    {"cut": lambda: proxy.cut(after=20_000, times=None), "reset": lambda: proxy.reset(times=None),
     "stall": lambda: proxy.stall(RETRY_BUDGET_S * 2, times=None)}[arm]()
    started = time.monotonic()
    with pytest.raises(error) as info:
        through.get("big")
    assert time.monotonic() - started < RETRY_BUDGET_S + 3  # bounded: the budget plus one backoff and slack
    assert isinstance(info.value, StoreUnavailable) and info.value.retry_after_s > 0
    proxy.heal()
    assert through.get("big").data == BIG


def test_a_cut_response_to_a_conditional_write_is_not_retried(store, proxy: FaultProxy) -> None:
    """The Create landed; retrying it would meet itself and report a lost race. It must be a sent fault."""
    through, direct = store
    proxy.cut(after=0)
    with pytest.raises(StoreConnectionLost) as info:
        through.put("once", b"mine", CREATE)
    assert info.value.sent
    assert direct.get("once").data == b"mine"
    assert proxy.injected["cut"] == 1


# -- a replica through the proxy, over HTTP -------------------------------------------------------


def _big_table(s3_env: CatalogEnv, namespace: str) -> str:
    """A table whose metadata file is ~40 KB (large properties), created through the healthy replica."""
    name = f"{namespace}.{unique_name()}"
    _client(s3_env, s3_env.url).create_table(name, SCHEMA, properties={f"pad.{i}": "x" * 1000 for i in range(40)})
    return name


def test_a_cut_metadata_body_on_load_is_retried(s3_env: CatalogEnv, faulty, proxy: FaultProxy) -> None:
    namespace = unique_name()
    _client(s3_env, s3_env.url).create_namespace(namespace)
    name = _big_table(s3_env, namespace)
    proxy.cut(after=8_000)  # only the metadata file's response is that long: cut mid-body
    table = _client(s3_env, faulty.url).load_table(name)
    assert table.metadata.properties["pad.39"] == "x" * 1000
    assert proxy.injected["cut"] == 1 and proxy._armed is None


def test_a_load_past_the_budget_answers_503_with_retry_after(s3_env: CatalogEnv, faulty, proxy: FaultProxy) -> None:
    namespace = unique_name()
    _client(s3_env, s3_env.url).create_namespace(namespace)
    name = _big_table(s3_env, namespace)
    proxy.cut(after=8_000, times=None)
    response = httpx.get(f"{faulty.url}/v1/default/namespaces/{namespace}/tables/{name.split('.')[1]}",
                         headers={"X-Request-Id": "fault-test-1"}, timeout=60)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["type"] == "ServiceUnavailableException"
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["X-Request-Id"] == "fault-test-1"
    proxy.heal()
    assert _client(s3_env, faulty.url).load_table(name).metadata.properties["pad.0"] == "x" * 1000
    # One line for the failed request, naming it, its operation and the cause; no traceback at this level.
    lines = [line for line in faulty.log().splitlines() if "fault-test-1" in line]
    assert len(lines) == 1 and "loadTable" in lines[0] and "StoreConnectionLost" in lines[0], lines
    assert "Traceback" not in faulty.log() and "Exception in ASGI application" not in faulty.log()


@pytest.mark.parametrize("arm", ["cut", "reset"])
def test_commits_through_faults_are_clean_and_the_history_linear(s3_env: CatalogEnv, faulty, proxy: FaultProxy, arm: str) -> None:
    """A fault swept over every store request of a commit: each answer is a success, a 409 or a 503."""
    namespace = unique_name()
    _client(s3_env, s3_env.url).create_namespace(namespace)
    name = f"{namespace}.log"
    catalog = _client(s3_env, faulty.url)
    catalog.create_table(name, SCHEMA)
    acknowledged, outcomes = [], []
    for n, skip in enumerate(range(8)):
        table = catalog.load_table(name)
        proxy.cut(after=0, skip=skip) if arm == "cut" else proxy.reset(skip=skip)
        try:
            table.append(pa.table({"id": [n], "note": [f"{arm}-{skip}"]}, schema=SCHEMA))
            acknowledged.append(n)
            outcomes.append("ok")
        except (CommitFailedException, ServiceUnavailableError) as refused:  # 409, 503: nothing was applied
            outcomes.append(type(refused).__name__)
        proxy.heal()
    assert proxy.injected[arm] >= 3, outcomes  # the sweep did reach the commits' requests
    assert acknowledged, outcomes

    table = _client(s3_env, s3_env.url).load_table(name)
    assert sorted(table.scan().to_arrow()["id"].to_pylist()) == acknowledged
    snapshots = table.metadata.snapshots
    assert len(snapshots) == len(acknowledged)
    by_id, chain, current = {s.snapshot_id: s for s in snapshots}, 0, table.current_snapshot()
    while current is not None:
        chain += 1
        current = by_id.get(current.parent_snapshot_id) if current.parent_snapshot_id else None
    assert chain == len(snapshots)
    assert "Internal server error" not in faulty.log() and "Exception in ASGI application" not in faulty.log()


def test_compaction_through_faults_keeps_the_table_readable_and_exact(s3_env: CatalogEnv, seaweed, proxy: FaultProxy) -> None:
    namespace = unique_name()
    catalog = _client(s3_env, s3_env.url)
    catalog.create_namespace(namespace)
    name = f"{namespace}.events"
    catalog.create_table(name, SCHEMA)
    bucket, _, prefix = s3_env.warehouse.removeprefix("s3://").partition("/")
    tables = TableStore("default", S3Store(bucket, prefix, _settings(seaweed, proxy)))
    expected: list[int] = []
    outcomes = []
    try:
        for round_, skip in enumerate(range(0, 24, 3)):
            for k in range(3):  # small files to compact
                ids = list(range(round_ * 100 + k * 10, round_ * 100 + k * 10 + 10))
                catalog.load_table(name).append(pa.table({"id": ids, "note": ["n"] * len(ids)}, schema=SCHEMA))
                expected += ids
            proxy.cut(after=0, skip=skip) if round_ % 2 else proxy.reset(skip=skip)
            try:
                compact_table(tables, Identifier((namespace,), "events"))
                outcomes.append("ok")
            except (StoreUnavailable, CommitFailedException) as err:
                outcomes.append(type(err).__name__)
            proxy.heal()
            table = catalog.load_table(name)
            assert sorted(scanned_rows(table).elements()) == sorted((i, "n") for i in expected), outcomes
    finally:
        tables.objects.close()
    assert proxy.injected["cut"] + proxy.injected["reset"] >= 4, outcomes
    assert "ok" in outcomes, outcomes
    con = s3_env.duckdb()
    try:
        assert con.sql(f"SELECT count(*), count(DISTINCT id) FROM lake.{name}").fetchone() == (len(expected), len(expected))
    finally:
        con.close()
