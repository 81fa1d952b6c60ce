"""Request bodies the spec defines and pyiceberg has no (server-friendly) model for.

Where pyiceberg has the model, it is used as is: schemas, specs, sort orders, ``TableUpdate``
and ``TableRequirement`` unions. These wrappers only add the spec's optional fields' defaults.
"""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.sorting import SortOrder
from pyiceberg.table.update import TableRequirement, TableUpdate

from iceshelf.tables.errors import InvalidArgumentError
from iceshelf.tables.metadata.types import resolve_schema_json

#: What pyiceberg's model validators raise on malformed input besides ``ValueError`` (e.g. a ``KeyError``
#: for a ``set-statistics`` without ``statistics``, a ``TypeError`` for a default value of the wrong type).
_MALFORMED = (TypeError, LookupError, AttributeError, ArithmeticError)
#: Iceberg's JSON integers are Java ints and longs: a larger one would be stored, and then every Java
#: client (Spark, Trino) would fail to load the table.
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
#: Fields Iceberg's JSON parsers read as Java ints (field, spec, sort-order and schema ids): a larger one
#: is refused as Java's ``JsonUtil.getInt`` refuses it.
_INT_KEYS = frozenset(
    {
        "id", "field-id", "source-id", "element-id", "key-id", "value-id",
        "schema-id", "current-schema-id", "last-column-id",
        "spec-id", "default-spec-id", "last-partition-id", "last-assigned-partition-id",
        "order-id", "sort-order-id", "default-sort-order-id",
    }
)  # fmt: skip
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def _check_json_values(data: object) -> None:
    """Reject what JSON can carry but Iceberg metadata cannot: integers beyond a long, unpaired surrogates."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            for key in _INT_KEYS.intersection(value):
                if isinstance(value[key], int) and not _INT_MIN <= value[key] <= _INT_MAX:
                    raise InvalidArgumentError(f"Cannot parse to an integer value: {key}: {value[key]}")
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, int) and not _LONG_MIN <= value <= _LONG_MAX:
            raise ValueError("an integer is out of the 64-bit range of Iceberg's longs")
        elif isinstance(value, str) and not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise ValueError(f"{value[:40]!r} is not valid Unicode (unpaired surrogate)") from None


class RequestModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", arbitrary_types_allowed=True)

    @model_validator(mode="wrap")
    @classmethod
    def _malformed_is_invalid(cls, data: object, handler: ValidatorFunctionWrapHandler) -> "RequestModel":
        """Parsing only reads the request: any of these is the input's fault, so a 400, not a 500."""
        _check_json_values(data)
        try:
            return handler(resolve_schema_json(data, check_defaults=True))
        except _MALFORMED as err:
            raise ValueError(f"malformed {cls.__name__} ({type(err).__name__}: {err})") from None


class TableIdentifierModel(RequestModel):
    namespace: list[str]
    name: str


class CreateNamespaceRequest(RequestModel):
    namespace: list[str]
    properties: dict[str, str] = Field(default_factory=dict)


class UpdateNamespacePropertiesRequest(RequestModel):
    removals: list[str] = Field(default_factory=list)
    updates: dict[str, str] = Field(default_factory=dict)


class CreateTableRequest(RequestModel):
    name: str
    location: str | None = None
    table_schema: Schema = Field(alias="schema")
    partition_spec: PartitionSpec | None = Field(default=None, alias="partition-spec")
    write_order: SortOrder | None = Field(default=None, alias="write-order")
    stage_create: bool = Field(default=False, alias="stage-create")
    properties: dict[str, str] = Field(default_factory=dict)


class RegisterTableRequest(RequestModel):
    name: str
    metadata_location: str = Field(alias="metadata-location")
    overwrite: bool = False


class RenameTableRequest(RequestModel):
    source: TableIdentifierModel
    destination: TableIdentifierModel


class CommitTableRequest(RequestModel):
    identifier: TableIdentifierModel | None = None
    requirements: tuple[TableRequirement, ...] = ()
    updates: tuple[TableUpdate, ...] = ()


class CommitTransactionRequest(RequestModel):
    table_changes: list[CommitTableRequest] = Field(alias="table-changes", min_length=1)


class RegisterViewRequest(RequestModel):
    name: str
    metadata_location: str = Field(alias="metadata-location")


class ReportMetricsRequest(RequestModel):
    model_config = ConfigDict(extra="allow")
    report_type: str = Field(alias="report-type")
    table_name: str = Field(alias="table-name")
    snapshot_id: int = Field(alias="snapshot-id")


class S3SignRequest(RequestModel):
    """Iceberg's ``s3-signer-open-api`` request: the S3 request a client is about to send."""

    region: str
    uri: str
    method: str
    headers: dict[str, list[str]] = Field(default_factory=dict)
