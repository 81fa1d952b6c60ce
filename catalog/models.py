"""Request bodies the spec defines and pyiceberg has no (server-friendly) model for.

Where pyiceberg has the model, it is used as is: schemas, specs, sort orders, ``TableUpdate``
and ``TableRequirement`` unions. These wrappers only add the spec's optional fields' defaults.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.sorting import SortOrder
from pyiceberg.table.update import TableRequirement, TableUpdate


class _Request(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", arbitrary_types_allowed=True)


class TableIdentifierModel(_Request):
    namespace: list[str]
    name: str


class CreateNamespaceRequest(_Request):
    namespace: list[str]
    properties: dict[str, str] = Field(default_factory=dict)


class UpdateNamespacePropertiesRequest(_Request):
    removals: list[str] = Field(default_factory=list)
    updates: dict[str, str] = Field(default_factory=dict)


class CreateTableRequest(_Request):
    name: str
    location: str | None = None
    table_schema: Schema = Field(alias="schema")
    partition_spec: PartitionSpec | None = Field(default=None, alias="partition-spec")
    write_order: SortOrder | None = Field(default=None, alias="write-order")
    stage_create: bool = Field(default=False, alias="stage-create")
    properties: dict[str, str] = Field(default_factory=dict)


class RegisterTableRequest(_Request):
    name: str
    metadata_location: str = Field(alias="metadata-location")
    overwrite: bool = False


class RenameTableRequest(_Request):
    source: TableIdentifierModel
    destination: TableIdentifierModel


class CommitTableRequest(_Request):
    identifier: TableIdentifierModel | None = None
    requirements: tuple[TableRequirement, ...] = ()
    updates: tuple[TableUpdate, ...] = ()


class CommitTransactionRequest(_Request):
    table_changes: list[CommitTableRequest] = Field(alias="table-changes", min_length=1)


class ReportMetricsRequest(_Request):
    model_config = ConfigDict(extra="allow")
    report_type: str = Field(alias="report-type")
    table_name: str = Field(alias="table-name")
    snapshot_id: int = Field(alias="snapshot-id")
