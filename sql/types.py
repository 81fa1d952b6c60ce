"""Result columns as Trino sees them: type names, ``typeSignature``s and JSON values.

DuckDB hands results over as Arrow; Trino clients decode each value by its column's
``typeSignature`` (decimals as strings, timestamps as ``YYYY-MM-DD HH:MM:SS.ffffff``, varbinary as
base64, rows as arrays, maps as objects). The Athena-style JSON results use the same encoding and
type names, since Athena's SQL is Trino's.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
from dataclasses import dataclass
from typing import Any, Callable

import pyarrow as pa

Encoder = Callable[[Any], Any]


@dataclass(frozen=True)
class TrinoType:
    name: str
    signature: dict

    def column(self, name: str) -> dict:
        return {"name": name, "type": self.name, "typeSignature": self.signature}


def _simple(raw: str, *longs: int) -> TrinoType:
    name = f"{raw}({','.join(map(str, longs))})" if longs else raw
    return TrinoType(name, {"rawType": raw, "arguments": [{"kind": "LONG", "value": v} for v in longs]})


_UNBOUNDED_VARCHAR = TrinoType("varchar", {"rawType": "varchar", "arguments": [{"kind": "LONG", "value": 2147483647}]})
_PRECISION = {"s": 0, "ms": 3, "us": 6, "ns": 9}


def trino_type(t: pa.DataType) -> TrinoType:
    """The Trino type of an Arrow type; anything without a Trino counterpart is sent as ``varchar``."""
    if pa.types.is_dictionary(t):
        return trino_type(t.value_type)
    if isinstance(t, pa.ExtensionType):
        return _simple("uuid") if t.extension_name == "arrow.uuid" else trino_type(t.storage_type)
    for predicate, raw in (
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_int8, "tinyint"),
        (pa.types.is_int16, "smallint"),
        (pa.types.is_uint8, "smallint"),
        (pa.types.is_int32, "integer"),
        (pa.types.is_uint16, "integer"),
        (pa.types.is_int64, "bigint"),
        (pa.types.is_uint32, "bigint"),
        (pa.types.is_float16, "real"),
        (pa.types.is_float32, "real"),
        (pa.types.is_float64, "double"),
        (pa.types.is_date, "date"),
        (pa.types.is_null, "unknown"),
    ):
        if predicate(t):
            return _simple(raw)
    if pa.types.is_uint64(t):
        return _simple("decimal", 20, 0)
    if pa.types.is_decimal(t):
        return _simple("decimal", t.precision, t.scale)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t):
        return _simple("varbinary")
    if pa.types.is_time(t):
        return _simple("time", _PRECISION[t.unit])
    if pa.types.is_timestamp(t):
        plain = _simple("timestamp", _PRECISION[t.unit])
        if t.tz is None:
            return plain
        return TrinoType(f"{plain.name} with time zone", {**plain.signature, "rawType": "timestamp with time zone"})
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_list_view(t):
        item = trino_type(t.value_type)
        return TrinoType(f"array({item.name})", {"rawType": "array", "arguments": [{"kind": "TYPE", "value": item.signature}]})
    if pa.types.is_map(t):
        key, value = trino_type(t.key_type), trino_type(t.item_type)
        return TrinoType(
            f"map({key.name}, {value.name})",
            {"rawType": "map", "arguments": [{"kind": "TYPE", "value": key.signature}, {"kind": "TYPE", "value": value.signature}]},
        )
    if pa.types.is_struct(t):
        fields = [(f.name, trino_type(f.type)) for f in t]
        return TrinoType(
            f"row({', '.join(f'{_quote_field(n)} {ft.name}' for n, ft in fields)})",
            {
                "rawType": "row",
                "arguments": [
                    {"kind": "NAMED_TYPE", "value": {"fieldName": {"name": n}, "typeSignature": ft.signature}} for n, ft in fields
                ],
            },
        )
    return _UNBOUNDED_VARCHAR


#: ``java.sql.Types`` codes of Trino's types, as its ``system.jdbc.columns`` reports them; others are JAVA_OBJECT.
_JDBC_TYPES = {
    "boolean": 16, "bigint": -5, "integer": 4, "smallint": 5, "tinyint": -6, "real": 7, "double": 8, "decimal": 3,
    "varchar": 12, "char": 1, "varbinary": -3, "date": 91, "time": 92, "time with time zone": 2013,
    "timestamp": 93, "timestamp with time zone": 2014, "array": 2003,
}  # fmt: skip
_JAVA_OBJECT = 2000
_MAX_INT = 2147483647
#: Fixed display sizes of Trino's ``system.jdbc.columns`` (digits of the largest value, IEEE mantissa bits, days as a date).
_FIXED_SIZES = {"bigint": 19, "integer": 10, "smallint": 5, "tinyint": 3, "real": 24, "double": 53, "date": 14, "varbinary": _MAX_INT}
#: Length of the longest time zone name (``America/Argentina/ComodRivadavia``), part of a zoned timestamp's size.
_MAX_ZONE_LENGTH = 32


def jdbc_column(t: TrinoType) -> dict:
    """The JDBC ``DatabaseMetaData.getColumns`` figures of a Trino type, computed as Trino computes them."""
    raw = t.signature["rawType"]
    longs = [argument["value"] for argument in t.signature["arguments"] if argument["kind"] == "LONG"]
    size, digits = _FIXED_SIZES.get(raw), None
    if raw == "decimal":
        size, digits = longs[0], longs[1]
    elif raw in ("varchar", "char"):
        size = longs[0] if longs else _MAX_INT
    elif raw.startswith(("time", "timestamp")):
        digits = longs[0]
        fraction = min(digits, 1) + digits
        size = {
            "time": 8 + fraction,
            "time with time zone": 8 + fraction + 6,
            "timestamp": 1 + 5 + 15 + fraction,
            "timestamp with time zone": 1 + 6 + 15 + fraction + 1 + _MAX_ZONE_LENGTH,
        }[raw]
    return {
        "data_type": _JDBC_TYPES.get(raw, _JAVA_OBJECT),
        "type_name": t.name,
        "column_size": size,
        "decimal_digits": digits,
        "num_prec_radix": 10 if raw in ("bigint", "integer", "smallint", "tinyint", "decimal") else 2 if raw in ("real", "double") else None,
        "char_octet_length": size if raw in ("varchar", "char", "varbinary") else None,
    }


def _quote_field(name: str) -> str:
    return name if name.isidentifier() else '"' + name.replace('"', '""') + '"'


def encoder(t: pa.DataType) -> Encoder:
    """How one value of Arrow type ``t`` (as ``to_pylist`` gives it) is written in Trino's JSON."""
    if pa.types.is_dictionary(t):
        return encoder(t.value_type)
    if isinstance(t, pa.ExtensionType):
        return _nullable(str) if t.extension_name == "arrow.uuid" else encoder(t.storage_type)
    if pa.types.is_floating(t):
        return _nullable(_float)
    if pa.types.is_decimal(t) or pa.types.is_uint64(t):
        return _nullable(lambda v: format(v, "f") if isinstance(v, decimal.Decimal) else str(v))
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t):
        return _nullable(lambda v: base64.b64encode(v).decode())
    if pa.types.is_timestamp(t):
        return _nullable(_timestamp(_PRECISION[t.unit], t.tz is not None))
    if pa.types.is_time(t) or pa.types.is_date(t):
        return _nullable(lambda v: v.isoformat())
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_list_view(t):
        item = encoder(t.value_type)
        return _nullable(lambda v: [item(x) for x in v])
    if pa.types.is_map(t):
        key, value = encoder(t.key_type), encoder(t.item_type)
        return _nullable(lambda v: {str(key(k)): value(x) for k, x in v})
    if pa.types.is_struct(t):
        fields = [(f.name, encoder(f.type)) for f in t]
        return _nullable(lambda v: [enc(v[name]) for name, enc in fields])
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
        return _identity
    return _nullable(str)


def _identity(value: Any) -> Any:
    return value


def _nullable(fn: Encoder) -> Encoder:
    return lambda v: None if v is None else fn(v)


def _float(value: float) -> Any:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _timestamp(precision: int, zoned: bool) -> Encoder:
    def encode(value: Any) -> str:
        if not isinstance(value, dt.datetime):  # e.g. nanosecond precision, which datetime cannot hold
            return str(value)
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        if precision:
            text += "." + f"{value.microsecond:06d}".ljust(precision, "0")[:precision]
        if zoned:
            offset = value.utcoffset() or dt.timedelta(0)
            text += " UTC" if offset == dt.timedelta(0) else " " + _offset(offset)
        return text

    return encode


def _offset(offset: dt.timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def rows_json(table: pa.Table, start: int = 0, stop: int | None = None) -> list[list[Any]]:
    """Rows ``start:stop`` of ``table`` as Trino JSON values, row-major."""
    part = table.slice(start, None if stop is None else stop - start)
    columns = [[enc(v) for v in column.to_pylist()] for enc, column in zip((encoder(f.type) for f in part.schema), part.columns)]
    return [list(row) for row in zip(*columns)] if columns else [[] for _ in range(part.num_rows)]


def columns_json(schema: pa.Schema) -> list[dict]:
    return [trino_type(f.type).column(f.name) for f in schema]
