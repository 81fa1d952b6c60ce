"""``commitTransaction``: several tables' changes, all or none (DuckDB sends every write here)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from iceshelf.catalog import auth
from iceshelf.catalog.deps import warehouse
from iceshelf.catalog.idempotency import HEADER as IDEMPOTENCY_HEADER
from iceshelf.catalog.models import CommitTransactionRequest
from iceshelf.tables.access import Level, Resource
from iceshelf.tables.commit.committer import TableChange
from iceshelf.tables.errors import BadRequestError
from iceshelf.tables.names import check_identifier

router = APIRouter(prefix="/v1/{prefix}", tags=["transactions"])


@router.post("/transactions/commit", operation_id="commitTransaction", status_code=204)
def commit_transaction(request: Request, prefix: str, body: CommitTransactionRequest) -> Response:
    tables = warehouse(request, prefix)
    changes = []
    for change in body.table_changes:
        if change.identifier is None:
            raise BadRequestError("Every table change of a transaction needs an identifier")
        ident = check_identifier(tuple(change.identifier.namespace), change.identifier.name)
        auth.require(request, Level.WRITE, Resource.of_table(tables.name, ident))
        changes.append(TableChange(ident, change.requirements, change.updates, request.headers.get(IDEMPOTENCY_HEADER)))
    tables.commit_transaction(changes)
    return Response(status_code=204)
