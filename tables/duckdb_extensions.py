"""DuckDB with its Iceberg stack installed offline, from the ``duckdb-extension-*`` wheels.

DuckDB cannot download extensions on machines without internet access, so Iceshelf ships
them as Python dependencies and installs them from the wheel's files.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import duckdb

EXTENSIONS = ("httpfs", "avro", "iceberg")


def extension_file(name: str) -> Path:
    package = importlib.import_module(f"duckdb_extension_{name}")
    files = sorted(Path(package.__file__).parent.glob(f"extensions/v{duckdb.__version__}/{name}.duckdb_extension"))
    if not files:
        raise RuntimeError(f"duckdb-extension-{name}=={duckdb.__version__} is not installed")
    return files[0]


def install_extensions(connection: duckdb.DuckDBPyConnection, names: tuple[str, ...] = EXTENSIONS) -> None:
    """Install (from the wheels) and load the Iceberg stack, or just ``names`` of it, into ``connection``."""
    for name in names:
        connection.execute(f"INSTALL '{extension_file(name)}'")
        connection.execute(f"LOAD {name}")


def connect(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(database)
    install_extensions(connection)
    return connection
