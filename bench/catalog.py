"""Catalog benchmarks: Iceshelf against the object-store floor and SeaweedFS's own Iceberg catalog.

One run starts one throwaway SeaweedFS (``weed mini`` with its Iceberg REST catalog enabled) on
loopback and, against it, side by side:

``iceshelf_s3``
    Iceshelf serving an ``s3://bucket/prefix`` warehouse on that SeaweedFS.
``object_store_floor``
    The floor any catalog on that store pays: a plain HTTP GET (PUT for commits) of a
    metadata-sized object, through a presigned URL with the same httpx client the catalog
    rows use, so client overhead is the same. ``object_store_floor_botocore`` is the same
    operation through a signing botocore client.
``seaweedfs_catalog``
    SeaweedFS's Iceberg REST catalog on the same process and disks. It serves S3 *table
    buckets*: the bucket is created with the S3 Tables API (``CreateTableBucket``, here through
    botocore's ``s3tables`` client at the S3 endpoint), the bucket name is the REST prefix
    (pyiceberg ``warehouse=<bucket>``; ``s3://<bucket>`` and the table bucket ARN work too), and
    requests are authenticated by OAuth2 client credentials (access key : secret key) at
    ``/v1/oauth/tokens`` (SigV4 works too, but pyiceberg's SigV4 needs boto3).
``iceshelf_local``
    Iceshelf on a local-filesystem warehouse, an extra row.

Benchmarks (each system's samples are taken in ``rounds`` turns, the systems alternating, so that
background load on a shared machine does not land on one system only):

``load_table_latency``
    One client, N sequential ``GET /v1/{prefix}/namespaces/bench/tables/load_t`` with httpx
    (a table with a few snapshots); p50/p99.
``load_table_throughput``
    The same GET from ``threads`` client threads, each with its own connection, for a fixed
    time; loads/s (client and servers share the machine's cores: this is a same-box figure).
``commit_latency``
    Sequential pyiceberg ``table.append`` of a one-row arrow table; p50/p99 of the whole append
    and of the catalog's ``commit_table`` REST call inside it (``rest_commit_*``). The floor row
    is a PUT of a metadata-sized object, the least a commit has to write. Every append adds a
    snapshot (and a manifest to the manifest list), so later appends are a little heavier: the
    same for every system.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import httpx

from bench.harness import MakeOp, interleaved_latency, interleaved_throughput, summarize

NAMESPACE = "bench"
LOAD_TABLE = "load_t"
COMMIT_TABLE = "commit_t"
SEAWEED_TABLE_BUCKET = "benchcat"
ICESHELF_BUCKET = "iceshelf-bench"
FLOOR_BUCKET = "floor-bench"

SYSTEMS = ("iceshelf_s3", "object_store_floor", "object_store_floor_botocore", "seaweedfs_catalog", "iceshelf_local")


@dataclass
class BenchConfig:
    loads: int = 1000
    warmup: int = 50
    threads: int = 8
    throughput_seconds: float = 5.0
    commits: int = 100
    commit_warmup: int = 2
    snapshots: int = 5
    #: Systems take turns in this many rounds, so background load falls on all of them alike.
    rounds: int = 5

    @classmethod
    def quick(cls) -> "BenchConfig":
        return cls(loads=30, warmup=3, threads=8, throughput_seconds=0.6, commits=4, commit_warmup=1, snapshots=2, rounds=2)


@dataclass
class Results:
    benchmarks: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def record(self, benchmark: str, system: str, numbers: dict) -> None:
        self.benchmarks.setdefault(benchmark, {})[system] = numbers

    def on_error(self, benchmark: str) -> Callable[[str, BaseException], None]:
        """A failed system becomes a note instead of ending the run; the other rows still run."""

        def note(system: str, exc: BaseException) -> None:
            self.notes.append(f"{benchmark}/{system} failed: {type(exc).__name__}: {exc}"[:600])
            print(f"  ! {benchmark}/{system} failed: {exc!r}"[:300], file=sys.stderr)

        return note


# --------------------------------------------------------------------------- the systems


@dataclass
class CatalogTarget:
    """A REST catalog under test: where it is and how a plain HTTP client and pyiceberg reach it."""

    name: str
    uri: str
    prefix: str
    headers: dict[str, str]
    pyiceberg_props: dict[str, str]

    def table_path(self, table: str) -> str:
        return f"/v1/{self.prefix}/namespaces/{NAMESPACE}/tables/{table}"

    def catalog(self):
        from pyiceberg.catalog import load_catalog

        return load_catalog(self.name, **{"type": "rest", "uri": self.uri, **self.pyiceberg_props})


def _s3_props(seaweed) -> dict[str, str]:
    return {
        "s3.endpoint": seaweed.endpoint_url,
        "s3.access-key-id": seaweed.access_key,
        "s3.secret-access-key": seaweed.secret_key,
        "s3.region": seaweed.region,
    }


def s3_env(seaweed) -> dict[str, str]:
    """The environment an Iceshelf server needs to serve an ``s3://`` warehouse on ``seaweed``."""
    return {
        "AWS_ENDPOINT_URL": seaweed.endpoint_url,
        "AWS_ACCESS_KEY_ID": seaweed.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
        "AWS_REGION": seaweed.region,
    }


def iceshelf_client_props(seaweed) -> dict[str, str]:
    """What a pyiceberg client of an Iceshelf S3 warehouse brings: only the keys (the catalog's
    ``/v1/config`` names the endpoint, region and path style)."""
    return {"s3.access-key-id": seaweed.access_key, "s3.secret-access-key": seaweed.secret_key}


def iceshelf_target(name: str, url: str, client_props: dict[str, str]) -> CatalogTarget:
    config = httpx.get(f"{url}/v1/config", timeout=10).raise_for_status().json()
    prefix = config.get("overrides", {}).get("prefix", "default")
    return CatalogTarget(name, url, prefix, {}, client_props)


def create_table_bucket(seaweed, name: str) -> str:
    """An S3 Tables bucket (one SeaweedFS Iceberg catalog), via the S3 Tables API on the S3 port."""
    import botocore.session

    client = botocore.session.get_session().create_client(
        "s3tables",
        endpoint_url=seaweed.endpoint_url,
        region_name=seaweed.region,
        aws_access_key_id=seaweed.access_key,
        aws_secret_access_key=seaweed.secret_key,
    )
    try:
        try:
            return client.create_table_bucket(name=name)["arn"]
        except client.exceptions.ConflictException:
            pass
        except Exception as exc:  # SeaweedFS answers BucketAlreadyExists, not in botocore's model
            if "AlreadyExists" not in str(exc):
                raise
        for bucket in client.list_table_buckets()["tableBuckets"]:
            if bucket["name"] == name:
                return bucket["arn"]
        raise RuntimeError(f"table bucket {name} neither created nor listed")
    finally:
        client.close()


def seaweed_catalog_target(seaweed, bucket: str) -> CatalogTarget:
    uri = seaweed.iceberg_url
    token = (
        httpx.post(
            f"{uri}/v1/oauth/tokens",
            data={
                "grant_type": "client_credentials",
                "client_id": seaweed.access_key,
                "client_secret": seaweed.secret_key,
                "scope": "PRINCIPAL_ROLE:ALL",
            },
            timeout=10,
        )
        .raise_for_status()
        .json()["access_token"]
    )
    config = httpx.get(f"{uri}/v1/config", params={"warehouse": bucket}, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    prefix = config.raise_for_status().json().get("overrides", {}).get("prefix", bucket)
    props = {
        "warehouse": bucket,
        "credential": f"{seaweed.access_key}:{seaweed.secret_key}",
        "oauth2-server-uri": f"{uri}/v1/oauth/tokens",
        "scope": "PRINCIPAL_ROLE:ALL",
        # SeaweedFS's /v1/config advertises no storage settings: the client brings them.
        **_s3_props(seaweed),
    }
    return CatalogTarget("seaweedfs_catalog", uri, prefix, {"Authorization": f"Bearer {token}"}, props)


def seaweedfs_catalog(seaweed, bucket: str = SEAWEED_TABLE_BUCKET) -> tuple[CatalogTarget, dict]:
    """SeaweedFS's own Iceberg catalog on ``seaweed``, serving table bucket ``bucket`` (created here),
    and the setup facts a report records about it."""
    arn = create_table_bucket(seaweed, bucket)
    target = seaweed_catalog_target(seaweed, bucket)
    return target, {
        "table_bucket": bucket,
        "table_bucket_arn": arn,
        "warehouse": bucket,
        "prefix": target.prefix,
        "bucket_created_with": "S3 Tables CreateTableBucket (botocore 's3tables' client) at the S3 endpoint",
        "auth": "OAuth2 client_credentials at /v1/oauth/tokens (client_id=access key, client_secret=secret key)",
    }


def bench_schema():
    """The two-column schema of every benchmark table (``_one_row`` rows)."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField, StringType

    return Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "payload", StringType(), required=False),
    )


def _one_row(i: int):
    import pyarrow as pa

    return pa.table({"id": pa.array([i], pa.int64()), "payload": pa.array([f"row-{i}"], pa.string())})


def prepare_tables(target: CatalogTarget, snapshots: int) -> dict:
    """``bench.load_t`` with ``snapshots`` one-row appends and an empty ``bench.commit_t``."""
    from pyiceberg.exceptions import NoSuchTableError

    catalog = target.catalog()
    catalog.create_namespace_if_not_exists(NAMESPACE)
    schema = bench_schema()
    for name in (LOAD_TABLE, COMMIT_TABLE):
        try:
            catalog.drop_table(f"{NAMESPACE}.{name}")
        except NoSuchTableError:
            pass
    table = catalog.create_table(f"{NAMESPACE}.{LOAD_TABLE}", schema)
    for i in range(snapshots):
        table.append(_one_row(i))
    catalog.create_table(f"{NAMESPACE}.{COMMIT_TABLE}", schema)
    response = httpx.get(target.uri + target.table_path(LOAD_TABLE), headers=target.headers, timeout=30).raise_for_status()
    body = response.json()
    return {
        "metadata_location": body["metadata-location"],
        "snapshots": len(body["metadata"].get("snapshots", [])),
        "load_response_bytes": len(response.content),
    }


def _http_get_op(base: str, path: str, headers: dict[str, str]):
    client = httpx.Client(base_url=base, headers=headers, timeout=30)

    def op() -> None:
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")

    return op, client.close


def load_table_op(target: CatalogTarget):
    """A plain httpx GET of the loadTable endpoint, on one kept-alive connection."""
    return _http_get_op(target.uri, target.table_path(LOAD_TABLE), target.headers)


class CommitSeries:
    """One-row pyiceberg appends to ``bench.commit_t``, timing the catalog REST call inside each."""

    def __init__(self, target: CatalogTarget) -> None:
        self.catalog = target.catalog()
        self.table = self.catalog.load_table(f"{NAMESPACE}.{COMMIT_TABLE}")
        self.rest_calls: list[float] = []
        self.appends = 0
        commit_table = self.catalog.commit_table

        def timed_commit_table(*args, **kwargs):
            start = time.perf_counter()
            try:
                return commit_table(*args, **kwargs)
            finally:
                self.rest_calls.append(time.perf_counter() - start)

        self.catalog.commit_table = timed_commit_table  # Table._do_commit calls self.catalog.commit_table

    def op(self) -> None:
        self.table.append(_one_row(self.appends))
        self.appends += 1

    def close(self) -> None:
        pass

    def check(self) -> int:
        snapshots = len(self.catalog.load_table(f"{NAMESPACE}.{COMMIT_TABLE}").metadata.snapshots)
        if snapshots != self.appends:
            raise RuntimeError(f"{snapshots} snapshots after {self.appends} appends")
        return snapshots


# --------------------------------------------------------------------------- the floor


class Floor:
    """Plain object GET/PUT on the same SeaweedFS, of an object the size of a table's metadata file."""

    def __init__(self, seaweed, metadata_location: str) -> None:
        self.seaweed = seaweed
        self.s3 = seaweed.client()
        bucket, _, key = metadata_location.removeprefix("s3://").partition("/")
        self.get_bucket, self.get_key = bucket, key
        self.body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        self.put_bucket, self.put_key = FLOOR_BUCKET, "floor/metadata.json"
        seaweed.create_bucket(FLOOR_BUCKET)
        self.get_url = self.s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=6 * 3600)
        self.put_url = self.s3.generate_presigned_url(
            "put_object", Params={"Bucket": self.put_bucket, "Key": self.put_key}, ExpiresIn=6 * 3600
        )

    @property
    def size(self) -> int:
        return len(self.body)

    def http_get_op(self):
        client = httpx.Client(timeout=30)

        def op() -> None:
            response = client.get(self.get_url)
            if response.status_code != 200 or len(response.content) != self.size:
                raise RuntimeError(f"floor GET: {response.status_code} {response.text[:200]}")

        return op, client.close

    def http_put_op(self):
        client = httpx.Client(timeout=30)

        def op() -> None:
            response = client.put(self.put_url, content=self.body)
            if response.status_code != 200:
                raise RuntimeError(f"floor PUT: {response.status_code} {response.text[:200]}")

        return op, client.close

    def botocore_get_op(self):
        client = self.seaweed.client()

        def op() -> None:
            client.get_object(Bucket=self.get_bucket, Key=self.get_key)["Body"].read()

        return op, client.close

    def botocore_put_op(self):
        client = self.seaweed.client()

        def op() -> None:
            client.put_object(Bucket=self.put_bucket, Key=self.put_key, Body=self.body)

        return op, client.close

    def close(self) -> None:
        self.s3.close()


# --------------------------------------------------------------------------- ratios and report


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def add_ratios(benchmarks: dict) -> None:
    def get(bench: str, system: str, key: str) -> float | None:
        return benchmarks.get(bench, {}).get(system, {}).get(key)

    lat = "load_table_latency"
    if lat in benchmarks:
        benchmarks[lat]["ratios"] = _clean(
            {
                "iceshelf_over_floor_p50": _ratio(get(lat, "iceshelf_s3", "p50_ms"), get(lat, "object_store_floor", "p50_ms")),
                "iceshelf_over_floor_p99": _ratio(get(lat, "iceshelf_s3", "p99_ms"), get(lat, "object_store_floor", "p99_ms")),
                "iceshelf_over_floor_botocore_p50": _ratio(
                    get(lat, "iceshelf_s3", "p50_ms"), get(lat, "object_store_floor_botocore", "p50_ms")
                ),
                "iceshelf_over_seaweedfs_p50": _ratio(get(lat, "iceshelf_s3", "p50_ms"), get(lat, "seaweedfs_catalog", "p50_ms")),
                "iceshelf_over_seaweedfs_p99": _ratio(get(lat, "iceshelf_s3", "p99_ms"), get(lat, "seaweedfs_catalog", "p99_ms")),
                "iceshelf_local_over_iceshelf_s3_p50": _ratio(get(lat, "iceshelf_local", "p50_ms"), get(lat, "iceshelf_s3", "p50_ms")),
            }
        )
    thr = "load_table_throughput"
    if thr in benchmarks:
        benchmarks[thr]["ratios"] = _clean(
            {
                "seaweedfs_over_iceshelf": _ratio(get(thr, "seaweedfs_catalog", "ops_per_s"), get(thr, "iceshelf_s3", "ops_per_s")),
                "iceshelf_over_floor": _ratio(get(thr, "iceshelf_s3", "ops_per_s"), get(thr, "object_store_floor", "ops_per_s")),
                "iceshelf_local_over_iceshelf_s3": _ratio(get(thr, "iceshelf_local", "ops_per_s"), get(thr, "iceshelf_s3", "ops_per_s")),
            }
        )
    com = "commit_latency"
    if com in benchmarks:
        benchmarks[com]["ratios"] = _clean(
            {
                "iceshelf_over_seaweedfs_p50": _ratio(get(com, "iceshelf_s3", "p50_ms"), get(com, "seaweedfs_catalog", "p50_ms")),
                "iceshelf_over_seaweedfs_p99": _ratio(get(com, "iceshelf_s3", "p99_ms"), get(com, "seaweedfs_catalog", "p99_ms")),
                "iceshelf_rest_over_seaweedfs_rest_p50": _ratio(
                    get(com, "iceshelf_s3", "rest_commit_p50_ms"), get(com, "seaweedfs_catalog", "rest_commit_p50_ms")
                ),
                "iceshelf_rest_over_seaweedfs_rest_p99": _ratio(
                    get(com, "iceshelf_s3", "rest_commit_p99_ms"), get(com, "seaweedfs_catalog", "rest_commit_p99_ms")
                ),
                "iceshelf_rest_over_floor_put_p50": _ratio(
                    get(com, "iceshelf_s3", "rest_commit_p50_ms"), get(com, "object_store_floor", "p50_ms")
                ),
                "iceshelf_rest_over_floor_put_p99": _ratio(
                    get(com, "iceshelf_s3", "rest_commit_p99_ms"), get(com, "object_store_floor", "p99_ms")
                ),
            }
        )


def _clean(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def machine_info() -> dict:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = os.cpu_count()
    info = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        info["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover
        pass
    try:
        from importlib.metadata import version

        for package in ("pyiceberg", "httpx", "botocore", "pyarrow"):
            info[package] = version(package)
    except Exception:  # noqa: BLE001
        pass
    try:
        from bench.servers.seaweed import weed_binary

        out = subprocess.run([weed_binary(), "version"], capture_output=True, text=True, timeout=20).stdout
        info["seaweedfs"] = out.split("\n", 1)[0].removeprefix("version ").strip()
    except Exception:  # noqa: BLE001
        pass
    return info


def summary_table(report: dict) -> str:
    b = report["benchmarks"]
    lines = []
    header = f"{'benchmark':<26} {'system':<28} {'p50 ms':>9} {'p99 ms':>9} {'ops/s':>9}"
    lines += [header, "-" * len(header)]

    def row(bench: str, system: str, p50: str, p99: str, ops: str = "") -> None:
        lines.append(f"{bench:<26} {system:<28} {p50:>9} {p99:>9} {ops:>9}")

    for system, numbers in b.get("load_table_latency", {}).items():
        if system != "ratios":
            row("loadTable (1 client)", system, f"{numbers['p50_ms']:.2f}", f"{numbers['p99_ms']:.2f}")
    for system, numbers in b.get("load_table_throughput", {}).items():
        if system != "ratios":
            row(
                f"loadTable ({numbers['threads']} threads)",
                system,
                f"{numbers['p50_ms_under_load']:.2f}",
                f"{numbers['p99_ms_under_load']:.2f}",
                f"{numbers['ops_per_s']:.0f}",
            )
    for system, numbers in b.get("commit_latency", {}).items():
        if system == "ratios":
            continue
        label = "commit: PUT metadata obj" if system.startswith("object_store_floor") else "commit: pyiceberg append"
        row(label, system, f"{numbers['p50_ms']:.2f}", f"{numbers['p99_ms']:.2f}")
        if "rest_commit_p50_ms" in numbers:
            row("commit: REST call only", system, f"{numbers['rest_commit_p50_ms']:.2f}", f"{numbers['rest_commit_p99_ms']:.2f}")
    lines.append("")
    lines.append("ratios:")
    for bench in ("load_table_latency", "load_table_throughput", "commit_latency"):
        for name, value in b.get(bench, {}).get("ratios", {}).items():
            lines.append(f"  {bench}.{name} = {value}")
    for note in report.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the run


def bench_seaweed(stack: ExitStack, workdir: Path, bucket: str = ICESHELF_BUCKET):
    """SeaweedFS with its Iceberg catalog on (stopped with ``stack``), Iceshelf's ``bucket`` created,
    and the directory the servers log to: what every benchmark against the peer catalog starts from."""
    from bench.servers.seaweed import start_seaweed

    seaweed = stack.enter_context(start_seaweed(workdir / "seaweed", iceberg=True))
    seaweed.create_bucket(bucket)
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return seaweed, logs


def run(cfg: BenchConfig, workdir: Path, log=print) -> dict:
    from bench.servers.iceshelf import running_iceshelf

    warnings.filterwarnings("ignore")
    results = Results()
    loadavg_start = round(os.getloadavg()[0], 2)
    started = time.perf_counter()
    setup: dict = {}
    with ExitStack() as stack:
        log("starting SeaweedFS (weed mini, Iceberg catalog on)...")
        seaweed, logs = bench_seaweed(stack, workdir)
        log("starting Iceshelf (S3 warehouse, local warehouse)...")
        iceshelf_s3 = stack.enter_context(running_iceshelf(f"s3://{ICESHELF_BUCKET}/warehouse", logs, s3_env(seaweed)))
        local_dir = workdir / "local-warehouse"
        local_dir.mkdir(parents=True, exist_ok=True)
        iceshelf_local = stack.enter_context(running_iceshelf(str(local_dir), logs))

        client_s3 = iceshelf_client_props(seaweed)
        targets: dict[str, CatalogTarget] = {
            "iceshelf_s3": iceshelf_target("iceshelf_s3", iceshelf_s3.url, client_s3),
            "iceshelf_local": iceshelf_target("iceshelf_local", iceshelf_local.url, {}),
        }
        try:
            targets["seaweedfs_catalog"], setup["seaweedfs_catalog"] = seaweedfs_catalog(seaweed, SEAWEED_TABLE_BUCKET)
        except Exception as exc:  # noqa: BLE001
            results.notes.append(f"seaweedfs_catalog setup failed: {type(exc).__name__}: {exc}"[:600])

        log(f"creating tables ({cfg.snapshots} snapshots each)...")
        for name in list(targets):
            try:
                setup[name] = {**setup.get(name, {}), **prepare_tables(targets[name], cfg.snapshots)}
            except Exception as exc:  # noqa: BLE001
                results.notes.append(f"{name} table setup failed: {type(exc).__name__}: {exc}"[:600])
                del targets[name]

        floor = None
        if "iceshelf_s3" in targets:
            floor = stack.enter_context(_closing(Floor(seaweed, setup["iceshelf_s3"]["metadata_location"])))
            setup["object_store_floor"] = {"object_bytes": floor.size, "object": f"s3://{floor.get_bucket}/{floor.get_key}"}

        order = [n for n in ("iceshelf_s3", "seaweedfs_catalog", "iceshelf_local") if n in targets]
        get_makers: dict[str, MakeOp] = {}
        put_makers: dict[str, MakeOp] = {}
        if floor:
            get_makers = {"object_store_floor": floor.http_get_op, "object_store_floor_botocore": floor.botocore_get_op}
            put_makers = {"object_store_floor": floor.http_put_op, "object_store_floor_botocore": floor.botocore_put_op}
        load_makers = {**get_makers, **{name: (lambda t=targets[name]: load_table_op(t)) for name in order}}

        bench = "load_table_latency"
        log(f"loadTable latency ({cfg.loads} sequential GETs per system, {cfg.rounds} interleaved rounds)...")
        samples = interleaved_latency(load_makers, cfg.loads, cfg.warmup, cfg.rounds, results.on_error(bench))
        for name, durations in samples.items():
            results.record(bench, name, summarize(durations))

        bench = "load_table_throughput"
        log(f"loadTable throughput ({cfg.threads} threads, {cfg.throughput_seconds}s per system)...")
        load_makers.pop("object_store_floor_botocore", None)
        for name, numbers in interleaved_throughput(
            load_makers, cfg.threads, cfg.throughput_seconds, cfg.rounds, results.on_error(bench)
        ).items():
            results.record(bench, name, numbers)

        bench = "commit_latency"
        log(f"commit latency ({cfg.commits} sequential one-row appends per system)...")
        series: dict[str, CommitSeries] = {}
        commit_makers: dict[str, MakeOp] = dict(put_makers)
        for name in order:

            def make(name: str = name):
                series[name] = CommitSeries(targets[name])
                return series[name].op, series[name].close

            commit_makers[name] = make
        samples = interleaved_latency(commit_makers, cfg.commits, cfg.commit_warmup, cfg.rounds, results.on_error(bench))
        for name, durations in samples.items():
            numbers = summarize(durations)
            if name in series:
                try:
                    numbers["snapshots_after"] = series[name].check()
                except Exception as exc:  # noqa: BLE001
                    results.on_error(bench)(name, exc)
                    continue
                rest = summarize(series[name].rest_calls[cfg.commit_warmup :])
                numbers.update({f"rest_commit_{k}": v for k, v in rest.items() if k != "samples"})
            results.record(bench, name, numbers)

        for server, name in ((iceshelf_s3, "iceshelf_s3"), (iceshelf_local, "iceshelf_local")):
            if server.process.poll() is not None:
                results.notes.append(f"{name} server exited during the run: {server.log()[-400:]}")
        if not seaweed.alive():
            results.notes.append("SeaweedFS exited during the run")

    add_ratios(results.benchmarks)
    return {
        "machine": {**machine_info(), "loadavg_1m_at_start": loadavg_start},
        "config": asdict(cfg),
        "setup": setup,
        "benchmarks": results.benchmarks,
        "notes": results.notes,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


class _closing:
    def __init__(self, thing) -> None:
        self.thing = thing

    def __enter__(self):
        return self.thing

    def __exit__(self, *exc) -> None:
        self.thing.close()


def run_to_file(cfg: BenchConfig, out: Path, workdir: Path | None = None, keep: bool = False) -> dict:
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="iceshelf-bench-")) if own else workdir
    try:
        report = run(cfg, workdir, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    finally:
        if own and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report
