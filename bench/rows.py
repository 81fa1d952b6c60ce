"""The rows every append benchmark writes: one two-column schema and one-row Arrow tables.

The catalog benchmark's commits and the throughput benchmark's writers append the very same
small batch, so an append costs the same in both and their figures can be set side by side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.schema import Schema


def bench_schema() -> Schema:
    """The two-column schema of every benchmark table (``one_row`` rows)."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField, StringType

    return Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "payload", StringType(), required=False),
    )


def one_row(i: int) -> pa.Table:
    """Row ``i``: its id and a short payload."""
    import pyarrow as pa

    return pa.table({"id": pa.array([i], pa.int64()), "payload": pa.array([f"row-{i}"], pa.string())})
