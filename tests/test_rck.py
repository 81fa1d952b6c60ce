"""Apache Iceberg's REST Compatibility Kit (RCK) against a real ``iceshelf serve``.

The RCK is the Java reference catalog test suite (iceberg-core's ``CatalogTests`` and ``ViewCatalogTests``)
pointed at a remote REST server through the Java ``RESTCatalog`` client. Its jars come from
``tests/java/rck/pom.xml`` through ``tests.java.maven`` (a cache outside git); it runs here under the
JUnit Platform console launcher on Java 17, once per module, against a fresh local warehouse, with an
HTTP recorder between client and server so a failing JUnit test is reported with the requests it sent
and what Iceshelf answered.

One pytest test per RCK class asserts that each of its JUnit tests passed or was skipped (and one more for
``IceshelfNestedNamespaceTests``, tests/java/rck/src: the kit's nested-namespace tests, which no RCK
property switches on); another asserts every skip is one the kit decides by a documented capability
flag (``EXPECTED_SKIPS``).
``ICESHELF_RCK_KEEP=DIR`` keeps the reports, the server log and the recorded exchanges in DIR.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from tests.java import maven
from tests.java.http_recorder import HttpRecorder
from bench.servers.iceshelf import start_iceshelf

ICEBERG_VERSION = "1.11.0"  # of the RCK, in tests/java/rck/pom.xml
RCK_PACKAGE = "org.apache.iceberg.rest"
RCK_CLASSES = ("RESTCompatibilityKitCatalogTests", "RESTCompatibilityKitViewCatalogTests")
# tests/java/rck/src: the kit's catalog tests with nested namespaces on, which no RCK property can do;
# only the tests that flag gates are selected from it (the rest would repeat RESTCompatibilityKitCatalogTests).
NESTED_CLASS = "IceshelfNestedNamespaceTests"
NESTED_TESTS = ("testDropNamespaceWithNestedNamespace", "testListNestedNamespaces")
RUN_TIMEOUT = 900  # seconds for the whole launcher run; it takes about two minutes on 2 cores

# The RCK's capability flags. The RCK classes read them from the catalog properties, which RCKUtils builds
# from *all* JVM system properties, so they are passed as -D. Every flag RESTCompatibilityKitSuite knows
# (Iceberg 1.11.0) is set here explicitly, with its README default beside it.
CAPABILITIES = {
    # README default true, but the catalog class falls back to CatalogTests' false when the property is absent.
    # Iceshelf never creates a namespace implicitly: a table or view in a missing namespace is a 404
    # NoSuchNamespaceException, as the REST spec has it. (false would make most tests fail on that 404.)
    "rck.requires-namespace-create": "true",
    # Default true, and the only setting that fits a REST server: the Java client sends every commit's
    # requirements and Iceshelf checks them on the server, answering a conflict with 409 CommitFailedException
    # (false expects the client-side "Cannot commit" messages of non-REST catalogs). The three
    # *ServerSideRetry tests it gates pass.
    "rck.supports-serverside-retry": "true",
    # Default false; stays false: Iceshelf never replaces a location the client asked for with one of its
    # own. It stores the requested location or rejects the request (400 when outside the warehouse and
    # its allowed locations; ALLOWED_LOCATIONS below).
    "rck.overrides-requested-location": "false",
    # Default false (the kit's own JDBC backend can't); Iceshelf supports dots in namespace and table names.
    "rck.supports-names-with-dot": "true",
}

# Where the kit puts tables and views outside the warehouse: CatalogTests hard-codes file:/tmp/<ns>/<table>,
# ViewCatalogTests uses a JUnit @TempDir under java.io.tmpdir (/tmp). The server allows /tmp for them
# (ICESHELF_ALLOWED_LOCATIONS, docs/configuration.md); its warehouse lies inside /tmp, which only means no
# table may be located around the warehouse itself.
ALLOWED_LOCATIONS = "file:/tmp/"

# RCK tests Iceshelf fails on purpose, each with its reason: ``test_rck_class_passes`` accepts exactly
# these failures and ``test_rck_known_deviations_still_deviate`` that they still fail (else drop them here).
KNOWN_DEVIATIONS = {
    ("RESTCompatibilityKitCatalogTests", "testLoadTableWithMissingMetadataFile"): (
        "a table's current metadata file is immutable: verified once, it is served from memory without a "
        "HEAD per load (one object-store round trip per load); a deleted one is a durability fault for the "
        "auditor (issue #12), not a 404 (tests/test_locations.py::test_deleted_metadata_file_is_served_from_memory)"
    ),
}

# Skips that are the kit's decision, not Iceshelf's: (class, method) -> why. Each is a capability that the
# RCK classes of Iceberg 1.11.0 hard-code or do not expose as a flag (so it keeps CatalogTests' default).
# A skip not listed here fails ``test_rck_skips_only_by_capability_flags``, and so does a listed one
# that ran: both mean the flags above no longer say what the kit does.
_NESTED = "supportsNestedNamespaces(): CatalogTests' default false, no RCK property (run in IceshelfNestedNamespaceTests)"
_SLASH = "supportsNamesWithSlashes(): hard-coded false by the RCK (its own Jetty server rejects encoded slashes)"
_EMPTY = "supportsEmptyNamespace(): CatalogTests'/ViewCatalogTests' default false, not overridable in the RCK"
EXPECTED_SKIPS = {
    ("RESTCompatibilityKitCatalogTests", "createTableInUniqueLocation"): "@Disabled in the RCK (RESTServerExtension isn't configurable per test)",
    ("RESTCompatibilityKitCatalogTests", "testDropNamespaceWithNestedNamespace"): _NESTED,
    ("RESTCompatibilityKitCatalogTests", "testListNestedNamespaces"): _NESTED,
    ("RESTCompatibilityKitCatalogTests", "testNamespaceWithSlash"): _SLASH,
    ("RESTCompatibilityKitCatalogTests", "testTableNameWithSlash"): _SLASH,
    ("RESTCompatibilityKitCatalogTests", "listNamespacesWithEmptyNamespace"): _EMPTY,
    ("RESTCompatibilityKitCatalogTests", "createAndDropEmptyNamespace"): _EMPTY,
    ("RESTCompatibilityKitCatalogTests", "namespacePropertiesOnEmptyNamespace"): _EMPTY,
    ("RESTCompatibilityKitCatalogTests", "listTablesInEmptyNamespace"): _EMPTY,
    ("RESTCompatibilityKitViewCatalogTests", "listViewsInEmptyNamespace"): _EMPTY,
}


@dataclass
class JUnitResult:
    """One JUnit test (or a failed class-level container), from the Open Test Reporting events."""

    cls: str  # simple class name
    method: str  # method name, without parameters
    name: str  # display name: method(params) and, for an invocation of a parameterised test, its arguments
    status: str  # SUCCESSFUL, FAILED, ABORTED (an assumption), SKIPPED (@Disabled)
    started: float
    finished: float
    message: str = ""

    @property
    def skipped(self) -> bool:
        return self.status in ("ABORTED", "SKIPPED")


@dataclass
class RckRun:
    results: list[JUnitResult]
    recorder: HttpRecorder
    output: str
    server_log: str
    wall: float
    legacy_counts: dict[str, int] = field(default_factory=dict)

    def of_class(self, cls: str) -> list[JUnitResult]:
        return [r for r in self.results if r.cls == cls]


def _timestamp(text: str) -> float:
    # "2026-12-08T01:23:50.485625504Z": Python takes at most microseconds
    text = re.sub(r"(\.\d{6})\d*", r"\1", text.replace("Z", "+00:00"))
    return datetime.fromisoformat(text).timestamp()


def parse_open_test_report(path: Path) -> list[JUnitResult]:
    """Tests and failed containers from the launcher's ``open-test-report.xml`` (an event stream)."""
    ns = {
        "e": "https://schemas.opentest4j.org/reporting/events/0.2.0",
        "c": "https://schemas.opentest4j.org/reporting/core/0.2.0",
        "junit": "https://schemas.junit.org/open-test-reporting",
        "java": "https://schemas.opentest4j.org/reporting/java/0.2.0",
    }
    root = ET.parse(path).getroot()
    started: dict[str, tuple[str, float, str, str]] = {}  # id -> (uniqueId, time, type, name)
    results = []
    for event in root:
        tag = event.tag.split("}")[1]
        if tag == "started":
            unique_id = event.findtext("c:metadata/junit:uniqueId", default="", namespaces=ns)
            kind = event.findtext("c:metadata/junit:type", default="", namespaces=ns)
            started[event.get("id")] = (unique_id, _timestamp(event.get("time")), kind, event.get("name", ""))
        elif tag == "finished":
            unique_id, begun, kind, name = started[event.get("id")]
            result = event.find("c:result", ns)
            status = result.get("status") if result is not None else "UNKNOWN"
            if kind != "TEST" and status == "SUCCESSFUL":
                continue
            cls = re.search(r"\[class:([^\]]+)\]", unique_id)
            if not cls:  # an engine (Jupiter, Vintage, Suite) without failures
                if status == "SUCCESSFUL":
                    continue
            method = re.search(r"\[(?:method|test-template):([^(\]]+)", unique_id)
            if "[test-template-invocation:" in unique_id and method:
                name = f"{method.group(1)}{name}"  # "[1] true" alone says nothing
            message = ""
            if result is not None:
                reason = result.findtext("c:reason", default="", namespaces=ns)
                throwable = result.findtext("java:throwable", default="", namespaces=ns)
                message = (throwable or reason).strip()
            results.append(
                JUnitResult(
                    cls=cls.group(1).rsplit(".", 1)[-1] if cls else unique_id,
                    method=method.group(1) if method else "(class setup)",
                    name=name,
                    status=status,
                    started=begun,
                    finished=_timestamp(event.get("time")),
                    message=message,
                )
            )
    return results


def parse_legacy_counts(reports: Path) -> dict[str, int]:
    """The totals in the legacy JUnit XML (``TEST-junit-jupiter.xml``), as a cross-check of the events."""
    suite = ET.parse(reports / "TEST-junit-jupiter.xml").getroot()
    return {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}


def launcher_command(java: Path, classpath: str, catalog_uri: str, reports: Path) -> list[str]:
    properties = {
        "rck.local": "false",  # JUnit configuration parameter: don't start the kit's own JDBC-backed server
        "uri": catalog_uri,  # the client's catalog properties (the kit's Gradle build sets these from rck.*)
        "warehouse": "default",  # Iceshelf's warehouse name; /v1/config answers prefix "default" for it
        **CAPABILITIES,
        # The client's log: warnings only, to stderr, which the launcher's output captures.
        "org.slf4j.simpleLogger.defaultLogLevel": "warn",
    }
    command = [str(java), "-Xmx1g", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", classpath]
    command += [f"-D{key}={value}" for key, value in properties.items()]
    command += [
        "org.junit.platform.console.ConsoleLauncher", "execute",
        "--disable-banner", "--details=summary", "--disable-ansi-colors",
        "--config=junit.platform.reporting.open.xml.enabled=true",
        # By name: IceshelfNestedNamespaceTests first, on the fresh warehouse (see its source).
        "--config=junit.jupiter.testclass.order.default=org.junit.jupiter.api.ClassOrderer$ClassName",
        f"--reports-dir={reports}",
    ]
    command += [f"--select-class={RCK_PACKAGE}.{cls}" for cls in RCK_CLASSES]
    command += [f"--select-method={RCK_PACKAGE}.{NESTED_CLASS}#{method}" for method in NESTED_TESTS]
    return command


@pytest.fixture(scope="module")
def rck(tmp_path_factory: pytest.TempPathFactory) -> RckRun:
    jars = maven.resolve("rck")  # before the server starts: a cold resolve downloads for a while
    classpath = maven.classpath("rck")
    java = maven.java_executable(17)
    work = tmp_path_factory.mktemp("rck")
    reports = work / "reports"
    server = start_iceshelf(str(work / "warehouse"), work, env={"ICESHELF_ALLOWED_LOCATIONS": ALLOWED_LOCATIONS})
    try:
        with HttpRecorder(server.url) as recorder:
            started = time.monotonic()
            done = subprocess.run(
                launcher_command(java, classpath, recorder.url, reports),
                capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=work,
            )
            wall = time.monotonic() - started
            output = done.stdout + done.stderr
            report = reports / "open-test-report.xml"
            if not report.exists():
                pytest.fail(f"the JUnit launcher (exit {done.returncode}, jars in {jars}) wrote no report:\n{output[-5000:]}")
            run = RckRun(parse_open_test_report(report), recorder, output, "", wall, parse_legacy_counts(reports))
            recorder.write_jsonl(work / "exchanges.jsonl")
    finally:
        server.stop()
    run.server_log = server.log()
    keep = os.environ.get("ICESHELF_RCK_KEEP")
    if keep:
        shutil.copytree(work, Path(keep), dirs_exist_ok=True, ignore=shutil.ignore_patterns("warehouse"))
        (Path(keep) / "launcher-output.txt").write_text(output)
    return run


# The kit's @BeforeEach probes these namespaces (RCKUtils.TEST_NAMESPACES) before every test.
_PURGE_PROBE = re.compile(r"HEAD /v1/[^/]+/namespaces/(ns|newdb|ns1|ns2|other_ns)$")


def _relevant(exchange) -> bool:
    """Not the kit's purge probes of absent namespaces, nor the client's metrics reports."""
    if exchange.status == 404 and _PURGE_PROBE.fullmatch(f"{exchange.method} {exchange.path}"):
        return False
    return not (exchange.method == "POST" and exchange.path.endswith("/metrics") and exchange.status < 300)


def _failure_report(run: RckRun, failures: list[JUnitResult], exchanges_per_test: int = 12) -> str:
    lines = [f"{len(failures)} RCK test(s) failed:"]
    for result in failures:
        lines.append(f"\n--- {result.cls}.{result.name} [{result.status}]")
        lines += ["    " + line for line in result.message.splitlines()[:6]]
        exchanges = [e for e in run.recorder.between(result.started, result.finished) if _relevant(e)]
        if exchanges:
            lines.append(f"    HTTP ({len(exchanges)} exchanges; last {min(len(exchanges), exchanges_per_test)}):")
            for exchange in exchanges[-exchanges_per_test:]:
                lines += ["      " + line for line in exchange.describe(400).splitlines()]
    return "\n".join(lines)


def test_rck_ran_every_class(rck: RckRun) -> None:
    classes = {r.cls for r in rck.results}
    assert {*RCK_CLASSES, NESTED_CLASS} <= classes, f"the launcher ran no test of {({*RCK_CLASSES, NESTED_CLASS}) - classes}:\n{rck.output[-5000:]}"
    total = rck.legacy_counts
    tests = [r for r in rck.results if r.method != "(class setup)"]
    if len(tests) == len(rck.results):  # a class whose setup failed has tests in the legacy XML, not in the events
        assert total["tests"] == len(tests), f"legacy XML counts {total} disagree with {len(tests)} tests in the events"
    print(
        f"RCK {ICEBERG_VERSION}: {len(tests)} tests, {sum(r.status == 'SUCCESSFUL' for r in tests)} passed, "
        f"{sum(r.status == 'FAILED' for r in tests)} failed, {sum(r.skipped for r in tests)} skipped in {rck.wall:.0f}s"
    )


@pytest.mark.parametrize("cls", [*RCK_CLASSES, NESTED_CLASS])
def test_rck_class_passes(rck: RckRun, cls: str) -> None:
    failures = [
        r for r in rck.of_class(cls) if not r.skipped and r.status != "SUCCESSFUL" and (r.cls, r.method) not in KNOWN_DEVIATIONS
    ]
    assert not failures, _failure_report(rck, failures)


def test_rck_known_deviations_still_deviate(rck: RckRun) -> None:
    outcomes = {(r.cls, r.method): r.status for r in rck.results}
    assert {key: outcomes.get(key) for key in KNOWN_DEVIATIONS} == {key: "FAILED" for key in KNOWN_DEVIATIONS}, (
        "a known deviation passed or did not run: remove it from KNOWN_DEVIATIONS"
    )


def test_rck_skips_only_by_capability_flags(rck: RckRun) -> None:
    skipped = {(r.cls, r.method): r for r in rck.results if r.skipped}
    unexpected = {key: r.message.splitlines()[0] if r.message else r.status for key, r in skipped.items() if key not in EXPECTED_SKIPS}
    ran = {key for key in EXPECTED_SKIPS if key not in skipped}
    assert not unexpected, f"skipped, but not by a documented capability: {unexpected}"
    assert not ran, f"listed as skipped by the kit but ran: {sorted(ran)} (update EXPECTED_SKIPS and CAPABILITIES)"
