"""Storage credentials over real HTTP: vended STS sessions and the remote signer, against SeaweedFS.

A SeaweedFS of its own, with STS and a role the server's key may assume (its advanced IAM config),
and a secured Iceshelf configured to vend that role. Clients carry no S3 keys of their own: whatever
they reach in the store, they reach with what Iceshelf handed them.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import quote

import botocore.config
import botocore.session
import httpx
import pyarrow as pa
import pytest
from botocore.exceptions import ClientError
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.utils.concurrent import ExecutorFactory

from bench.servers.iceshelf import IceshelfServer, start_iceshelf
from bench.servers.seaweed import SeaweedServer, start_seaweed
from iceshelf.tables.access import Grant, PrincipalStore
from iceshelf.tables.access.principals import NewCredentials
from iceshelf.tables.duckdb_extensions import connect
from iceshelf.tables.objectstore import open_store
from tests.clients import CatalogEnv, unique_name

ROLE = "arn:aws:iam::role/IceshelfVending"
#: SeaweedFS's advanced IAM: an STS signing key, and a role any of its users may assume with full S3
#: access -- the session policies Iceshelf sends are what narrow each session to one table.
IAM_CONFIG = {
    "sts": {
        "tokenDuration": "1h",
        "maxSessionLength": "12h",
        "issuer": "seaweedfs-sts",
        "signingKey": base64.b64encode(b"iceshelf-test-sts-signing-key-32").decode(),
    },
    "policy": {"defaultEffect": "Deny"},
    "roles": [
        {
            "roleName": "IceshelfVending",
            "roleArn": ROLE,
            "trustPolicy": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["sts:AssumeRole"]}],
            },
            "attachedPolicies": ["S3Full"],
        }
    ],
    "policies": [
        {
            "name": "S3Full",
            "document": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]},
        }
    ],
}
SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.string())])


@dataclass
class Lake:
    seaweed: SeaweedServer
    server: IceshelfServer
    warehouse: str
    ns: str
    creds: dict[str, NewCredentials]
    server_env: dict[str, str]

    def catalog(self, who: str, **properties: str) -> RestCatalog:
        """pyiceberg with the principal's API key and no S3 keys at all."""
        return RestCatalog(f"c-{uuid.uuid4().hex[:6]}", uri=self.server.url, token=self.creds[who].api_key, **properties)

    def headers(self, who: str, delegation: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.creds[who].api_key}"}
        return headers | ({"X-Iceberg-Access-Delegation": delegation} if delegation else {})

    def path(self, table: str) -> str:
        return f"{self.server.url}/v1/default/namespaces/{self.ns}/tables/{table}"

    def load(self, who: str, table: str, delegation: str | None) -> dict:
        response = httpx.get(self.path(table), headers=self.headers(who, delegation))
        assert response.status_code == 200, response.text
        return response.json()

    def s3(self, config: dict[str, str]):
        """A plain S3 client holding exactly the keys in ``config`` (vended ones)."""
        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.seaweed.endpoint_url,
            region_name=self.seaweed.region,
            aws_access_key_id=config["s3.access-key-id"],
            aws_secret_access_key=config["s3.secret-access-key"],
            aws_session_token=config["s3.session-token"],
            config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
        )


@pytest.fixture(autouse=True)
def _no_ambient_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Clients must get by on what Iceshelf hands them, not on keys lying around in the environment."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    root = tmp_path_factory.mktemp("storage-credentials")
    with start_seaweed(root / "seaweed", iam_config=IAM_CONFIG) as seaweed:
        warehouse = f"s3://{seaweed.create_bucket()}/warehouse"
        s3_env = {
            "AWS_ENDPOINT_URL": seaweed.endpoint_url,
            "AWS_ACCESS_KEY_ID": seaweed.access_key,
            "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
            "AWS_REGION": seaweed.region,
        }
        ns = unique_name()
        principals = PrincipalStore(open_store(warehouse, seaweed.s3_settings()), cache_s=0)
        creds = {
            "admin": principals.create("admin", [Grant.parse("admin:warehouse:*")]),
            "writer": principals.create("writer", [Grant.parse(f"write:table:default/{ns}/t")]),
            "reader": principals.create("reader", [Grant.parse(f"read:table:default/{ns}/t")]),
        }
        server_env = {
            **s3_env,
            "ICESHELF_AUTH": "on",
            "ICESHELF_AUTH_CACHE": "0",
            "ICESHELF_STS_ROLE_ARN": ROLE,
            "ICESHELF_STS_DURATION": "900",
        }
        server = start_iceshelf(warehouse, root, server_env)
        lake = Lake(seaweed, server, warehouse, ns, creds, server_env)
        admin = lake.catalog("admin")
        admin.create_namespace(ns)
        for name in ("t", "other"):
            admin.create_table(f"{ns}.{name}", SCHEMA).append(pa.table({"id": [1, 2], "v": ["x", "y"]}, schema=SCHEMA))
        try:
            yield lake
        finally:
            server.stop()


def _key(location: str, suffix: str) -> tuple[str, str]:
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    return bucket, f"{prefix}/{suffix}"


# -- vended credentials ---------------------------------------------------------------------------


def test_keyless_pyiceberg_appends_and_scans_with_vended_credentials(lake: Lake) -> None:
    table = lake.catalog("writer").load_table(f"{lake.ns}.t")  # pyiceberg asks for vended-credentials by default
    assert table.io.properties["s3.session-token"]
    before = table.scan().to_arrow().num_rows
    table.append(pa.table({"id": [3], "v": ["vended"]}, schema=SCHEMA))
    assert lake.catalog("reader").load_table(f"{lake.ns}.t").scan().to_arrow().num_rows == before + 1


def test_load_table_vends_in_the_spec_shape_and_only_when_asked(lake: Lake) -> None:
    result = lake.load("reader", "t", "vended-credentials")
    location = result["metadata"]["location"]
    [credential] = result["storage-credentials"]
    assert credential["prefix"] == location
    config = credential["config"]
    assert config["s3.access-key-id"] and config["s3.secret-access-key"] and config["s3.session-token"]
    assert config["client.region"] == lake.seaweed.region and config["s3.endpoint"] == lake.seaweed.endpoint_url
    assert time.time() * 1000 + 600_000 < int(config["s3.session-token-expires-at-ms"]) <= time.time() * 1000 + 900_000
    assert result["config"] == config

    plain = lake.load("reader", "t", None)
    assert plain["config"] == {} and "storage-credentials" not in plain


def test_vended_keys_work_inside_their_table_only_and_read_only_for_readers(lake: Lake) -> None:
    t = lake.load("writer", "t", "vended-credentials")
    other = lake.load("admin", "other", None)["metadata"]["location"]
    writer = lake.s3(t["config"])
    bucket, key = _key(t["metadata"]["location"], "data/vended-probe")
    writer.put_object(Bucket=bucket, Key=key, Body=b"probe")
    assert writer.get_object(Bucket=bucket, Key=key)["Body"].read() == b"probe"
    listed = writer.list_objects_v2(Bucket=bucket, Prefix=key.rsplit("/", 1)[0] + "/")
    assert key in [o["Key"] for o in listed["Contents"]]
    other_bucket, other_key = _key(other, "data/x")
    for call in (
        lambda: writer.put_object(Bucket=other_bucket, Key=other_key, Body=b"no"),
        lambda: writer.list_objects_v2(Bucket=other_bucket, Prefix=other_key.rsplit("/", 2)[0] + "/"),
        lambda: writer.list_objects_v2(Bucket=bucket),
    ):
        with pytest.raises(ClientError, match="AccessDenied"):
            call()

    credentials = httpx.get(lake.path("t") + "/credentials", headers=lake.headers("reader"))
    assert credentials.status_code == 200 and credentials.headers["cache-control"] == "no-store"
    [credential] = credentials.json()["storage-credentials"]
    reader = lake.s3(credential["config"])
    assert reader.get_object(Bucket=bucket, Key=key)["Body"].read() == b"probe"
    with pytest.raises(ClientError, match="AccessDenied"):
        reader.put_object(Bucket=bucket, Key=key, Body=b"overwritten")
    with pytest.raises(ClientError, match="AccessDenied"):
        reader.delete_object(Bucket=bucket, Key=key)


def test_duckdb_attach_reads_and_writes_with_vended_credentials(lake: Lake) -> None:
    con = connect()  # no S3 secret: DuckDB turns the vended credentials into one per table
    con.execute(f"ATTACH 'default' AS lake (TYPE iceberg, ENDPOINT '{lake.server.url}', TOKEN '{lake.creds['writer'].api_key}')")
    table = f"lake.{lake.ns}.t"
    before = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    con.execute(f"INSERT INTO {table} VALUES (42, 'duck')")
    assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == before + 1
    con.close()


def test_a_failing_sts_leaves_loads_working_and_fails_only_load_credentials(lake: Lake, tmp_path) -> None:
    """pyiceberg asks for vended credentials on every load: an STS refusal must not break the catalog."""
    env = lake.server_env | {"ICESHELF_STS_ROLE_ARN": "arn:aws:iam::role/NoSuchRole"}
    misconfigured = start_iceshelf(lake.warehouse, tmp_path, env)
    try:
        path = f"{misconfigured.url}/v1/default/namespaces/{lake.ns}/tables/t"
        loaded = httpx.get(path, headers=lake.headers("reader", "vended-credentials"))
        assert loaded.status_code == 200 and loaded.json()["config"] == {} and "storage-credentials" not in loaded.json()
        credentials = httpx.get(path + "/credentials", headers=lake.headers("reader"))
        assert credentials.status_code == 503 and credentials.json()["error"]["type"] == "ServiceUnavailableException"
        assert "could not vend credentials" in misconfigured.log().lower()  # the cause is in the server's log
    finally:
        misconfigured.stop()


# -- remote signing -------------------------------------------------------------------------------


@pytest.fixture
def one_pyiceberg_worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """pyiceberg 0.12's fsspec FileIO races with itself when a signer is set: every thread, on its first
    use, re-registers the signer on the s3fs client all threads share, and a request another thread sends
    in that moment goes out unsigned (the store answers 403; seen here as an anonymous HEAD with no signer
    call before it). One worker thread (``PYICEBERG_MAX_WORKERS=1`` for users) avoids the race."""
    executor = ThreadPoolExecutor(max_workers=1)
    monkeypatch.setattr(ExecutorFactory, "_instance", executor)
    monkeypatch.setattr(ExecutorFactory, "_instance_pid", os.getpid())
    yield
    executor.shutdown()


@pytest.mark.usefixtures("one_pyiceberg_worker")
def test_keyless_pyiceberg_writes_and_reads_through_the_remote_signer(lake: Lake) -> None:
    signing = {"header.X-Iceberg-Access-Delegation": "remote-signing"}
    table = lake.catalog("writer", **signing).load_table(f"{lake.ns}.t")
    assert table.io.properties["s3.signer"] == "S3V4RestSigner" and "s3.session-token" not in table.io.properties
    before = table.scan().to_arrow().num_rows
    table.append(pa.table({"id": [7], "v": ["signed"]}, schema=SCHEMA))
    assert lake.catalog("reader", **signing).load_table(f"{lake.ns}.t").scan().to_arrow().num_rows == before + 1


def _sign(lake: Lake, who: str, method: str, bucket: str, key: str, table: str = "t", **extra: object) -> httpx.Response:
    body = {"region": lake.seaweed.region, "method": method, "uri": f"{lake.seaweed.endpoint_url}/{bucket}/{quote(key)}", "headers": {}}
    return httpx.post(lake.path(table) + "/sign", headers=lake.headers(who), json=body | extra)


def _send(signed: httpx.Response, content: bytes = b"") -> httpx.Response:
    """The signed request as a client sends it: its own headers plus those the signer added."""
    asked = json.loads(signed.request.content)
    headers = {name: ", ".join(values) for name, values in (asked["headers"] | signed.json()["headers"]).items()}
    return httpx.request(asked["method"], signed.json()["uri"], headers=headers, content=content)


def test_the_signer_signs_inside_the_table_and_refuses_outside_it(lake: Lake) -> None:
    location = lake.load("admin", "t", None)["metadata"]["location"]
    other = lake.load("admin", "other", None)["metadata"]["location"]
    bucket, key = _key(location, "data/signed-probe")
    store = lake.seaweed.endpoint_url

    put = _sign(lake, "writer", "PUT", bucket, key, headers={"x-amz-content-sha256": ["UNSIGNED-PAYLOAD"]})
    assert put.status_code == 200, put.text
    assert _send(put, b"signed").status_code == 200
    get = _sign(lake, "reader", "GET", bucket, key)
    assert get.status_code == 200
    assert _send(get).content == b"signed"

    refusals = [
        _sign(lake, "writer", "GET", *_key(other, "data/x")),  # another table's files
        _sign(lake, "writer", "GET", bucket, key.replace("data/signed-probe", "../../other/x")),
        _sign(lake, "reader", "PUT", bucket, key),  # a write for a read-only caller
        _sign(lake, "reader", "DELETE", bucket, key),
        _sign(lake, "writer", "GET", bucket, ""),  # the bucket listing without a table prefix
        _sign(lake, "writer", "PUT", bucket, key, headers={"x-amz-copy-source": [f"/{'/'.join(_key(other, 'data/x'))}"]}),
        _sign(lake, "writer", "PUT", bucket, key, headers={"x-amz-acl": ["public-read"]}),
        _sign(lake, "writer", "GET", bucket, "", uri=f"{store}/{bucket}?list-type=2&prefix={quote(key)}&prefix=x"),
        # a multi-object delete: its keys are in a body SeaweedFS does not check against the signature
        _sign(lake, "writer", "POST", bucket, "", uri=f"{store}/{bucket}?delete", body=f"<Delete><Key>{key}</Key></Delete>"),
    ]
    assert [r.status_code for r in refusals] == [403] * len(refusals), [r.text for r in refusals]
    assert _sign(lake, "reader", "GET", bucket, key, table="other").status_code == 403  # no grant on that table
    listing = _sign(lake, "reader", "GET", bucket, "", uri=f"{store}/{bucket}?list-type=2&prefix={quote(key)}")
    assert key in _send(listing).text
    assert _send(_sign(lake, "admin", "GET", bucket, key)).content == b"signed"  # nothing was overwritten


@pytest.mark.usefixtures("one_pyiceberg_worker")
def test_a_staged_create_writes_its_first_files_through_the_signer(lake: Lake) -> None:
    """The table does not exist while its first files are written: the signer allows its fresh location."""
    catalog = lake.catalog("admin", **{"header.X-Iceberg-Access-Delegation": "remote-signing"})
    transaction = catalog.create_table_transaction(f"{lake.ns}.staged", SCHEMA)
    transaction.append(pa.table({"id": [1], "v": ["staged"]}, schema=SCHEMA))
    transaction.commit_transaction()
    assert catalog.load_table(f"{lake.ns}.staged").scan().to_arrow().to_pylist() == [{"id": 1, "v": "staged"}]


def test_a_local_warehouse_answers_without_storage_access(local_env: CatalogEnv) -> None:
    ns = unique_name()
    catalog = local_env.catalog()
    catalog.create_namespace(ns)
    catalog.create_table(f"{ns}.t", SCHEMA)
    path = f"{local_env.url}/v1/default/namespaces/{ns}/tables/t"
    loaded = httpx.get(path, headers={"X-Iceberg-Access-Delegation": "vended-credentials,remote-signing"}).json()
    assert loaded["config"] == {} and "storage-credentials" not in loaded
    assert httpx.get(path + "/credentials").json() == {"storage-credentials": []}
    sign = {"region": "us-east-1", "method": "GET", "uri": "http://127.0.0.1:1/b/k", "headers": {}}
    assert httpx.post(path + "/sign", json=sign).status_code == 400
