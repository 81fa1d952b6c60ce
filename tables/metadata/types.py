"""Iceberg v3 types and column defaults as the spec writes them, around pyiceberg 0.12's models.

pyiceberg 0.12 has no ``variant`` type, reads ``geometry``/``geography`` only in its own quoted form
(``geometry('srid:4269')``) and writes a CRS back quoted, which Java and DuckDB read as a CRS that
includes the quotes; it cannot convert nanosecond-timestamp defaults, and takes a default of any
JSON type. Schema JSON therefore passes through ``resolve_schema_json`` before pyiceberg validates
it: type strings pyiceberg cannot read become the model instances below, which serialize in the
spec's form (``geometry(C)``, ``geography(C, A)``, ``variant``), and with ``check_defaults`` each
default is held to the JSON single-value form Java's ``SingleValueParser`` accepts.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, model_serializer
from pyiceberg import types as pyiceberg_types
from pyiceberg.conversions import from_json, to_json
from pyiceberg.typedef import TableVersion
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FixedType,
    FloatType,
    IcebergType,
    IntegerType,
    LongType,
    PrimitiveType,
    StringType,
    TimestampNanoType,
    TimestampType,
    TimestamptzNanoType,
    TimestamptzType,
    TimeType,
    UnknownType,
    UUIDType,
)
from pyiceberg.utils.datetime import EPOCH_TIMESTAMP, timestamp_to_nanos, timestamptz_to_nanos

from iceshelf.tables.errors import InvalidArgumentError

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
#: The spec's edge-interpolation algorithms for ``geography`` (Java's ``EdgeAlgorithm``).
EDGE_ALGORITHMS = ("spherical", "vincenty", "thomas", "andoyer", "karney")
DEFAULT_CRS = "OGC:CRS84"
DEFAULT_ALGORITHM = "spherical"
# Java's ``Types`` patterns, with pyiceberg's quoted form accepted too (its clients write it).
_GEOMETRY = re.compile(r"geometry\s*(?:\(\s*([^)]*?)\s*\))?", re.IGNORECASE)
_GEOGRAPHY = re.compile(r"geography\s*(?:\(\s*([^,]*?)\s*(?:,\s*(['\"]?\w*['\"]?)\s*)?\))?", re.IGNORECASE)


class VariantType(PrimitiveType):
    """v3's semi-structured ``variant`` (neither primitive nor nested in the spec; a leaf to pyiceberg's visitors)."""

    root: Literal["variant"] = Field(default="variant")

    def minimum_format_version(self) -> TableVersion:
        return 3


# The two classes keep pyiceberg's class names: its type validator recognises these types by name.


class GeometryType(pyiceberg_types.GeometryType):
    """``geometry`` written as the spec does: bare for the default CRS, else ``geometry(C)`` unquoted."""

    @model_serializer
    def ser_model(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return "geometry" if _is_default_crs(self.crs) else f"geometry({self.crs})"


class GeographyType(pyiceberg_types.GeographyType):
    """``geography`` written as the spec does: bare for the defaults, else ``geography(C, A)`` unquoted."""

    @model_serializer
    def ser_model(self) -> str:
        return str(self)

    def __str__(self) -> str:
        if _is_default_crs(self.crs) and self.algorithm == DEFAULT_ALGORITHM:
            return "geography"
        return f"geography({self.crs}, {self.algorithm})"


def _is_default_crs(crs: str) -> bool:
    return crs.upper() == DEFAULT_CRS  # Java compares CRS case-insensitively


def _unquoted(text: str | None) -> str | None:
    if text is not None and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    if text is not None and not text:
        raise InvalidArgumentError("Invalid CRS: (empty string)")
    return text


def parse_type(text: str) -> PrimitiveType | None:
    """The model for a type string pyiceberg cannot read right; ``None``: pyiceberg's own parser is right."""
    if text.lower() == "variant":
        return VariantType()
    if match := _GEOMETRY.fullmatch(text):
        return GeometryType(_unquoted(match.group(1)) or DEFAULT_CRS)
    if match := _GEOGRAPHY.fullmatch(text):
        algorithm = (_unquoted(match.group(2)) or DEFAULT_ALGORITHM).lower()
        if algorithm not in EDGE_ALGORITHMS:
            raise InvalidArgumentError(f"Invalid edge interpolation algorithm: {match.group(2)}")
        return GeographyType(_unquoted(match.group(1)) or DEFAULT_CRS, algorithm)
    if text.startswith(("geometry", "geography")):
        raise InvalidArgumentError(f"Cannot parse type string to primitive: {text}")
    return None


def resolve_schema_json(data: Any, check_defaults: bool) -> Any:
    """``data`` with every struct's field types that pyiceberg misreads replaced by the models above;
    with ``check_defaults``, defaults of the wrong JSON type refused (``InvalidArgumentError``)."""
    if isinstance(data, dict):
        resolved = {key: resolve_schema_json(value, check_defaults) for key, value in data.items()}
        if resolved.get("type") == "struct" and isinstance(resolved.get("fields"), (list, tuple)):
            resolved["fields"] = [_resolve_field(field, check_defaults) for field in resolved["fields"]]
        if resolved.get("type") == "list" and isinstance(resolved.get("element"), str):
            resolved["element"] = parse_type(resolved["element"]) or resolved["element"]
        if resolved.get("type") == "map":
            for key in ("key", "value"):
                if isinstance(resolved.get(key), str):
                    resolved[key] = parse_type(resolved[key]) or resolved[key]
        return resolved
    if isinstance(data, (list, tuple)):
        return [resolve_schema_json(item, check_defaults) for item in data]
    return data


#: Type strings pyiceberg misreads; metadata files without any parse faster as they are.
_NEEDS_RESOLVING = re.compile(rb'"(?i:variant|geometry|geography)')


def resolved_metadata_json(data: bytes) -> dict | None:
    """A table's or view's metadata file as JSON with its schemas resolved; ``None``: pyiceberg reads it right."""
    if not _NEEDS_RESOLVING.search(data):
        return None
    raw = json.loads(data)
    return resolve_metadata_dict(raw) if isinstance(raw, dict) else raw


def resolve_metadata_dict(raw: dict) -> dict:
    """``raw`` (a metadata JSON object) with its ``schemas`` (and v1's ``schema``) resolved."""
    for key in ("schemas", "schema"):
        if key in raw:
            raw[key] = resolve_schema_json(raw[key], check_defaults=False)
    return raw


def _resolve_field(field: Any, check_defaults: bool) -> Any:
    if not isinstance(field, dict):
        return field
    field_type = field.get("type")
    if isinstance(field_type, str):
        field = {**field, "type": parse_type(field_type) or field_type}
    if check_defaults:
        for key in ("initial-default", "write-default"):
            if field.get(key) is not None:
                check_default(field["type"], field[key])
    return field


#: The JSON type of each primitive's single-value form (Java's ``SingleValueParser.fromJson`` checks).
_JSON_FORMS: list[tuple[tuple[type, ...], str]] = [
    ((BooleanType,), "boolean"),
    ((IntegerType,), "int"),
    ((LongType,), "long"),
    ((FloatType, DoubleType), "float"),
    (
        (
            DecimalType,
            StringType,
            UUIDType,
            DateType,
            TimeType,
            TimestampType,
            TimestamptzType,
            TimestampNanoType,
            TimestamptzNanoType,
            FixedType,
            BinaryType,
        ),
        "string",
    ),
]
_NULL_ONLY = (UnknownType, VariantType, pyiceberg_types.GeometryType, pyiceberg_types.GeographyType)


def check_default(field_type: Any, value: Any) -> None:
    """Refuse a non-null default of the wrong JSON type for ``field_type`` (a type string or model)."""
    if isinstance(field_type, str):
        field_type = IcebergType.handle_primitive_type(field_type, None)
    if isinstance(field_type, _NULL_ONLY):
        raise InvalidArgumentError(f"Invalid default for {field_type} column: {value!r} (must be null)")
    for types, form in _JSON_FORMS:
        if isinstance(field_type, types):
            if not _has_json_form(value, form):
                raise InvalidArgumentError(f"Cannot parse default as a {field_type} value: {value!r}")
            try:
                from_json(field_type, value)
            except (ValueError, TypeError, ArithmeticError) as err:
                raise InvalidArgumentError(f"Cannot parse default as a {field_type} value: {value!r} ({err})") from None
            return


def _has_json_form(value: Any, form: str) -> bool:
    if form == "boolean":
        return isinstance(value, bool)
    if form in ("int", "long"):
        limit = (_INT_MIN, _INT_MAX) if form == "int" else (-(2**63), 2**63 - 1)
        return isinstance(value, int) and not isinstance(value, bool) and limit[0] <= value <= limit[1]
    if form == "float":
        return isinstance(value, float)
    return isinstance(value, str)


# -- nanosecond timestamps: pyiceberg converts their bytes, not their JSON -----------------------


@from_json.register(TimestampNanoType)
def _timestamp_ns_from_json(_: TimestampNanoType, value: str | int) -> int:
    """Nanoseconds from the epoch, as pyiceberg represents these types elsewhere."""
    return timestamp_to_nanos(value) if isinstance(value, str) else value


@from_json.register(TimestamptzNanoType)
def _timestamptz_ns_from_json(_: TimestamptzNanoType, value: str | int) -> int:
    if isinstance(value, str) and not value.endswith("+00:00"):
        raise InvalidArgumentError(f"Invalid timestamptz_ns default {value!r}: the offset must be +00:00")
    return timestamptz_to_nanos(value) if isinstance(value, str) else value


@to_json.register(TimestampNanoType)
def _timestamp_ns_to_json(_: TimestampNanoType, nanos: int) -> str:
    return _iso_nanos(nanos)


@to_json.register(TimestamptzNanoType)
def _timestamptz_ns_to_json(_: TimestamptzNanoType, nanos: int) -> str:
    return _iso_nanos(nanos) + "+00:00"


def _iso_nanos(nanos: int) -> str:
    """Java's ``ISO_LOCAL_DATE_TIME``: seconds always, the fraction with as few digits as it needs."""
    seconds, fraction = divmod(nanos, 1_000_000_000)
    text = (EPOCH_TIMESTAMP + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{fraction:09d}".rstrip("0") if fraction else text
