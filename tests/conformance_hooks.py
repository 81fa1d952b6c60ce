"""Schemathesis hooks for ``tests/test_conformance.py`` (loaded by the CLI through ``SCHEMATHESIS_HOOKS``).

They run inside the schemathesis process and:

* correct the official spec's known errata in memory before it is parsed (``ERRATA``; the file on
  disk is never changed), so responses are judged against what the spec means and clients parse;
* seed namespaces, tables and views named like the spec's own examples (``accounting%1Ftax``,
  ``sales``, ...), which the examples and coverage phases use, and steer the fuzzing and stateful
  phases at them: path parameters and body identifiers are replaced, for a share of the cases, by
  seeded ones (namespaces travel as levels joined by U+001F, i.e. ``%1F`` on the wire);
* put the seeded resources back after a request removed or renamed one of them;
* give each distinct request its own ``Idempotency-Key`` (generated cases reuse the spec's example);
* count every request and response status per operation, written as JSON at exit for the test.

Environment: ``ICESHELF_CONFORMANCE_URL`` (server root), ``ICESHELF_CONFORMANCE_STATS`` (output path).
"""

from __future__ import annotations

import atexit
import json
import os
import uuid
from collections import Counter, defaultdict
from typing import Any
from urllib.parse import quote

import httpx
import schemathesis
from hypothesis import strategies as st

URL = os.environ["ICESHELF_CONFORMANCE_URL"]
STATS_PATH = os.environ["ICESHELF_CONFORMANCE_STATS"]

SEP = "\x1f"
WAREHOUSE = "default"  # also fixed as the {prefix} of every request, in the run's config
#: The spec's own example identifiers (path parameter examples, rename and commit bodies), so the
#: examples and coverage phases, which build requests from them, meet existing resources too.
NAMESPACES = (("accounting",), ("accounting", "tax"))
TABLES = ((("accounting", "tax"), "sales"), (("accounting", "tax"), "paid"))
VIEWS = ((("accounting",), "sales"), (("accounting", "tax"), "paid-view"))
SCHEMA = {
    "type": "struct",
    "schema-id": 0,
    "fields": [
        {"id": 1, "name": "id", "type": "long", "required": False},
        {"id": 2, "name": "name", "type": "string", "required": False},
    ],
}
VIEW_VERSION = {
    "version-id": 1,
    "timestamp-ms": 1_700_000_000_000,
    "schema-id": 0,
    "summary": {"engine-name": "conformance"},
    "representations": [{"type": "sql", "sql": "SELECT id, name FROM tax.sales", "dialect": "spark"}],
    "default-namespace": ["accounting"],
}

# -- spec errata ----------------------------------------------------------------------------------

_ERROR_WRAPPER = "#/components/schemas/IcebergErrorResponse"

#: Each erratum: (what is corrected, why). Applied by ``before_load_schema`` below.
ERRATA = {
    "ErrorModel-as-body": (
        "error responses whose schema is the bare ErrorModel (the view operations, UnsupportedOperationResponse) "
        "are validated as IcebergErrorResponse {'error': ErrorModel}",
        "every other error response, the spec's own examples for these responses (e.g. NoSuchViewError) and the "
        "clients' parsers (Java ErrorResponseParser, pyiceberg) use the wrapper; apache/iceberg#8914 fixed the "
        "same mistake for the table operations before the view operations were added",
    ),
    "createNamespace-404": (
        "createNamespace may answer 404 (IcebergErrorResponse)",
        "a nested namespace whose parent does not exist (NoSuchNamespaceException) and an unknown {prefix} "
        "(NoSuchWarehouseException); the Java client's namespace error handler and pyiceberg's create_namespace "
        "both map 404 to NoSuchNamespace, and every other {prefix} operation Iceshelf serves documents 404",
    ),
}
applied_errata: Counter[str] = Counter()


def _wrap_bare_error_models(responses: dict) -> None:
    for response in responses.values():
        for content in (response.get("content") or {}).values():
            if content.get("schema", {}).get("$ref", "").endswith("/schemas/ErrorModel"):
                content["schema"] = {"$ref": _ERROR_WRAPPER}
                applied_errata["ErrorModel-as-body"] += 1


@schemathesis.hook
def before_load_schema(context: schemathesis.HookContext, raw_schema: dict) -> None:
    for operations in raw_schema["paths"].values():
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                _wrap_bare_error_models(operation["responses"])
    _wrap_bare_error_models(raw_schema["components"]["responses"])
    create_namespace = raw_schema["paths"]["/v1/{prefix}/namespaces"]["post"]["responses"]
    if "404" not in create_namespace and 404 not in create_namespace:
        create_namespace["404"] = {
            "description": "Not Found - NoSuchNamespaceException (parent) or NoSuchWarehouseException (prefix)",
            "content": {"application/json": {"schema": {"$ref": _ERROR_WRAPPER}}},
        }
        applied_errata["createNamespace-404"] += 1


# -- seeded resources -----------------------------------------------------------------------------

seeded: dict[str, str] = {}  # "table" / "view" -> a seeded one's metadata location (for register bodies)
seed_requests = 0


def _path(namespace: tuple[str, ...]) -> str:
    return quote(SEP.join(namespace), safe="")


def seed() -> None:
    """Create whatever of the seeded namespaces, tables and views is missing (idempotent)."""
    global seed_requests
    with httpx.Client(base_url=f"{URL}/v1/{WAREHOUSE}", timeout=30) as client:

        def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
            global seed_requests
            seed_requests += 1
            return client.request(method, path, **kwargs)

        for namespace in NAMESPACES:
            call("POST", "/namespaces", json={"namespace": list(namespace)})
        for kind, entries, body in (
            ("table", TABLES, {"schema": SCHEMA}),
            ("view", VIEWS, {"schema": SCHEMA, "view-version": VIEW_VERSION}),
        ):
            for namespace, name in entries:
                loaded = call("GET", f"/namespaces/{_path(namespace)}/{kind}s/{quote(name, safe='')}")
                if loaded.status_code == 404:
                    loaded = call("POST", f"/namespaces/{_path(namespace)}/{kind}s", json={"name": name, **body})
                if loaded.status_code == 200:
                    seeded[kind] = loaded.json()["metadata-location"]


seed()

#: Operations after whose success a seeded resource may be gone (dropped, renamed away, unregistered).
_REMOVING = {"dropNamespace", "dropTable", "dropView", "unregisterTable", "renameTable", "renameView"}


def _operation_id(context: schemathesis.HookContext) -> str:
    return context.operation.definition.raw.get("operationId", "") if context.operation else ""


@schemathesis.hook
def flatmap_path_parameters(context: schemathesis.HookContext, path_parameters: dict | None) -> st.SearchStrategy:
    """As generated, or naming a seeded namespace, table or view."""
    if not isinstance(path_parameters, dict) or "namespace" not in path_parameters:
        return st.just(path_parameters)
    if "table" in path_parameters:
        seeds = [{"namespace": SEP.join(ns), "table": name} for ns, name in TABLES]
    elif "view" in path_parameters:
        seeds = [{"namespace": SEP.join(ns), "view": name} for ns, name in VIEWS]
    else:
        seeds = [{"namespace": SEP.join(ns)} for ns in NAMESPACES]
    return st.sampled_from([path_parameters, *({**path_parameters, **seed} for seed in seeds)])


def _identifier(namespace: tuple[str, ...], name: str) -> dict:
    return {"namespace": list(namespace), "name": name}


def _set_property(table: tuple[tuple[str, ...], str]) -> dict:
    return {"identifier": _identifier(*table), "requirements": [], "updates": [{"action": "set-properties", "updates": {"conformance": "1"}}]}


@schemathesis.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy:
    """Bodies that name tables and views: as generated, or naming seeded ones."""
    if not isinstance(body, dict):
        return st.just(body)
    operation = _operation_id(context)
    variants = []
    if operation in ("renameTable", "renameView"):
        destination = body.get("destination") if isinstance(body.get("destination"), dict) else {}
        for namespace, name in TABLES if operation == "renameTable" else VIEWS:
            target = {**destination, "namespace": list(namespace)}
            variants.append({**body, "source": _identifier(namespace, name), "destination": target})
    elif operation == "commitTransaction" and isinstance(body.get("table-changes"), list):
        changes = [
            {**change, "identifier": _identifier(*TABLES[i % len(TABLES)])} if isinstance(change, dict) else change
            for i, change in enumerate(body["table-changes"])
        ]
        variants.append({**body, "table-changes": changes})
        # Generated updates rarely parse as a whole; with none, the generated requirements meet real tables.
        variants.append({**body, "table-changes": [{**c, "updates": []} if isinstance(c, dict) else c for c in changes]})
        # And one plain two-table commit through the whole transaction path.
        variants.append({"table-changes": [_set_property(table) for table in TABLES]})
    elif operation == "updateTable":
        variants.append({**body, "updates": []})
    elif operation in ("registerTable", "registerView"):
        location = seeded.get("table" if operation == "registerTable" else "view")
        if location:
            variants.append({**body, "metadata-location": location})
    return st.sampled_from([body, *variants])


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict) -> None:
    """A fresh ``Idempotency-Key`` per distinct request, as the spec requires of clients.

    Generated cases reuse the spec's example key (and other well-formed keys) across different
    requests, which the server rightly refuses (400) before running them. A well-formed key is
    replaced by one derived from it and the request, so a repeated request keeps its key (and is
    replayed) while different requests reach the operation; malformed keys are sent as generated.
    """
    key = (case.headers or {}).get("Idempotency-Key")
    if not isinstance(key, str):
        return
    try:
        base = uuid.UUID(key)
    except ValueError:
        return
    request = json.dumps([case.method, case.formatted_path, case.query, case.body], sort_keys=True, default=repr)
    case.headers["Idempotency-Key"] = str(uuid.uuid5(base, request))


# -- counting -------------------------------------------------------------------------------------

statuses: dict[str, Counter[int]] = defaultdict(Counter)


@schemathesis.hook
def after_call(context: schemathesis.HookContext, case: schemathesis.Case, response: schemathesis.Response) -> None:
    operation = case.operation.definition.raw.get("operationId", case.operation.label)
    statuses[operation][response.status_code] += 1
    if operation in _REMOVING and 200 <= response.status_code < 300:
        seed()


@atexit.register
def _write_stats() -> None:
    with open(STATS_PATH, "w") as out:
        json.dump(
            {
                "statuses": {op: {str(code): n for code, n in sorted(counts.items())} for op, counts in statuses.items()},
                "seed_requests": seed_requests,
                "errata": {name: {"count": applied_errata[name], "what": ERRATA[name][0], "why": ERRATA[name][1]} for name in ERRATA},
            },
            out,
            indent=1,
        )
