"""Authentication and authorization over real HTTP, with real clients, on a local and an S3 warehouse.

One secured server per backend (``ICESHELF_AUTH=on``, grant cache off so revocations show at once),
with principals made by the ``iceshelf principals`` CLI, and an OIDC issuer of the test's own (an
RSA key and its JWKS served on loopback).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import httpx
import jwt
import pyarrow as pa
import pytest
import trino
from cryptography.hazmat.primitives.asymmetric import rsa
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import ForbiddenError, NoSuchTableError, UnauthorizedError

from bench.servers.iceshelf import start_iceshelf
from iceshelf.tables.access import Grant, PrincipalStore
from iceshelf.tables.access.principals import NewCredentials
from iceshelf.tables.access.tokens import SIGNING_KEY
from iceshelf.tables.duckdb_extensions import connect
from iceshelf.tables.objectstore import open_store
from iceshelf.tables.settings import S3Settings
from tests.clients import CatalogEnv, unique_name

ISSUER = "https://idp.example.test"


@dataclass
class Issuer:
    """A stand-in identity provider: its private key signs tokens, its JWKS is served on loopback."""

    key: rsa.RSAPrivateKey
    jwks_url: str

    def token(self, subject: str, key: rsa.RSAPrivateKey | None = None, ttl: int = 300) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": subject, "aud": "iceshelf", "iat": now, "exp": now + ttl}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": "test-key"})


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())) | {"kid": "test-key", "use": "sig", "alg": "RS256"}
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Issuer(key, f"http://127.0.0.1:{server.server_address[1]}/jwks.json")
    server.shutdown()


@dataclass
class Secured:
    """A secured server, its warehouse, and principals: ``admin``, and per role one of ns ``a``."""

    env: CatalogEnv
    creds: dict[str, NewCredentials]
    ns_a: str
    ns_b: str
    issuer: Issuer

    def catalog(self, who: str, how: str = "credential") -> RestCatalog:
        c = self.creds[who]
        auth = {"credential": f"{c.client_id}:{c.client_secret}"} if how == "credential" else {"token": c.api_key}
        return self.env.catalog(**auth)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.creds[who].api_key}"}

    def principals(self) -> PrincipalStore:
        return PrincipalStore(open_store(self.env.warehouse, _s3(self.env)), cache_s=0)


def _s3(env: CatalogEnv) -> S3Settings:
    return S3Settings.from_env(env.s3_env())


def _admin_via_cli(env: CatalogEnv) -> NewCredentials:
    result = env.cli("principals", "create", "admin", "--grant", "admin:warehouse:*")
    assert result.returncode == 0, result.stdout + result.stderr
    fields = dict(line.split(":", 1) for line in result.stdout.splitlines() if line.startswith(("client id", "client secret")))
    return NewCredentials(fields["client id"].strip(), fields["client secret"].strip())


@pytest.fixture(scope="module", params=["local", "s3"])
def secured(request: pytest.FixtureRequest, issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    root = tmp_path_factory.mktemp("secured")
    if request.param == "local":
        env = CatalogEnv("local", None, str(root / "warehouse"))  # type: ignore[arg-type]
    else:
        seaweed = request.getfixturevalue("seaweed")
        env = CatalogEnv("s3", None, f"s3://{seaweed.create_bucket()}/warehouse", seaweed)  # type: ignore[arg-type]
    creds = {"admin": _admin_via_cli(env)}
    server_env = {
        **env.s3_env(),
        "ICESHELF_AUTH": "on",
        "ICESHELF_AUTH_CACHE": "0",
        "ICESHELF_OIDC_ISSUER": ISSUER,
        "ICESHELF_OIDC_AUDIENCE": "iceshelf",
        "ICESHELF_OIDC_JWKS_URL": issuer.jwks_url,
    }
    env.server = start_iceshelf(env.warehouse, root, server_env)
    ns_a, ns_b = unique_name("a"), unique_name("b")
    principals = PrincipalStore(open_store(env.warehouse, _s3(env)), cache_s=0)
    for role, level in (("reader", "read"), ("writer", "write"), ("keeper", "maintain")):
        creds[role] = principals.create(f"{role}-{ns_a}", [Grant.parse(f"{level}:namespace:default/{ns_a}")])
    principals.create("carol", [Grant.parse(f"read:namespace:default/{ns_a}")], external=True)
    secured = Secured(env, creds, ns_a, ns_b, issuer)
    admin = secured.catalog("admin")
    schema = pa.schema([("id", pa.int64()), ("v", pa.string())])
    for ns in (ns_a, ns_b):
        admin.create_namespace(ns)
        admin.create_table(f"{ns}.t", schema).append(pa.table({"id": [1, 2], "v": ["x", "y"]}, schema=schema))
    yield secured
    env.server.stop()


def _snapshots(secured: Secured, ident: str) -> int:
    return len(secured.catalog("admin").load_table(ident).metadata.snapshots)


# -- authentication -------------------------------------------------------------------------------


def test_without_credentials_every_route_is_401_in_the_error_model(secured: Secured) -> None:
    for method, path in (("GET", "/v1/config"), ("GET", "/v1/default/namespaces"), ("POST", "/v1/sql/queries"), ("POST", "/v1/statement")):
        response = httpx.request(method, secured.env.url + path, json={"sql": "SELECT 1"})
        assert response.status_code == 401, (method, path)
        assert response.json()["error"]["type"] == "NotAuthorizedException"
        assert response.headers["www-authenticate"].startswith("Bearer")
    with pytest.raises(UnauthorizedError):
        RestCatalog("anon", uri=secured.env.url, **secured.env.client_properties()).list_namespaces()


def test_pyiceberg_with_client_credentials_and_with_an_api_key(secured: Secured) -> None:
    for how in ("credential", "token"):
        table = secured.catalog("writer", how).load_table(f"{secured.ns_a}.t")
        before = table.scan().to_arrow().num_rows
        table.append(pa.table({"id": [9], "v": [how]}, schema=table.schema().as_arrow()))
        assert secured.catalog("admin").load_table(f"{secured.ns_a}.t").scan().to_arrow().num_rows == before + 1


def test_duckdb_with_oauth_client_credentials_and_with_a_token(secured: Secured) -> None:
    c = secured.creds["writer"]
    url = secured.env.url
    table = f"lake.{secured.ns_a}.t"
    for options in (
        f"CLIENT_ID '{c.client_id}', CLIENT_SECRET '{c.client_secret}', OAUTH2_SERVER_URI '{url}/v1/oauth/tokens'",
        f"TOKEN '{c.api_key}'",
    ):
        con = _duckdb(secured, options)
        before = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        con.execute(f"INSERT INTO {table} VALUES (7, 'duck')")
        assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == before + 1
        con.close()


def _duckdb(secured: Secured, auth_options: str):
    con = connect()
    if secured.env.seaweed is not None:
        s = secured.env.seaweed
        con.execute(
            f"CREATE SECRET (TYPE s3, KEY_ID '{s.access_key}', SECRET '{s.secret_key}', REGION '{s.region}', "
            f"ENDPOINT '{s.endpoint_url.removeprefix('http://')}', URL_STYLE 'path', USE_SSL false)"
        )
    con.execute(f"ATTACH 'default' AS lake (TYPE iceberg, ENDPOINT '{secured.env.url}', {auth_options})")
    return con


def test_token_endpoint_refuses_wrong_secrets_in_the_oauth_error_shape(secured: Secured) -> None:
    c = secured.creds["reader"]
    url = secured.env.url + "/v1/oauth/tokens"
    wrong = httpx.post(url, data={"grant_type": "client_credentials", "client_id": c.client_id, "client_secret": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    basic = base64.b64encode(f"{c.client_id}:{c.client_secret}".encode()).decode()
    ok = httpx.post(url, data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"})
    assert ok.status_code == 200 and ok.json()["token_type"] == "bearer" and ok.json()["expires_in"] > 0
    other = httpx.post(url, data={"grant_type": "password", "client_id": c.client_id, "client_secret": c.client_secret})
    assert other.status_code == 400 and other.json()["error"] == "unsupported_grant_type"
    exchange = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token_type": "urn:ietf:params:oauth:token-type:access_token"}
    refreshed = httpx.post(url, data=exchange | {"subject_token": ok.json()["access_token"]})
    assert refreshed.status_code == 200
    whoami = httpx.get(f"{secured.env.url}/v1/default/namespaces", headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"})
    assert whoami.status_code == 200 and [secured.ns_a] in whoami.json()["namespaces"]
    forged = httpx.post(url, data=exchange | {"subject_token": ok.json()["access_token"][:-4] + "AAAA"})
    assert forged.status_code == 400 and forged.json()["error"] == "invalid_grant"


def test_expired_tampered_and_foreign_tokens_are_refused(secured: Secured) -> None:
    store = open_store(secured.env.warehouse, _s3(secured.env))
    key = base64.b64decode(json.loads(store.get(SIGNING_KEY).data)["hs256"])
    name = secured.creds["reader"].client_id
    now = int(time.time())
    claims = {"iss": "iceshelf", "aud": "iceshelf", "sub": name}
    expired = jwt.encode(claims | {"iat": now - 7200, "exp": now - 3600}, key, algorithm="HS256")
    valid = jwt.encode(claims | {"iat": now, "exp": now + 600}, key, algorithm="HS256")
    head, body, signature = valid.split(".")
    forged_body = base64.urlsafe_b64encode(json.dumps(claims | {"sub": "admin", "exp": now + 600}).encode()).decode().rstrip("=")
    foreign = jwt.encode(claims | {"exp": now + 600}, b"k" * 64, algorithm="HS256")
    url = f"{secured.env.url}/v1/default/namespaces"
    assert httpx.get(url, headers={"Authorization": f"Bearer {valid}"}).status_code == 200
    for token, why in ((expired, "expired"), (f"{head}.{forged_body}.{signature}", "not valid"), (foreign, "not valid")):
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401 and why in response.json()["error"]["message"]
        assert token not in response.text


def test_oidc_tokens_of_the_configured_issuer_map_to_their_principal(secured: Secured) -> None:
    url = f"{secured.env.url}/v1/default/namespaces/{secured.ns_a}/tables/t"
    good = httpx.get(url, headers={"Authorization": f"Bearer {secured.issuer.token('carol')}"})
    assert good.status_code == 200
    other_ns = httpx.get(url.replace(secured.ns_a, secured.ns_b), headers={"Authorization": f"Bearer {secured.issuer.token('carol')}"})
    assert other_ns.status_code == 403
    stranger = httpx.get(url, headers={"Authorization": f"Bearer {secured.issuer.token('mallory')}"})
    assert stranger.status_code == 403  # the issuer vouches for mallory, but nothing is granted to her here
    impostor_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = httpx.get(url, headers={"Authorization": f"Bearer {secured.issuer.token('carol', key=impostor_key)}"})
    assert forged.status_code == 401
    expired = httpx.get(url, headers={"Authorization": f"Bearer {secured.issuer.token('carol', ttl=-60)}"})
    assert expired.status_code == 401


def test_deleting_a_principal_and_rotating_a_secret_take_effect(secured: Secured) -> None:
    principals = secured.principals()
    name = unique_name("temp")
    creds = principals.create(name, [Grant.parse(f"read:namespace:default/{secured.ns_a}")])
    token = httpx.post(
        f"{secured.env.url}/v1/oauth/tokens",
        data={"grant_type": "client_credentials", "client_id": name, "client_secret": creds.client_secret},
    ).json()["access_token"]
    url = f"{secured.env.url}/v1/default/namespaces"
    assert httpx.get(url, headers={"Authorization": f"Bearer {creds.api_key}"}).status_code == 200
    rotated = principals.rotate(name)
    assert httpx.get(url, headers={"Authorization": f"Bearer {creds.api_key}"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {rotated.api_key}"}).status_code == 200
    principals.delete(name)
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {rotated.api_key}"}).status_code == 401


# -- authorization --------------------------------------------------------------------------------


def test_read_only_principals_cannot_write_and_nothing_changes(secured: Secured) -> None:
    ident = f"{secured.ns_a}.t"
    before = _snapshots(secured, ident)
    table = secured.catalog("reader").load_table(ident)
    assert table.scan().to_arrow().num_rows >= 2
    with pytest.raises(ForbiddenError):
        table.append(pa.table({"id": [3], "v": ["z"]}, schema=table.schema().as_arrow()))
    reader = secured.catalog("reader")
    with pytest.raises(ForbiddenError):
        reader.create_table(f"{secured.ns_a}.new_{uuid.uuid4().hex[:6]}", pa.schema([("id", pa.int64())]))
    with pytest.raises(ForbiddenError):
        reader.drop_table(ident)
    with pytest.raises(ForbiddenError):
        reader.create_namespace(unique_name("x"))
    con = _duckdb(secured, f"TOKEN '{secured.creds['reader'].api_key}'")
    with pytest.raises(Exception, match="403|Forbidden|may not write"):
        con.execute(f"INSERT INTO lake.{ident} VALUES (4, 'w')")
    assert _snapshots(secured, ident) == before


def test_cross_namespace_access_is_refused_and_lists_show_only_what_is_granted(secured: Secured) -> None:
    writer = secured.catalog("writer")
    with pytest.raises(ForbiddenError):
        writer.load_table(f"{secured.ns_b}.t")
    with pytest.raises(ForbiddenError):
        writer.list_tables(secured.ns_b)
    with pytest.raises(ForbiddenError):
        writer.rename_table(f"{secured.ns_a}.t", f"{secured.ns_b}.moved")
    listed = {ns[0] for ns in writer.list_namespaces()}
    assert secured.ns_a in listed and secured.ns_b not in listed
    assert ("t",) == tuple(i[-1] for i in writer.list_tables(secured.ns_a) if i[-1] == "t")
    transaction = httpx.post(
        f"{secured.env.url}/v1/default/transactions/commit",
        headers=secured.headers("writer"),
        json={"table-changes": [{"identifier": {"namespace": [secured.ns_b], "name": "t"}, "requirements": [], "updates": []}]},
    )
    assert transaction.status_code == 403 and transaction.json()["error"]["type"] == "ForbiddenException"
    with pytest.raises(NoSuchTableError):  # inside its own namespace a missing table is just missing
        writer.load_table(f"{secured.ns_a}.missing")


def test_maintenance_routes_need_the_maintain_level(secured: Secured) -> None:
    url = f"{secured.env.url}/v1/default/namespaces/{secured.ns_a}/tables/t/maintenance"
    body = {"value": {"status": "disabled"}}
    assert httpx.get(url, headers=secured.headers("reader")).status_code == 200
    assert httpx.put(f"{url}/icebergCompaction", json=body, headers=secured.headers("writer")).status_code == 403
    assert httpx.put(f"{url}/icebergCompaction", json=body, headers=secured.headers("keeper")).status_code in (200, 204)
    other = f"{secured.env.url}/v1/default/namespaces/{secured.ns_b}/tables/t/maintenance/icebergCompaction"
    assert httpx.put(other, json=body, headers=secured.headers("keeper")).status_code == 403


# -- SQL ----------------------------------------------------------------------------------------


def _sql(secured: Secured, who: str, sql: str) -> httpx.Response:
    return httpx.post(f"{secured.env.url}/v1/sql/queries", json={"sql": sql}, headers=secured.headers(who), timeout=60)


def test_sql_on_a_forbidden_table_is_refused_before_it_runs(secured: Secured) -> None:
    allowed = _sql(secured, "reader", f"SELECT count(*) AS n FROM {secured.ns_a}.t")
    assert allowed.status_code == 200
    for sql in (
        f"SELECT * FROM {secured.ns_b}.t",
        f"SELECT * FROM {secured.ns_a}.t JOIN {secured.ns_b}.t USING (id)",
        f'SELECT * FROM {secured.ns_b}."t$snapshots"',
        f"INSERT INTO {secured.ns_a}.t VALUES (5, 'no')",
    ):
        response = _sql(secured, "reader", sql)
        assert response.status_code == 403, sql
        assert response.json()["error"]["type"] == "ForbiddenException"
    before = _snapshots(secured, f"{secured.ns_a}.t")
    written = _sql(secured, "writer", f"INSERT INTO {secured.ns_a}.t VALUES (6, 'sql')")
    assert written.status_code == 200
    done = httpx.get(f"{secured.env.url}/v1/sql/queries/{written.json()['query_id']}?wait=30", headers=secured.headers("writer"))
    assert done.json()["state"] == "SUCCEEDED", done.text
    assert _snapshots(secured, f"{secured.ns_a}.t") == before + 1


def test_queries_belong_to_their_caller(secured: Secured) -> None:
    query_id = _sql(secured, "writer", f"SELECT 1 FROM {secured.ns_a}.t").json()["query_id"]
    url = f"{secured.env.url}/v1/sql/queries/{query_id}"
    assert httpx.get(url, headers=secured.headers("writer")).status_code == 200
    assert httpx.get(url, headers=secured.headers("reader")).status_code == 404
    assert httpx.get(f"{url}/results?wait=30", headers=secured.headers("reader")).status_code == 404
    assert httpx.delete(url, headers=secured.headers("reader")).status_code == 404
    assert httpx.get(url, headers=secured.headers("admin")).status_code == 200
    mine = httpx.get(f"{secured.env.url}/v1/sql/queries", headers=secured.headers("reader")).json()["queries"]
    assert all(q["user"] == secured.creds["reader"].client_id for q in mine)


def test_trino_client_sees_only_granted_tables(secured: Secured) -> None:
    c = secured.creds["reader"]
    host, port = secured.env.url.removeprefix("http://").split(":")
    connection = trino.dbapi.connect(
        host=host, port=int(port), user=c.client_id, catalog="default", schema=secured.ns_a,
        auth=trino.auth.JWTAuthentication(c.api_key), http_scheme="http", allow_insecure_auth=True,
    )
    cursor = connection.cursor()
    cursor.execute("SELECT count(*) FROM t")
    assert cursor.fetchone()[0] >= 2
    cursor.execute("SELECT table_schema, table_name FROM information_schema.tables")
    schemas = {row[0] for row in cursor.fetchall()}
    assert secured.ns_a in schemas and secured.ns_b not in schemas
    cursor.execute("SHOW SCHEMAS")
    assert secured.ns_b not in {row[0] for row in cursor.fetchall()}
    cursor.execute("SELECT table_schem, table_name FROM system.jdbc.tables")  # what JDBC's getTables reads
    jdbc_schemas = {row[0] for row in cursor.fetchall()}
    assert secured.ns_a in jdbc_schemas and secured.ns_b not in jdbc_schemas
    cursor.execute("SELECT DISTINCT table_schem FROM system.jdbc.columns")
    assert secured.ns_b not in {row[0] for row in cursor.fetchall()}
    with pytest.raises(trino.exceptions.TrinoUserError, match="PERMISSION_DENIED"):
        cursor.execute(f'SELECT * FROM "{secured.ns_b}".t')
        cursor.fetchall()


def test_secrets_never_reach_logs_or_error_bodies(secured: Secured) -> None:
    c = secured.creds["reader"]
    bodies = [
        httpx.post(f"{secured.env.url}/v1/oauth/tokens", data={"grant_type": "client_credentials", "client_id": c.client_id, "client_secret": c.client_secret + "x"}).text,
        httpx.get(f"{secured.env.url}/v1/config", headers={"Authorization": f"Bearer {c.api_key}x"}).text,
        httpx.get(f"{secured.env.url}/v1/config", headers={"Authorization": f"Basic {c.client_secret}"}).text,
    ]
    log = secured.env.server.log()
    for secret in (cred.client_secret for cred in secured.creds.values()):
        assert all(secret not in body for body in bodies)
        assert secret not in log


def test_sql_cli_presents_a_token(secured: Secured) -> None:
    import subprocess
    import sys

    statement = f"SELECT count(*) AS n FROM {secured.ns_a}.t"
    command = [sys.executable, "-m", "iceshelf.catalog.cli", "sql", statement, "--url", secured.env.url, "--format", "csv"]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "Authentication required" in refused.stderr
    ok = subprocess.run([*command, "--token", secured.creds["reader"].api_key], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[0] == "n" and int(ok.stdout.splitlines()[1]) >= 2
