"""Maintenance over REST (S3 Tables' shape) and the scheduler, in ``iceshelf serve`` and as ``iceshelf maintenance``.

Scheduler tests get a warehouse of their own, so a pass over "every table" is a pass over the
test's tables only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pyarrow as pa
import pytest

from bench.servers.iceshelf import start_iceshelf
from bench.servers.seaweed import SeaweedServer
from tests.clients import CatalogEnv, unique_name

ROOT = Path(__file__).parents[1]
EXPIRE_EVERYTHING_OLD = {"history.expire.min-snapshots-to-keep": "1", "history.expire.max-snapshot-age-ms": "1"}


def table_url(env: CatalogEnv, namespace: str, table: str) -> str:
    return f"{env.url}/v1/default/namespaces/{namespace}/tables/{table}/maintenance"


def snapshot_config(minimum: int, hours: float) -> dict:
    return {
        "value": {
            "status": "enabled",
            "settings": {"icebergSnapshotManagement": {"minSnapshotsToKeep": minimum, "maxSnapshotAgeHours": hours}},
        }
    }


def orphan_config(status: str) -> dict:
    return {
        "value": {"status": status, "settings": {"icebergUnreferencedFileRemoval": {"unreferencedDays": 2, "nonCurrentDays": 1}}}
    }


def test_table_configuration_round_trips_in_s3_tables_shape(catalog_env: CatalogEnv, namespace: str) -> None:
    catalog = catalog_env.catalog()
    catalog.create_table(
        f"{namespace}.t", schema=pa.schema([("id", pa.int64())]), properties={"history.expire.max-snapshot-age-ms": "7200000"}
    )
    url = table_url(catalog_env, namespace, "t")

    shown = httpx.get(url).json()["configuration"]
    assert shown == {
        "icebergCompaction": {
            "status": "enabled",
            "settings": {"icebergCompaction": {"targetFileSizeMB": 512, "strategy": "auto"}},
        },
        "icebergSnapshotManagement": {
            "status": "enabled",
            "settings": {"icebergSnapshotManagement": {"minSnapshotsToKeep": 1, "maxSnapshotAgeHours": 2}},  # from the property
        },
    }
    assert httpx.put(f"{url}/icebergSnapshotManagement", json=snapshot_config(5, 48)).status_code == 200
    compaction = {"status": "disabled", "settings": {"icebergCompaction": {"targetFileSizeMB": 128, "strategy": "binpack"}}}
    assert (
        httpx.put(f"{url}/icebergCompaction", json={"value": compaction}).json()["configuration"]["icebergCompaction"]
        == compaction
    )

    catalog.rename_table(f"{namespace}.t", f"{namespace}.renamed")  # configuration follows the table, not its name
    shown = httpx.get(table_url(catalog_env, namespace, "renamed")).json()["configuration"]
    assert shown["icebergSnapshotManagement"] == snapshot_config(5, 48)["value"]
    assert shown["icebergCompaction"] == compaction

    jobs = httpx.get(f"{table_url(catalog_env, namespace, 'renamed')}/jobs").json()
    assert {job: s["status"] for job, s in jobs["status"].items()} == {
        "icebergCompaction": "Disabled",
        "icebergSnapshotManagement": "Not_Yet_Run",
        "icebergUnreferencedFileRemoval": "Not_Yet_Run",
    }
    assert jobs["history"] == []


BAD = [
    ("unknown type", "icebergZOrder", {"value": {}}, 400, "BadRequestException"),
    ("a warehouse type on a table", "icebergUnreferencedFileRemoval", orphan_config("enabled"), 400, "BadRequestException"),
    (
        "target below 64 MB",
        "icebergCompaction",
        {"value": {"settings": {"icebergCompaction": {"targetFileSizeMB": 1}}}},
        400,
        "BadRequestException",
    ),
    (
        "unknown strategy",
        "icebergCompaction",
        {"value": {"settings": {"icebergCompaction": {"strategy": "shuffle"}}}},
        400,
        "BadRequestException",
    ),
    ("unknown field", "icebergSnapshotManagement", {"value": {"status": "enabled", "retention": 3}}, 400, "BadRequestException"),
    ("no value", "icebergSnapshotManagement", {"status": "enabled"}, 400, "BadRequestException"),
]


@pytest.mark.parametrize("job, body, status, error", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_configuration_is_an_error_model_and_changes_nothing(
    catalog_env: CatalogEnv, namespace: str, job: str, body: dict, status: int, error: str
) -> None:
    catalog_env.catalog().create_table(f"{namespace}.t", schema=pa.schema([("id", pa.int64())]))
    before = httpx.get(table_url(catalog_env, namespace, "t")).json()
    answer = httpx.put(f"{table_url(catalog_env, namespace, 't')}/{job}", json=body)
    assert (answer.status_code, answer.json()["error"]["type"]) == (status, error)
    assert httpx.get(table_url(catalog_env, namespace, "t")).json() == before


def test_missing_table_is_404(catalog_env: CatalogEnv, namespace: str) -> None:
    answer = httpx.put(f"{table_url(catalog_env, namespace, 'nope')}/icebergSnapshotManagement", json=snapshot_config(1, 1))
    assert (answer.status_code, answer.json()["error"]["type"]) == (404, "NoSuchTableException")


# -- the scheduler, on a warehouse of its own ---------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def own_warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, SeaweedServer | None]:
    if request.param == "local":
        return str(tmp_path / "warehouse"), None
    seaweed: SeaweedServer = request.getfixturevalue("seaweed")
    return f"s3://{seaweed.create_bucket()}/warehouse", seaweed


@contextmanager
def serve(warehouse: tuple[str, SeaweedServer | None], log_dir: Path, **env: str) -> Iterator[CatalogEnv]:
    location, seaweed = warehouse
    environment = {**CatalogEnv("", None, location, seaweed).s3_env(), **env}  # type: ignore[arg-type]
    server = start_iceshelf(location, log_dir, environment)
    try:
        yield CatalogEnv("own", server, location, seaweed)
    finally:
        server.stop()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def job_states(env: CatalogEnv, namespace: str, table: str) -> dict:
    return httpx.get(f"{table_url(env, namespace, table)}/jobs").json()


def make_tables(env: CatalogEnv, namespace: str, names: list[str], snapshots: int, properties: dict[str, str]) -> None:
    """Tables of ``snapshots`` one-row appends; ``properties`` are set after the last one."""
    catalog = env.catalog()
    catalog.create_namespace(namespace)
    for name in names:
        table = catalog.create_table(f"{namespace}.{name}", schema=pa.schema([("id", pa.int64())]))
        for n in range(snapshots):
            table.append(pa.table({"id": [n]}))
        if properties:
            with table.transaction() as tx:
                tx.set_properties(properties)


def test_serve_runs_the_scheduler_and_reports_its_runs(own_warehouse: tuple, tmp_path: Path) -> None:
    with serve(own_warehouse, tmp_path, ICESHELF_MAINTENANCE="on", ICESHELF_MAINTENANCE_INTERVAL="0.5") as env:
        warehouse_url = f"{env.url}/v1/default/maintenance"
        assert httpx.put(f"{warehouse_url}/icebergUnreferencedFileRemoval", json=orphan_config("enabled")).status_code == 200
        assert httpx.get(warehouse_url).json()["configuration"] == {
            "icebergUnreferencedFileRemoval": orphan_config("enabled")["value"]
        }
        namespace = unique_name()
        make_tables(env, namespace, ["t"], 3, EXPIRE_EVERYTHING_OLD)

        done = lambda: all(  # noqa: E731
            s["status"] == "Successful"
            for job, s in job_states(env, namespace, "t")["status"].items()
            if job != "icebergCompaction"
        )
        wait_for(done, "snapshot expiry and orphan removal to run")

        jobs = job_states(env, namespace, "t")
        runs = {run["type"]: run for run in reversed(jobs["history"])}  # the newest of each type
        assert runs["icebergSnapshotManagement"]["detail"] == {"expiredSnapshots": 2}
        assert runs["icebergSnapshotManagement"]["filesIn"] == 2  # their manifest lists: the manifests are all still in use
        assert runs["icebergUnreferencedFileRemoval"]["detail"] == {"orphans": 0, "markedNoncurrent": 0}
        assert jobs["status"]["icebergCompaction"]["status"] == "Not_Yet_Run"  # three tiny files: nothing to compact
        table = env.catalog().load_table(f"{namespace}.t")
        assert len(table.metadata.snapshots) == 1 and sorted(table.scan().to_arrow()["id"].to_pylist()) == [0, 1, 2]

        assert (
            httpx.put(
                f"{table_url(env, namespace, 't')}/icebergSnapshotManagement", json={"value": {"status": "disabled"}}
            ).status_code
            == 200
        )
        assert job_states(env, namespace, "t")["status"]["icebergSnapshotManagement"]["status"] == "Disabled"


def start_scheduler(location: str, seaweed: SeaweedServer | None, log: Path) -> subprocess.Popen:
    env = {**CatalogEnv("", None, location, seaweed).s3_env(), "ICESHELF_LOG_LEVEL": "info"}  # type: ignore[arg-type]
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "iceshelf.catalog.cli", "maintenance", "--warehouse", location, "--interval", "0.2"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=ROOT,
        )


def test_two_schedulers_never_work_on_one_table_at_once(own_warehouse: tuple, tmp_path: Path) -> None:
    """Both schedulers are polling when the work becomes due on every table at once; it must then run
    exactly once per table. Both replicas see it due; a second run would mean the other one got in
    too -- concurrently without the lease, or after it without the re-check under the lease."""
    location, seaweed = own_warehouse
    names = [f"t{n}" for n in range(4)]
    with serve(own_warehouse, tmp_path) as env:
        namespace = unique_name()
        make_tables(env, namespace, names, 1, {})
        warehouse_url = f"{env.url}/v1/default/maintenance/icebergUnreferencedFileRemoval"
        assert httpx.put(warehouse_url, json=orphan_config("disabled")).status_code == 200
        for name in names:  # nothing due yet: snapshots are young, orphan removal is off
            assert (
                httpx.put(f"{table_url(env, namespace, name)}/icebergSnapshotManagement", json=snapshot_config(1, 1)).status_code
                == 200
            )
        logs = [tmp_path / f"scheduler-{n}.log" for n in range(2)]
        schedulers = [start_scheduler(location, seaweed, log) for log in logs]
        try:
            wait_for(
                lambda: all("scheduler" in log.read_text() and "started" in log.read_text() for log in logs), "both schedulers"
            )
            assert httpx.put(warehouse_url, json=orphan_config("enabled")).status_code == 200  # due everywhere at once

            every = lambda: all(
                job_states(env, namespace, n)["status"]["icebergUnreferencedFileRemoval"]["status"] == "Successful" for n in names
            )  # noqa: E731
            wait_for(every, "orphan removal on every table")
            time.sleep(1.0)  # several more passes of both schedulers: a duplicate run would show now
            assert all(p.poll() is None for p in schedulers), "a scheduler died"
        finally:
            for p in schedulers:
                p.terminate()
                p.wait(timeout=30)
        for name in names:
            history = job_states(env, namespace, name)["history"]
            assert [(run["type"], run["status"]) for run in history] == [("icebergUnreferencedFileRemoval", "Successful")], (
                history
            )
