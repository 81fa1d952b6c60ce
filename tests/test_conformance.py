"""Spec conformance under generated and bad input: schemathesis against a running Iceshelf.

The official REST catalog spec is read from ``../shared/spec/rest-catalog-open-api.yaml`` next to the
repository. Every operation the server advertises in ``/v1/config`` ``endpoints`` (plus ``getConfig``)
is run through schemathesis's phases (spec examples, coverage of boundaries and invalid values,
fuzzing in positive and negative mode, stateful sequences). Namespaces, tables and views named like
the spec's own examples are seeded, and hooks aim a share of the generated requests at them
(``tests/conformance_hooks.py``, which also holds the spec errata the responses are judged by).

The run is bounded and deterministic (fixed seed, ``MAX_EXAMPLES`` per operation, no example
database) and must end with zero failures of the checks in ``CHECKS``: no 5xx, every status code
documented for its operation, documented content types and headers, every body valid against the
spec's schema for its status. Operations the server does not implement are listed, with why, in
``NOT_IMPLEMENTED``; the test fails if the server and that list ever disagree.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import yaml

from bench.servers.iceshelf import start_iceshelf

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO.parent / "shared" / "spec" / "rest-catalog-open-api.yaml"

SEED = 20240917
MAX_EXAMPLES = 20  # per operation, fuzzing phase; the coverage phase generates every case it derives
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]

#: Spec operations Iceshelf does not serve (they answer 404 NoSuchEndpoint / are absent from ``endpoints``).
NOT_IMPLEMENTED = {
    "planTableScan": "server-side scan planning",
    "fetchPlanningResult": "server-side scan planning",
    "cancelPlanning": "server-side scan planning",
    "fetchScanTasks": "server-side scan planning",
    "listFunctions": "catalog functions",
    "loadFunction": "catalog functions",
}

#: The run's budget, in schemathesis's config:
#: * every request names the warehouse served as ``{prefix}``: an unknown prefix is a 404 before any other
#:   input is looked at (``test_bad_input`` covers it), so fuzzing it would only spend the budget;
#: * the three operations whose bodies are unions of every table update and requirement (and expression
#:   trees, for metrics) get coverage cases from valid inputs only: the invalid ones number ~6,000, two
#:   thirds of the whole run, and all stop at request parsing (400). Fuzzing still sends them invalid bodies.
CONFIG = """
[parameters]
"path.prefix" = "default"

[[operations]]
include-operation-id = ["updateTable", "commitTransaction", "reportMetrics"]
phases.coverage.generation.mode = "positive"
"""

METHODS = ("get", "put", "post", "delete", "head", "patch", "options")


def spec_operations() -> dict[str, str]:
    """``"METHOD /path"`` -> operationId for every operation of the spec."""
    document = yaml.safe_load(SPEC.read_text())
    return {
        f"{method.upper()} {path}": operation["operationId"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if method in METHODS
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("conformance")
    server = start_iceshelf(str(root / "warehouse"), root)
    yield server
    server.stop()


# -- regressions: what the fuzzer found, pinned as plain requests --------------------------------------

SCHEMA = {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "type": "long", "required": False}]}
MAP_WITH_STRUCT_KEY = {
    "id": 1, "name": "m", "required": False, "initial-default": True,
    "type": {"type": "map", "key-id": 2, "key": {"type": "struct", "fields": []}, "value-id": 3, "value": "long", "value-required": False},
}  # fmt: skip


NS = "regressions"  # with a table ``t``


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=f"{server.url}/v1/default", timeout=30) as client:
        assert client.post("/namespaces", json={"namespace": [NS]}).status_code == 200
        assert client.post(f"/namespaces/{NS}/tables", json={"name": "t", "schema": SCHEMA}).status_code == 200
        yield client


@pytest.fixture(scope="module")
def warehouse_uri(http: httpx.Client) -> str:
    return http.get(f"/namespaces/{NS}/tables/t").json()["metadata"]["location"].rsplit(f"/{NS}/", 1)[0]


def assert_bad_request(response: httpx.Response, error_type: str = "BadRequestException") -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["type"] == error_type, response.text


@pytest.mark.parametrize(
    "path, body, error_type",
    [
        # pyiceberg validators raise TypeError / KeyError / AttributeError on these: they were 500s
        ("tables", {"name": "x", "schema": {"type": "struct", "fields": [MAP_WITH_STRUCT_KEY]}}, "BadRequestException"),
        ("tables", {"name": "x", "schema": SCHEMA, "write-order": {"order-id": 1, "fields": [[1]]}}, "BadRequestException"),
        ("tables/t", {"updates": [{"action": "set-statistics", "snapshot-id": 1}]}, "BadRequestException"),
        ("tables/t", {"updates": [{"action": "set-properties", "updates": []}]}, "BadRequestException"),
        # an id no Java client can read back: Java's parser refuses it with IllegalArgumentException
        ("tables", {"name": "x", "schema": {**SCHEMA, "fields": [{**SCHEMA["fields"][0], "id": 2**70}]}}, "IllegalArgumentException"),
        # an unpaired surrogate no UTF-8 encoder can write
        ("tables/t", {"updates": [{"action": "set-properties", "updates": {"k": "\ud800"}}]}, "BadRequestException"),
        ("properties", {"updates": {"\udfff": "v"}}, "BadRequestException"),
    ],
    ids=["map-key-default", "sort-field-list", "statistics-missing", "properties-list", "huge-int", "surrogate-value", "surrogate-key"],
)
def test_malformed_bodies_are_400(http: httpx.Client, path: str, body: dict, error_type: str) -> None:
    raw = json.dumps(body)  # ASCII: an unpaired surrogate travels as its escape, as clients may send it
    response = http.post(f"/namespaces/{NS}/{path}", content=raw, headers={"content-type": "application/json"})
    assert_bad_request(response, error_type)


def test_names_that_do_not_fit_a_key_are_400(http: httpx.Client) -> None:
    long_levels = ["ü" * 30] * 3  # each level fits, together they overflow one percent-encoded key segment
    assert_bad_request(http.post("/namespaces", json={"namespace": long_levels}))
    assert_bad_request(http.get(f"/namespaces/{quote(chr(0x1F).join(long_levels), safe='')}"))
    assert_bad_request(http.post(f"/namespaces/{NS}/tables", json={"name": "é" * 40, "schema": SCHEMA}))
    # its tables' default locations would lie among the catalog's own keys
    assert_bad_request(http.post("/namespaces", json={"namespace": ["_catalog"]}))


@pytest.mark.parametrize("relative", ["_catalog", "_catalog/x", ".iceshelf/x", "../outside", "a//b", "x" * 300])
def test_locations_stay_out_of_the_catalogs_state(http: httpx.Client, warehouse_uri: str, relative: str) -> None:
    """A table at ``<warehouse>/_catalog``, dropped with purge, used to delete every pointer of the warehouse."""
    location = f"{warehouse_uri}/{relative}"
    assert_bad_request(http.post(f"/namespaces/{NS}/tables", json={"name": "x", "schema": SCHEMA, "location": location}))
    assert_bad_request(http.post(f"/namespaces/{NS}/tables/t", json={"updates": [{"action": "set-location", "location": location}]}))
    assert_bad_request(http.post(f"/namespaces/{NS}/register", json={"name": "x", "metadata-location": location}))
    assert_bad_request(http.post(f"/namespaces/{NS}/register-view", json={"name": "x", "metadata-location": location}))
    assert http.get(f"/namespaces/{NS}/tables/t").status_code == 200  # the catalog is intact


@pytest.mark.parametrize("path", ["namespaces/nope", "namespaces/{ns}/tables/nope", "namespaces/{ns}/views/nope"])
def test_head_404_has_the_error_models_content_type(http: httpx.Client, path: str) -> None:
    response = http.head("/" + path.format(ns=NS))
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")


def test_config_endpoints_name_only_spec_operations(server) -> None:
    """``endpoints`` tells a client which spec operations it may call: Iceshelf's own routes
    (maintenance, SQL) are not spec operations, so they are not listed there (issue #11 §4)."""
    advertised = httpx.get(f"{server.url}/v1/config", timeout=30).json()["endpoints"]
    operations = spec_operations()
    assert [e for e in advertised if e not in operations] == []
    assert "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}" in advertised
    assert not any("maintenance" in e for e in advertised)


# -- the schemathesis run ---------------------------------------------------------------------------------


@pytest.mark.timeout(900)  # ~70 s of CPU; the margin is for machines busy with other work
def test_schemathesis_conformance(server, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert SPEC.is_file(), f"the official spec must be checked out beside the repository: {SPEC} is missing"
    operations = spec_operations()
    advertised = set(httpx.get(f"{server.url}/v1/config", timeout=30).json()["endpoints"])
    assert advertised <= set(operations), f"endpoints must name only spec operations: {sorted(advertised - set(operations))}"
    # getConfig and the OAuth2 token endpoint sit outside ``/v1/{prefix}``, so ``endpoints`` cannot name them.
    tested = sorted({operations[endpoint] for endpoint in advertised & set(operations)} | {"getConfig", "getToken"})
    skipped = sorted(set(operations.values()) - set(tested))
    assert skipped == sorted(NOT_IMPLEMENTED), (
        "the operations the server does not advertise must be exactly NOT_IMPLEMENTED "
        f"(not advertised: {skipped}; listed: {sorted(NOT_IMPLEMENTED)})"
    )

    report_path, stats_path, config_path = tmp_path / "report.json", tmp_path / "stats.json", tmp_path / "schemathesis.toml"
    config_path.write_text(CONFIG)
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_path), "run", str(SPEC),
        "--url", server.url,
        *[arg for operation_id in tested for arg in ("--include-operation-id", operation_id)],
        "--checks", ",".join(CHECKS),
        "--mode", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--generation-database", "none",
        "--workers", "1",
        "--suppress-health-check", "all",
        "--request-timeout", "30",
        "--output-sanitize", "false",
        "--no-color",
        "--report", "json", "--report-json-path", str(report_path),
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "SCHEMATHESIS_HOOKS": "tests.conformance_hooks",
        "ICESHELF_CONFORMANCE_URL": server.url,
        "ICESHELF_CONFORMANCE_STATS": str(stats_path),
    }
    started, client_cpu, server_cpu = time.monotonic(), _children_cpu(), _process_cpu(server.process.pid)
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=840)
    elapsed = time.monotonic() - started
    client_cpu, server_cpu = _children_cpu() - client_cpu, _process_cpu(server.process.pid) - server_cpu
    output = run.stdout + run.stderr
    assert report_path.is_file() and stats_path.is_file(), f"schemathesis did not finish:\n{output}"
    report = json.loads(report_path.read_text())
    stats = json.loads(stats_path.read_text())

    statuses = {op: {int(code): n for code, n in counts.items()} for op, counts in stats["statuses"].items()}
    requests = sum(sum(counts.values()) for counts in statuses.values())
    server_errors = sum(n for counts in statuses.values() for code, n in counts.items() if code >= 500)
    successes = sum(n for counts in statuses.values() for code, n in counts.items() if code < 300 or code == 304)
    failures = {f"{failure['code']} {failure['title']}": failure["count"] for failure in report["failures"]}
    schema_violations = sum(n for name, n in failures.items() if name.startswith("ST108"))

    lines = [
        f"schemathesis {report['schemathesis_version']} against {SPEC.name}: seed {SEED}, "
        f"{MAX_EXAMPLES} examples per operation, {elapsed:.0f} s "
        f"(CPU: schemathesis {client_cpu:.0f} s, server {server_cpu:.0f} s)",
        f"operations: {len(tested)} tested of {len(set(operations.values()))} in the spec "
        f"(schemathesis: {report['operations']['tested']} tested, {report['operations']['errored']} errored)",
        "skipped, not implemented: " + ", ".join(f"{op} ({NOT_IMPLEMENTED[op]})" for op in skipped),
        f"requests: {requests} ({successes} answered 2xx/304, {stats['seed_requests']} more to seed), "
        f"test cases: {report['test_cases']['generated']}",
        f"failures: {sum(failures.values())} {failures or ''}; server errors (5xx): {server_errors}; "
        f"response-schema violations: {schema_violations}; runtime errors: {len(report['errors'])}",
        "spec errata applied: " + "; ".join(f"{name} x{e['count']}: {e['what']}" for name, e in stats["errata"].items()),
    ]
    for operation_id in tested:
        counts = statuses.get(operation_id, {})
        lines.append(f"  {operation_id:24} {sum(counts.values()):5}  " + " ".join(f"{c}:{n}" for c, n in sorted(counts.items())))
    with capsys.disabled():
        print("\n" + "\n".join(lines))

    assert not set(tested) - set(statuses), f"operations never called: {sorted(set(tested) - set(statuses))}"
    assert server_errors == 0, f"{server_errors} server errors\n{output}"
    assert not failures and not report["errors"] and run.returncode == 0, output
