"""How a rewrite orders rows: not at all (binpack), by the table's sort order, or along a Z-order curve.

Z-order (S3 Tables' ``z-order`` strategy; Iceberg's Spark ``zorder(...)`` sort) maps each chosen
column onto an unsigned integer of ``64 // n`` bits (at most 32) and sorts rows by the key that
interleaves those bits, most significant first. Rows close in *every* column get close keys, so a
file cut from a run of keys covers a small box in every column, and the min/max bounds in the
manifests prune on any of them -- a plain sort prunes well on its first column only.

Each column is scaled between the group's own minimum and maximum, so the bits are spent where
the data is: numbers, dates and times by value; strings and binary by their first 8 bytes after
the prefix every value of the group shares (Iceberg's Spark z-order takes the first 8 bytes too,
without dropping the shared prefix). NULL maps to 0. The key is computed in SQL, no UDF: the
sort is an ordinary DuckDB sort, streaming and spilling like the ``sort`` strategy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import duckdb
from pyiceberg.schema import Schema
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.sorting import NullOrder, SortDirection, SortOrder
from pyiceberg.transforms import DayTransform, HourTransform, IdentityTransform, MonthTransform, TruncateTransform, YearTransform
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
    TimestampType,
    TimestamptzType,
    TimeType,
)

#: Transforms that preserve order: sorting by the source column sorts by the transform too.
_MONOTONE = (IdentityTransform, YearTransform, MonthTransform, DayTransform, HourTransform, TruncateTransform)
_NUMERIC = (BooleanType, IntegerType, LongType, FloatType, DoubleType, DecimalType)
_TEMPORAL = (DateType, TimeType, TimestampType, TimestamptzType)
_BYTES = (StringType, BinaryType)
MAX_ZORDER_COLUMNS = 8
_PREFIX_HEX = 16  # 8 bytes


@dataclass(frozen=True)
class ZOrder:
    """Interleave these top-level columns (field ids), first column most significant."""

    field_ids: tuple[int, ...]


#: What a rewrite orders by: ``None`` (binpack), the table's sort order, or a Z-order.
Ordering = SortOrder | ZOrder | None


def sortable(metadata: TableMetadata) -> bool:
    """A sort order DuckDB can reproduce: top-level source columns, order-preserving transforms."""
    order = metadata.sort_order()
    if order.is_unsorted:
        return False
    top_level = {f.field_id for f in metadata.schema().fields}
    return all(f.source_id in top_level and isinstance(f.transform, _MONOTONE) for f in order.fields)


def zorder_of(metadata: TableMetadata, columns: tuple[str, ...]) -> ZOrder:
    """The Z-order over ``columns``, or -- as S3 Tables does -- over the table sort order's columns."""
    schema = metadata.schema()
    if columns:
        fields = [schema.find_field(name) for name in columns]
    else:
        fields = [schema.find_field(f.source_id) for f in metadata.sort_order().fields]
    ids = tuple(dict.fromkeys(f.field_id for f in fields))
    if not ids:
        raise ValueError("The z-order strategy needs columns: give them, or define a table sort order")
    if len(ids) > MAX_ZORDER_COLUMNS:
        raise ValueError(f"Z-order interleaves at most {MAX_ZORDER_COLUMNS} columns")
    top_level = {f.field_id for f in schema.fields}
    for field in fields:
        if field.field_id not in top_level or not isinstance(field.field_type, (*_NUMERIC, *_TEMPORAL, *_BYTES)):
            raise ValueError(f"Cannot z-order by {field.name} ({field.field_type}): only top-level numbers, dates, times and strings")
    return ZOrder(ids)


def ordered(connection: duckdb.DuckDBPyConnection, order: Ordering, schema: Schema, source: str) -> tuple[str, str]:
    """``(relation, ORDER BY clause)`` for rows of ``source`` (a relation with ``c<field id>`` columns).

    The relation is to be aliased ``d``; for a Z-order it adds the scaled columns, and the group's
    bounds are read from ``source`` first (one aggregate over just those columns).
    """
    if order is None:
        return source, ""
    if isinstance(order, SortOrder):
        return source, " ORDER BY " + ", ".join(_sort_term(f.source_id, f.direction, f.null_order) for f in order.fields)
    bits = min(32, 64 // len(order.field_ids))
    scaled = _scaled(connection, order, schema, source, bits)
    relation = f"(SELECT *, {', '.join(f'{sql} AS z{n}' for n, sql in enumerate(scaled))} FROM {source} d)"
    return relation, f" ORDER BY {_interleave(len(scaled), bits)}"


def _sort_term(source_id: int, direction: SortDirection, null_order: NullOrder) -> str:
    nulls = "NULLS FIRST" if null_order == NullOrder.NULLS_FIRST else "NULLS LAST"
    return f"d.c{source_id} {'ASC' if direction == SortDirection.ASC else 'DESC'} {nulls}"


def _scaled(connection: duckdb.DuckDBPyConnection, order: ZOrder, schema: Schema, source: str, bits: int) -> list[str]:
    """Each column as ``UBIGINT`` in ``[0, 2^bits)``, linear between the group's bounds."""
    fields = [schema.find_field(fid) for fid in order.field_ids]
    aggregates = []
    for field in fields:
        value = f"d.c{field.field_id}"
        if isinstance(field.field_type, _BYTES):
            aggregates += [f"hex(min({value}))", f"hex(max({value}))"]
        else:
            aggregates += [f"min({_number(field.field_type, value)})", f"max({_number(field.field_type, value)})"]
    bounds = connection.execute(f"SELECT {', '.join(aggregates)} FROM {source} d").fetchone()
    top = (1 << bits) - 1
    out = []
    for n, field in enumerate(fields):
        low, high = bounds[2 * n], bounds[2 * n + 1]
        value = f"d.c{field.field_id}"
        if isinstance(field.field_type, _BYTES) and low is not None:
            shared = _shared_bytes(low, high)
            number = f"CAST(('0x' || rpad(substr(hex({value}), {2 * shared + 1}, {_PREFIX_HEX}), {_PREFIX_HEX}, '0')) AS UBIGINT)"
            low, high = _prefix_number(low, shared), _prefix_number(high, shared)
        else:
            number = _number(field.field_type, value)
        if low is None or not (math.isfinite(low) and math.isfinite(high)) or high <= low:
            # All NULL or one value: nothing to order by. Infinite or NaN bounds: no scale exists.
            out.append("CAST(0 AS UBIGINT)")
            continue
        scale = top / (float(high) - float(low))
        out.append(
            f"COALESCE(CAST(LEAST(GREATEST(floor((CAST({number} AS DOUBLE) - {float(low)!r}) * {scale!r}), 0), {top}) AS UBIGINT), 0)"
        )
    return out


def _number(field_type: object, value: str) -> str:
    if isinstance(field_type, _TEMPORAL):
        return f"epoch({value})"
    return f"CAST({value} AS DOUBLE)"


def _shared_bytes(low_hex: str, high_hex: str) -> int:
    n = 0
    while n + 2 <= min(len(low_hex), len(high_hex)) and low_hex[n : n + 2] == high_hex[n : n + 2]:
        n += 2
    return n // 2


def _prefix_number(hex_value: str, shared: int) -> int:
    """What the SQL computes for one value: the 8 bytes after the shared prefix, zero-padded."""
    return int(hex_value[2 * shared : 2 * shared + _PREFIX_HEX].ljust(_PREFIX_HEX, "0"), 16)


def _interleave(columns: int, bits: int) -> str:
    """Bit ``b`` of column ``i`` goes to position ``b * columns + (columns - 1 - i)``: the first column leads."""
    terms = [
        f"(((z{i} >> {b}) & CAST(1 AS UBIGINT)) << {b * columns + columns - 1 - i})" for b in range(bits) for i in range(columns)
    ]
    return " | ".join(terms)
