"""``signRequest``: Iceberg's S3 signer endpoint, one per table (its ``s3.signer.endpoint`` in LoadTable).

The table in the path says which location the request must stay in, so no key has to be mapped
back to its table. Reads need ``read`` on the table, everything else ``write``; a table being
created by a staged create has no location yet, so its writer may sign inside the fresh default
location the stage answer named.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from iceshelf.catalog import auth
from iceshelf.catalog.deps import identifier_param, warehouse
from iceshelf.catalog.models import S3SignRequest
from iceshelf.tables.access import Level
from iceshelf.tables.delegation.scope import TableScope, staged_scope, table_scope
from iceshelf.tables.delegation.signing import RemoteSigner, SignRequest
from iceshelf.tables.errors import BadRequestError, ForbiddenError, NoSuchTableError

router = APIRouter(prefix="/v1/{prefix}", tags=["signer"])


@router.post("/namespaces/{namespace}/tables/{table}/sign", operation_id="signRequest")
def sign_s3_request(request: Request, prefix: str, namespace: str, table: str, body: S3SignRequest) -> JSONResponse:
    tables = warehouse(request, prefix)
    if not tables.objects.root_uri.startswith("s3://"):
        raise BadRequestError(f"Warehouse {tables.name} is not on S3: there is nothing to sign")
    ident = identifier_param(namespace, table)
    signer: RemoteSigner = request.app.state.signer
    sign_request = SignRequest(body.method, body.uri, body.headers)
    target = signer.target(sign_request)
    resource = auth.table_resource(request, prefix, ident.namespace, ident.name)
    try:
        scope: TableScope | None = table_scope(tables.objects, ident.namespace, tables.load_table(ident).metadata.location)
        auth.require(request, target.level, resource)
    except NoSuchTableError:
        auth.require(request, Level.WRITE, resource)
        scope = staged_scope(tables.objects, ident, *target.objects[0])
    for bucket, key in target.objects:
        if scope is None or not scope.contains(bucket, key):
            raise ForbiddenError(f"s3://{bucket}/{key} lies outside the location of table {ident}")
    return JSONResponse({"uri": body.uri, "headers": signer.sign(sign_request)}, headers={"Cache-Control": "no-store"})
