"""The systems the benchmarks measure, and how a benchmark reaches each one.

Every comparison runs on one throwaway SeaweedFS (``seaweed_for_run``), so the systems share the
process and the disks and differ only in what is measured:

* Iceshelf, on an ``s3://`` warehouse in that SeaweedFS (``iceshelf_on_s3``) or on a local one;
* SeaweedFS's own Iceberg REST catalog, a table bucket on the same SeaweedFS (``seaweedfs_catalog``);
* the object-store floor: plain GETs and PUTs of a metadata-sized object (``Floor``), the least
  any catalog on that store pays.

A REST catalog is a ``CatalogTarget``: what a plain HTTP client and pyiceberg need to reach it.
DuckDB reaches an Iceshelf catalog through ``duckdb_connection``.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from bench.harness import Close, Op
from bench.report import Results
from bench.servers.iceshelf import IceshelfServer, running_iceshelf
from bench.servers.seaweed import SeaweedServer, start_seaweed

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from duckdb import DuckDBPyConnection
    from pyiceberg.catalog import Catalog

    from iceshelf.tables.settings import S3Settings

#: The floor's PUTs go here, never into a catalog's bucket.
FLOOR_BUCKET = "floor-bench"


@dataclass
class CatalogTarget:
    """A REST catalog under test: where it is and how a plain HTTP client and pyiceberg reach it."""

    name: str
    uri: str
    prefix: str
    headers: dict[str, str]
    pyiceberg_props: dict[str, str]

    def table_path(self, namespace: str, table: str) -> str:
        """The loadTable path of ``namespace.table``, below ``uri``."""
        return f"/v1/{self.prefix}/namespaces/{namespace}/tables/{table}"

    def catalog(self) -> Catalog:
        from pyiceberg.catalog import load_catalog

        return load_catalog(self.name, **{"type": "rest", "uri": self.uri, **self.pyiceberg_props})


def seaweed_for_run(stack: ExitStack, workdir: Path, bucket: str, *, iceberg: bool = True) -> tuple[SeaweedServer, Path]:
    """SeaweedFS (with its Iceberg catalog on, unless ``iceberg`` is false; stopped with ``stack``),
    Iceshelf's ``bucket`` created, and the directory the servers log to: what every benchmark on
    SeaweedFS starts from."""
    seaweed = stack.enter_context(start_seaweed(workdir / "seaweed", iceberg=iceberg))
    seaweed.create_bucket(bucket)
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return seaweed, logs


def _s3_props(seaweed: SeaweedServer) -> dict[str, str]:
    return {
        "s3.endpoint": seaweed.endpoint_url,
        "s3.access-key-id": seaweed.access_key,
        "s3.secret-access-key": seaweed.secret_key,
        "s3.region": seaweed.region,
    }


def _s3_env(seaweed: SeaweedServer) -> dict[str, str]:
    """The environment an Iceshelf server needs to serve an ``s3://`` warehouse on ``seaweed``."""
    return {
        "AWS_ENDPOINT_URL": seaweed.endpoint_url,
        "AWS_ACCESS_KEY_ID": seaweed.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
        "AWS_REGION": seaweed.region,
    }


def iceshelf_on_s3(stack: ExitStack, seaweed: SeaweedServer, warehouse: str, logs: Path) -> IceshelfServer:
    """An Iceshelf server (stopped with ``stack``) serving the ``s3://`` ``warehouse`` on ``seaweed``."""
    return stack.enter_context(running_iceshelf(warehouse, logs, _s3_env(seaweed)))


def iceshelf_client_props(seaweed: SeaweedServer) -> dict[str, str]:
    """What a pyiceberg client of an Iceshelf S3 warehouse brings: only the keys (the catalog's
    ``/v1/config`` names the endpoint, region and path style)."""
    return {"s3.access-key-id": seaweed.access_key, "s3.secret-access-key": seaweed.secret_key}


def iceshelf_target(name: str, url: str, client_props: dict[str, str]) -> CatalogTarget:
    """The Iceshelf server at ``url``, its REST prefix read from its ``/v1/config``."""
    config = httpx.get(f"{url}/v1/config", timeout=10).raise_for_status().json()
    prefix = config.get("overrides", {}).get("prefix", "default")
    return CatalogTarget(name, url, prefix, {}, client_props)


def duckdb_connection(catalog_url: str | None = None, s3: S3Settings | None = None) -> DuckDBPyConnection:
    """An in-process DuckDB with the project's pinned extensions; with ``s3`` it can read that store,
    with ``catalog_url`` the Iceshelf catalog there is attached as ``lake``."""
    from iceshelf.tables.duckdb_extensions import connect

    con = connect()
    if s3 is not None:
        from iceshelf.compaction.rewrite.datapath import secret_sql

        con.execute(secret_sql(s3))
    if catalog_url:
        con.execute(f"ATTACH 'default' AS lake (TYPE iceberg, ENDPOINT '{catalog_url}', AUTHORIZATION_TYPE 'none')")
    return con


def create_table_bucket(seaweed: SeaweedServer, name: str) -> str:
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


def seaweed_catalog_target(seaweed: SeaweedServer, bucket: str) -> CatalogTarget:
    """SeaweedFS's Iceberg catalog serving table bucket ``bucket``, with an OAuth2 token for plain HTTP."""
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


def seaweedfs_catalog(seaweed: SeaweedServer, bucket: str, results: Results) -> CatalogTarget | None:
    """SeaweedFS's own Iceberg catalog on ``seaweed``, serving table bucket ``bucket`` (created here),
    its setup recorded in ``results``; ``None``, and a note, if it could not be set up (the other
    systems still run)."""
    try:
        arn = create_table_bucket(seaweed, bucket)
        target = seaweed_catalog_target(seaweed, bucket)
    except Exception as exc:  # noqa: BLE001
        results.failed("seaweedfs_catalog setup", exc)
        return None
    results.setup["seaweedfs_catalog"] = {
        "table_bucket": bucket,
        "table_bucket_arn": arn,
        "warehouse": bucket,
        "prefix": target.prefix,
        "bucket_created_with": "S3 Tables CreateTableBucket (botocore 's3tables' client) at the S3 endpoint",
        "auth": "OAuth2 client_credentials at /v1/oauth/tokens (client_id=access key, client_secret=secret key)",
    }
    return target


class Floor:
    """Plain object GET/PUT on the same SeaweedFS, of an object the size of a table's metadata file."""

    def __init__(self, seaweed: SeaweedServer, metadata_location: str) -> None:
        self.seaweed = seaweed
        self.s3: BaseClient = seaweed.client()
        bucket, _, key = metadata_location.removeprefix("s3://").partition("/")
        self.get_bucket, self.get_key = bucket, key
        self.body: bytes = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        self.put_bucket, self.put_key = FLOOR_BUCKET, "floor/metadata.json"
        seaweed.create_bucket(FLOOR_BUCKET)
        self.get_url: str = self.s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=6 * 3600)
        self.put_url: str = self.s3.generate_presigned_url(
            "put_object", Params={"Bucket": self.put_bucket, "Key": self.put_key}, ExpiresIn=6 * 3600
        )

    @property
    def size(self) -> int:
        return len(self.body)

    def http_get_op(self) -> tuple[Op, Close]:
        client = httpx.Client(timeout=30)

        def op() -> None:
            response = client.get(self.get_url)
            if response.status_code != 200 or len(response.content) != self.size:
                raise RuntimeError(f"floor GET: {response.status_code} {response.text[:200]}")

        return op, client.close

    def http_put_op(self) -> tuple[Op, Close]:
        client = httpx.Client(timeout=30)

        def op() -> None:
            response = client.put(self.put_url, content=self.body)
            if response.status_code != 200:
                raise RuntimeError(f"floor PUT: {response.status_code} {response.text[:200]}")

        return op, client.close

    def botocore_get_op(self) -> tuple[Op, Close]:
        client = self.seaweed.client()

        def op() -> None:
            client.get_object(Bucket=self.get_bucket, Key=self.get_key)["Body"].read()

        return op, client.close

    def botocore_put_op(self) -> tuple[Op, Close]:
        client = self.seaweed.client()

        def op() -> None:
            client.put_object(Bucket=self.put_bucket, Key=self.put_key, Body=self.body)

        return op, client.close

    def close(self) -> None:
        self.s3.close()
