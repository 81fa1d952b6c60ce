"""Response bodies for tables: ``LoadTableResult`` built around the stored metadata bytes.

A metadata file is immutable and already JSON, so a load answers with its bytes spliced into
the envelope instead of re-serializing the parsed model: the hot path of every client.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from fastapi import Request, Response

from iceshelf.tables.metadata.builder import serialize_metadata
from iceshelf.tables.settings import S3Settings
from iceshelf.tables.tablestore import LoadedTable, TableStore


def json_bytes(value: object) -> bytes:
    return json.dumps(value).encode()


def client_config(tables: TableStore, s3: S3Settings) -> dict[str, str]:
    """What a client needs to reach the warehouse's files with nothing but the catalog URI.

    Served as ``/v1/config`` defaults, and in a table's ``config`` only along with delegated storage
    access (``catalog/delegation.py``): DuckDB turns a table config into a storage secret scoped to
    the table, and a key-less one would shadow the S3 secret the user gave it.
    """
    if not tables.objects.root_uri.startswith("s3://"):
        return {}
    config = {"s3.region": s3.region, "client.region": s3.region}
    if s3.endpoint_url:
        config["s3.endpoint"] = s3.endpoint_url
        config["s3.path-style-access"] = "true"
    return config


@dataclass(frozen=True)
class StorageAccess:
    """A table response's ``config`` and ``storage-credentials`` (the spec's ``StorageCredential`` objects)."""

    config: dict[str, str] = field(default_factory=dict)
    credentials: list[dict] = field(default_factory=list)

    def cache_headers(self) -> dict[str, str]:
        """Credentials are for the caller alone: no shared cache may keep them."""
        return {"Cache-Control": "no-store"} if self.credentials else {}

    def json_fields(self) -> bytes:
        credentials = b',"storage-credentials":' + json_bytes(self.credentials) if self.credentials else b""
        return b'"config":' + json_bytes(self.config) + credentials


NO_ACCESS = StorageAccess()


def table_etag(loaded: LoadedTable, access: StorageAccess = NO_ACCESS) -> str:
    """Changes with the credentials too: a client answered 304 keeps using those it was handed before."""
    variant = json.dumps(access.config, sort_keys=True) if access.config else ""
    return '"' + hashlib.sha256((loaded.metadata_location + variant).encode()).hexdigest()[:32] + '"'


def load_table_response(
    request: Request, tables: TableStore, loaded: LoadedTable, snapshots: str = "all", access: StorageAccess = NO_ACCESS
) -> Response:
    etag = table_etag(loaded, access)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and etag in [tag.strip() for tag in if_none_match.split(",")]:
        return Response(status_code=304, headers={"ETag": etag})
    raw = loaded.file.raw
    if snapshots == "refs":
        metadata = loaded.metadata
        heads = {ref.snapshot_id for ref in metadata.refs.values()}
        raw = serialize_metadata(metadata.model_copy(update={"snapshots": [s for s in metadata.snapshots if s.snapshot_id in heads]}))
    body = b"".join(
        [
            b'{"metadata-location":',
            json_bytes(loaded.metadata_location),
            b',"metadata":',
            raw,
            b",",
            access.json_fields(),
            b"}",
        ]
    )
    return Response(body, media_type="application/json", headers={"ETag": etag, **access.cache_headers()})
