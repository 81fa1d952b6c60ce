"""Real clients against a real Iceshelf server: pyiceberg's RestCatalog and DuckDB's ATTACH.

A ``CatalogEnv`` is one running server on one warehouse (local directory or a SeaweedFS
bucket) plus what a client needs to reach that warehouse's files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb
from pyiceberg.catalog.rest import RestCatalog

from bench.servers.iceshelf import IceshelfServer
from bench.servers.seaweed import SeaweedServer
from iceshelf.tables.duckdb_extensions import connect


@dataclass
class CatalogEnv:
    kind: str  # "local" or "s3"
    server: IceshelfServer
    warehouse: str
    seaweed: SeaweedServer | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def s3_env(self) -> dict[str, str]:
        if self.seaweed is None:
            return {}
        return {
            "AWS_ENDPOINT_URL": self.seaweed.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.seaweed.access_key,
            "AWS_SECRET_ACCESS_KEY": self.seaweed.secret_key,
            "AWS_REGION": self.seaweed.region,
        }

    def client_properties(self) -> dict[str, str]:
        """Only credentials: endpoint, region and path style come from the catalog's config."""
        if self.seaweed is None:
            return {}
        return {"s3.access-key-id": self.seaweed.access_key, "s3.secret-access-key": self.seaweed.secret_key}

    def catalog(self, url: str | None = None, **properties: str) -> RestCatalog:
        return RestCatalog(f"iceshelf-{uuid.uuid4().hex[:6]}", uri=url or self.url, **self.client_properties(), **properties)

    def duckdb(self, alias: str = "lake", url: str | None = None) -> duckdb.DuckDBPyConnection:
        connection = connect()
        if self.seaweed is not None:
            host = self.seaweed.endpoint_url.removeprefix("http://")
            connection.execute(
                f"CREATE SECRET (TYPE s3, KEY_ID '{self.seaweed.access_key}', SECRET '{self.seaweed.secret_key}', "
                f"REGION '{self.seaweed.region}', ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false)"
            )
        connection.execute(
            f"ATTACH 'default' AS {alias} (TYPE iceberg, ENDPOINT '{url or self.url}', AUTHORIZATION_TYPE 'none')"
        )
        return connection

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """``iceshelf ARGS --warehouse <this warehouse>``: the CLI working on the server's warehouse directly."""
        return subprocess.run(
            [sys.executable, "-m", "iceshelf.catalog.cli", *args, "--warehouse", self.warehouse],
            capture_output=True,
            text=True,
            env={**os.environ, **self.s3_env(), "COLUMNS": "200"},
            cwd=Path(__file__).parents[1],
            timeout=120,
        )


def unique_name(stem: str = "ns") -> str:
    return f"{stem}_{uuid.uuid4().hex[:10]}"
