"""What the compaction tests share: a table store on a test server's warehouse, and exact row multisets.

Compaction is a server-side job: the tests run it in-process on a ``TableStore`` over the same
warehouse the test's Iceshelf server serves (as a second replica would), while every writer
and reader is a real client over HTTP (pyiceberg, DuckDB).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Callable

import duckdb
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table

from iceshelf.tables.objectstore import ObjectStore, open_store
from iceshelf.tables.settings import S3Settings
from iceshelf.tables.tablestore import TableStore
from tests.clients import CatalogEnv


def warehouse_store(env: CatalogEnv) -> ObjectStore:
    return open_store(env.warehouse, env.seaweed.s3_settings() if env.seaweed else S3Settings())


def table_store(env: CatalogEnv, store: ObjectStore | None = None) -> TableStore:
    return TableStore("default", store or warehouse_store(env))


def rows(con: duckdb.DuckDBPyConnection, table: str, columns: str = "*") -> Counter:
    """The table's rows as a multiset (every duplicate counts)."""
    return Counter(con.sql(f"SELECT {columns} FROM {table}").fetchall())


def fresh_rows(env: CatalogEnv, table: str, columns: str = "*") -> Counter:
    """Read with a new DuckDB client, so nothing cached from before a commit can answer."""
    con = env.duckdb()
    try:
        return rows(con, f"lake.{table}", columns)
    finally:
        con.close()


def scanned_rows(table: Table) -> Counter:
    """The rows as pyiceberg reads them: a second reader, and cheaper to start than DuckDB."""
    data = table.scan().to_arrow()
    return Counter(zip(*(data[name].to_pylist() for name in data.column_names)))


def retrying(action: Callable[[], object], attempts: int = 50) -> object:
    """A client's retry loop: a lost commit race (409, or DuckDB's conflict error) is retried."""
    for attempt in range(attempts):
        try:
            return action()
        except (CommitFailedException, duckdb.Error) as err:
            if attempt == attempts - 1 or not _is_conflict(err):
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _is_conflict(err: Exception) -> bool:
    text = str(err).lower()
    return isinstance(err, CommitFailedException) or "409" in text or "conflict" in text or "commit" in text


def append(catalog: RestCatalog, table: str, data) -> None:
    retrying(lambda: catalog.load_table(table).append(data))


def data_files(table: Table) -> list:
    return [task.file for task in table.scan().plan_files()]


def delete_file_count(table: Table) -> int:
    return sum(len(task.delete_files) for task in table.scan().plan_files())


def referenced_files(table: Table) -> set[str]:
    """Every file any snapshot of the table reaches: manifest lists, manifests, data and delete files."""
    io = table.io
    found: set[str] = set()
    for snapshot in table.metadata.snapshots:
        found.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(io):
            found.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=False):
                found.add(entry.data_file.file_path)
    found.update(entry.metadata_file for entry in table.metadata.metadata_log)
    found.add(table.metadata_location)
    return found


def table_objects(store: ObjectStore, table: Table) -> set[str]:
    """Every object under the table's location, as absolute locations."""
    prefix = store.key_of(table.metadata.location.rstrip("/") + "/")
    assert prefix
    return {store.uri(meta.key) for meta in store.list(prefix)}
