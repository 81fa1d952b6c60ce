"""REST routes for maintenance configuration and job status, shaped after the S3 Tables API.

| route | S3 Tables operation |
|---|---|
| ``GET  /v1/{prefix}/namespaces/{ns}/tables/{table}/maintenance`` | GetTableMaintenanceConfiguration |
| ``PUT  /v1/{prefix}/namespaces/{ns}/tables/{table}/maintenance/{type}`` | PutTableMaintenanceConfiguration |
| ``GET  /v1/{prefix}/namespaces/{ns}/tables/{table}/maintenance/jobs`` | GetTableMaintenanceJobStatus (+ run history) |
| ``GET  /v1/{prefix}/maintenance`` | GetTableBucketMaintenanceConfiguration |
| ``PUT  /v1/{prefix}/maintenance/{type}`` | PutTableBucketMaintenanceConfiguration |

A ``PUT`` body is S3 Tables' ``{"value": {"status": ..., "settings": {...}}}``. A ``GET`` answers
the effective configuration: fields left unset resolve to the table's Iceberg properties
(``history.expire.*``, ``write.target-file-size-bytes``), else to S3 Tables' defaults.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from iceshelf.catalog.deps import identifier_param, warehouse
from iceshelf.compaction.jobs.config import (
    CONFIG_MODELS,
    JOB_TYPES,
    TABLE_JOB_TYPES,
    WAREHOUSE_JOB_TYPES,
    JobType,
    effective_table_config,
    effective_warehouse_config,
    is_enabled,
)
from iceshelf.compaction.jobs.records import MaintenanceStore
from iceshelf.tables.errors import BadRequestError
from iceshelf.tables.tablestore import LoadedTable, TableStore


class PutMaintenanceRequest(BaseModel):
    value: dict[str, Any]


def _job_type(job: str, allowed: tuple[JobType, ...], scope: str) -> JobType:
    if job not in allowed:
        raise BadRequestError(f"Unknown {scope} maintenance type {job!r}; one of {', '.join(allowed)}")
    return job  # type: ignore[return-value]


def _table_body(tables: TableStore, table: LoadedTable) -> dict:
    metadata = table.metadata
    config = MaintenanceStore(tables.objects).table_config(str(metadata.table_uuid))
    return {
        "warehouse": tables.name,
        "namespace": list(table.identifier.namespace),
        "name": table.identifier.name,
        "tableUUID": str(metadata.table_uuid),
        "configuration": effective_table_config(config, metadata.properties).model_dump(mode="json"),
    }


def _warehouse_body(tables: TableStore) -> dict:
    config = effective_warehouse_config(MaintenanceStore(tables.objects).warehouse_config())
    return {"warehouse": tables.name, "configuration": config.model_dump(mode="json")}

router = APIRouter(prefix="/v1/{prefix}", tags=["maintenance"])


@router.get("/namespaces/{namespace}/tables/{table}/maintenance", operation_id="getTableMaintenanceConfiguration")
def get_table_maintenance(request: Request, prefix: str, namespace: str, table: str) -> dict:
    tables = warehouse(request, prefix)
    return _table_body(tables, tables.load_table(identifier_param(namespace, table)))

@router.put("/namespaces/{namespace}/tables/{table}/maintenance/{job}", operation_id="putTableMaintenanceConfiguration")
def put_table_maintenance(
    request: Request, prefix: str, namespace: str, table: str, job: str, body: PutMaintenanceRequest
) -> dict:
    job_type = _job_type(job, TABLE_JOB_TYPES, "table")
    value = CONFIG_MODELS[job_type].model_validate(body.value)
    tables = warehouse(request, prefix)
    loaded = tables.load_table(identifier_param(namespace, table))
    MaintenanceStore(tables.objects).put_table_config(str(loaded.metadata.table_uuid), job_type, value)
    return _table_body(tables, loaded)

@router.get("/namespaces/{namespace}/tables/{table}/maintenance/jobs", operation_id="getTableMaintenanceJobStatus")
def get_table_jobs(request: Request, prefix: str, namespace: str, table: str) -> dict:
    tables = warehouse(request, prefix)
    loaded = tables.load_table(identifier_param(namespace, table))
    documents = MaintenanceStore(tables.objects)
    table_uuid = str(loaded.metadata.table_uuid)
    config, state = documents.table_config(table_uuid), documents.table_state(table_uuid)
    warehouse_config = documents.warehouse_config()
    return {
        "tableUUID": table_uuid,
        "status": {
            job: state.status(job, is_enabled(job, config, warehouse_config)).model_dump(mode="json") for job in JOB_TYPES
        },
        "history": [run.model_dump(mode="json") for run in state.history],
    }

@router.get("/maintenance", operation_id="getWarehouseMaintenanceConfiguration")
def get_warehouse_maintenance(request: Request, prefix: str) -> dict:
    return _warehouse_body(warehouse(request, prefix))

@router.put("/maintenance/{job}", operation_id="putWarehouseMaintenanceConfiguration")
def put_warehouse_maintenance(request: Request, prefix: str, job: str, body: PutMaintenanceRequest) -> dict:
    job_type = _job_type(job, WAREHOUSE_JOB_TYPES, "warehouse")
    value = CONFIG_MODELS[job_type].model_validate(body.value)
    tables = warehouse(request, prefix)
    MaintenanceStore(tables.objects).put_warehouse_config(job_type, value)
    return _warehouse_body(tables)
