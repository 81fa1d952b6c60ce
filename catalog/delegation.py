"""``X-Iceberg-Access-Delegation``: which storage access a table response hands the client.

* ``vended-credentials``: an STS session for the table's prefix (``tables/credentials.py``), read-write
  if the caller may write the table, else read-only; only when an STS role is configured.
* ``remote-signing``: the table's signer endpoint (``signRequest``, ``tables/signing.py``), for S3
  stores without STS. Only pyiceberg's fsspec FileIO has a signer, so ``py-io-impl`` selects it.

A client may name both (comma-separated); vended credentials win when they can be had. Local
warehouses, a client that asks for neither, or a table whose location is not delegable get no
storage access: the client uses its own, as without the header. pyiceberg sends
``vended-credentials`` by default, so a failing STS must not fail its loads: that is logged and
answered without credentials; only ``loadCredentials``, which exists to vend, reports it.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import Request

from iceshelf.catalog import auth
from iceshelf.catalog.deps import NAMESPACE_SEPARATOR
from iceshelf.catalog.results import NO_ACCESS, StorageAccess, client_config
from iceshelf.tables.access import Level
from iceshelf.tables.delegation.credentials import CredentialsUnavailable
from iceshelf.tables.delegation.scope import table_scope
from iceshelf.tables.errors import ForbiddenError
from iceshelf.tables.names import Identifier
from iceshelf.tables.tablestore import TableStore

HEADER = "X-Iceberg-Access-Delegation"
VENDED = "vended-credentials"
SIGNING = "remote-signing"

log = logging.getLogger("iceshelf.catalog")


def _is_s3(tables: TableStore) -> bool:
    return tables.objects.root_uri.startswith("s3://")


def vended_access(request: Request, tables: TableStore, ident: Identifier, location: str) -> StorageAccess:
    """Credentials for the table at ``location``, at the level the caller holds on it."""
    vendor = request.app.state.vendor
    if not vendor.enabled or not _is_s3(tables):
        return NO_ACCESS
    scope = table_scope(tables.objects, ident.namespace, location)
    write = auth.principal(request).allows(Level.WRITE, auth.table_resource(request, tables.name, ident.namespace, ident.name))
    config = {**client_config(tables, request.app.state.settings.s3), **vendor.vend(scope, write).properties()}
    return StorageAccess(config, [{"prefix": scope.location, "config": config}])


def _signer_endpoint(tables: TableStore, ident: Identifier) -> str:
    """Relative to the catalog URI the client already uses, so it is right behind any proxy too."""
    namespace = quote(NAMESPACE_SEPARATOR.join(ident.namespace), safe="")
    return f"v1/{quote(tables.name, safe='')}/namespaces/{namespace}/tables/{quote(ident.name, safe='')}/sign"


def _signing_access(request: Request, tables: TableStore, ident: Identifier, location: str) -> StorageAccess:
    table_scope(tables.objects, ident.namespace, location)  # refuse now what the signer would refuse later
    config = {
        **client_config(tables, request.app.state.settings.s3),
        "s3.remote-signing-enabled": "true",  # Java's S3FileIO
        "s3.signer": "S3V4RestSigner",  # pyiceberg
        "s3.signer.endpoint": _signer_endpoint(tables, ident),
        "py-io-impl": "pyiceberg.io.fsspec.FsspecFileIO",
    }
    return StorageAccess(config)


def table_access(request: Request, tables: TableStore, ident: Identifier, location: str) -> StorageAccess:
    modes = {mode.strip().lower() for mode in request.headers.get(HEADER, "").split(",")}
    if not _is_s3(tables) or not modes & {VENDED, SIGNING}:
        return NO_ACCESS
    if VENDED in modes and request.app.state.vendor.enabled:
        try:
            return vended_access(request, tables, ident, location)
        except (ForbiddenError, CredentialsUnavailable) as exc:
            log.warning("no credentials vended for %s: %s", ident, exc)
    if SIGNING in modes:
        try:
            return _signing_access(request, tables, ident, location)
        except ForbiddenError as exc:
            log.warning("no remote signing for %s: %s", ident, exc)
    return NO_ACCESS
