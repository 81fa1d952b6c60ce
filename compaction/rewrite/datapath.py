"""The data path of a rewrite: DuckDB reading and writing a warehouse's Parquet files directly.

Manifests go through the table store's ``ObjectStore`` (``iceshelf.tables.objectstore.fileio``), but data files are
far too big for whole-object gets and puts: DuckDB streams them (ranged reads, multipart
uploads) and encodes row groups on every core, while pyarrow reads the footers of the files it
wrote (two ranged reads each) for the manifest metrics. Both are configured here from the same
S3 settings the store uses, so a warehouse needs one set of credentials.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import duckdb
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from iceshelf.tables.duckdb_extensions import install_extensions
from iceshelf.tables.objectstore import ObjectStore
from iceshelf.tables.settings import S3Settings


@dataclass(frozen=True)
class EngineOptions:
    """DuckDB's resource limits for a rewrite: larger-than-memory work spills to ``temp_directory``."""

    memory_limit: str = "2GB"
    #: Worker threads; ``None`` is one per core. Either way at most one per ``MEMORY_PER_THREAD`` of the limit.
    threads: int | None = None
    #: Where sorts and joins spill; ``None`` is a private directory under the system's temp dir.
    temp_directory: str | None = None
    #: Files up to this size are fetched whole in one GET instead of footer + column-chunk ranges.
    whole_file_read_bytes: int = 8 * 1024 * 1024


#: DuckDB's sort and Parquet writer keep a working set per thread that does not shrink with the
#: memory limit: in DuckDB 1.5 a sort with string columns needed ~100 MiB per thread (1 thread
#: sorted 1 GB of rows under 128 MB, 2 threads failed under 192 MB), and even a plain rewrite with
#: 2 threads failed under 64 MB where 1 thread passed. Fewer threads under a tight limit make a
#: larger-than-memory rewrite spill instead of failing.
MEMORY_PER_THREAD = 128 * 1024 * 1024
_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_SIZE_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def memory_bytes(text: str) -> int:
    """A DuckDB memory size (``64MB``, ``2 GiB``) in bytes, with DuckDB's units (KB = 1000, KiB = 1024)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if match is None or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"Not a memory size: {text!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def threads_for(options: EngineOptions) -> int:
    cores = int(options.threads or os.cpu_count() or 1)
    return max(1, min(cores, memory_bytes(options.memory_limit) // MEMORY_PER_THREAD))


def s3_settings_of(store: ObjectStore) -> S3Settings | None:
    """The S3 settings of the store, looking through wrappers (fault injection, metrics) via ``inner``."""
    while store is not None:
        settings = getattr(store, "settings", None)
        if isinstance(settings, S3Settings):
            return settings
        store = getattr(store, "inner", None)
    return None


class Engine:
    """One DuckDB connection (per job) and the path mapping between Iceberg locations and DuckDB."""

    def __init__(self, store: ObjectStore, options: EngineOptions = EngineOptions()) -> None:
        self.store = store
        self.options = options
        self.local = store.root_uri.startswith("file://")
        if not self.local and not store.root_uri.startswith(("s3://", "s3a://")):
            raise ValueError(f"Compaction needs a local or S3 warehouse, not {store.root_uri}")
        self.s3 = None if self.local else (s3_settings_of(store) or S3Settings())
        self._filesystem = pafs.LocalFileSystem() if self.local else _s3_filesystem(self.s3)
        self._own_temp = None if options.temp_directory else tempfile.mkdtemp(prefix="iceshelf-compaction-")
        self.connection = self._connect()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        connection = duckdb.connect()
        if not self.local:
            install_extensions(connection, ("httpfs",))  # the iceberg extension is not needed, and slow to load
        options = self.options
        connection.execute(f"SET memory_limit = '{options.memory_limit}'")
        connection.execute(f"SET threads = {threads_for(options)}")
        connection.execute("SET preserve_insertion_order = false")  # stream; ORDER BY still orders
        connection.execute(f"SET temp_directory = {quote_literal(options.temp_directory or self._own_temp)}")
        if self.s3 is not None:
            connection.execute(secret_sql(self.s3))
        return connection

    def close(self) -> None:
        self.connection.close()
        if self._own_temp:
            shutil.rmtree(self._own_temp, ignore_errors=True)

    # -- paths ---------------------------------------------------------------------------------

    def path(self, location: str) -> str:
        """What DuckDB and pyarrow open for an Iceberg location: a filesystem path or the s3:// URI.

        A local location is the warehouse root (a ``file://`` URI) plus a key taken literally, as
        the local store maps keys to files, so a ``kind=a%2Fb`` partition directory keeps its name.
        """
        if not self.local:
            return "s3://" + location.split("://", 1)[1]
        key = self.store.key_of(location)
        if key is None:
            return unquote(urlparse(location).path)
        holder, key = self.store.resolve(key)  # the warehouse's own store or an allowed location's
        return os.path.join(unquote(urlparse(holder.root_uri).path), key)

    def prepare_directory(self, location: str) -> str:
        """DuckDB creates an output directory but not its parents on a local disk."""
        path = self.path(location)
        if self.local:
            os.makedirs(os.path.dirname(path.rstrip("/")), exist_ok=True)
        return path

    def scratch_directory(self, name: str) -> str:
        """A fresh local directory for a rewrite's intermediate files, beside DuckDB's spill files."""
        parent = self.options.temp_directory or self._own_temp
        os.makedirs(parent, exist_ok=True)
        return tempfile.mkdtemp(prefix=f"{name}-", dir=parent)

    def use_whole_file_reads(self, sizes: list[int]) -> None:
        """Small S3 objects cost a round trip per range; fetch them whole when every input is small."""
        whole = not self.local and bool(sizes) and max(sizes) <= self.options.whole_file_read_bytes
        self.connection.execute(f"SET force_download = {'true' if whole else 'false'}")

    def footer(self, location: str) -> pq.FileMetaData:
        path = self.path(location)
        with self._filesystem.open_input_file(path if self.local else path.removeprefix("s3://")) as handle:
            return pq.read_metadata(handle)

    def delete(self, location: str) -> None:
        key = self.store.key_of(location)
        if key is None:
            raise ValueError(f"{location} lies outside the warehouse {self.store.root_uri}")
        self.store.delete(key)

    def remove_prefix(self, location: str) -> int:
        """Delete everything under ``location`` (a job's private output directory); returns how many."""
        prefix = self.store.key_of(location.rstrip("/") + "/")
        if not prefix:
            return 0
        keys = [meta.key for meta in self.store.list(prefix)]
        for key in keys:
            self.store.delete(key)
        return len(keys)


def quote_literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + _quote(text) + "'"


def _quote(text: str) -> str:
    return text.replace("'", "''")


def secret_sql(s3: S3Settings) -> str:
    parts = ["TYPE s3", f"REGION {quote_literal(s3.region)}"]
    if s3.access_key_id:
        parts += [f"KEY_ID {quote_literal(s3.access_key_id)}", f"SECRET {quote_literal(s3.secret_access_key or '')}"]
    if s3.session_token:
        parts.append(f"SESSION_TOKEN {quote_literal(s3.session_token)}")
    if s3.endpoint_url:
        endpoint = urlparse(s3.endpoint_url)
        parts += [
            f"ENDPOINT {quote_literal(endpoint.netloc)}",
            "URL_STYLE 'path'" if s3.path_style else "URL_STYLE 'vhost'",
            f"USE_SSL {'true' if endpoint.scheme == 'https' else 'false'}",
        ]
    return f"CREATE OR REPLACE SECRET iceshelf_warehouse ({', '.join(parts)})"


def _s3_filesystem(s3: S3Settings) -> pafs.S3FileSystem:
    kwargs: dict = {"region": s3.region}
    if s3.access_key_id:
        kwargs.update(access_key=s3.access_key_id, secret_key=s3.secret_access_key, session_token=s3.session_token)
    if s3.endpoint_url:
        endpoint = urlparse(s3.endpoint_url)
        kwargs.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme or "https")
    return pafs.S3FileSystem(**kwargs)
