"""Query history kept in the warehouse itself, so it survives restarts and is shared by replicas.

Per warehouse, under ``_sql/``:

* ``queries/<id>.json``   the final record of a query (state, timings, counts, error)
* ``results/<id>.arrow``  its result as an Arrow IPC file, written before the record
* ``tokens/<sha256>.json`` a client request token -> the query it started, written with ``Create``,
  so a retried submission finds the first one's query on any replica instead of running twice

Query ids start with a reversed millisecond timestamp, so a plain ascending listing of
``queries/`` is newest first and pages with ``start_after``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid

import pyarrow as pa

from iceshelf.sql.errors import ClientTokenReusedError, NoSuchQueryError
from iceshelf.tables.objectstore import CREATE, OVERWRITE, ObjectAlreadyExists, ObjectNotFound, ObjectStore
from iceshelf.tables.warehouses import Warehouses

_QUERIES = "_sql/queries/"
_RESULTS = "_sql/results/"
_TOKENS = "_sql/tokens/"
_MAX_MS = (1 << 48) - 1


def new_query_id(now_ms: int | None = None) -> str:
    """A UUID whose first 48 bits are ``2**48 - 1 - now_ms``: ids sort newest first."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return str(uuid.UUID(int=((_MAX_MS - now_ms) << 80) | secrets.randbits(80)))


def _check_id(query_id: str) -> str:
    try:
        return str(uuid.UUID(query_id))
    except ValueError:
        raise NoSuchQueryError(f"Query does not exist: {query_id}") from None


class History:
    def __init__(self, warehouses: Warehouses) -> None:
        self.warehouses = warehouses

    def _store(self, warehouse: str) -> ObjectStore:
        return self.warehouses.get(warehouse).objects

    def save(self, warehouse: str, record: dict, result: pa.Table | None) -> None:
        store = self._store(warehouse)
        if result is not None:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_file(sink, result.schema) as writer:
                writer.write_table(result)
            store.put(f"{_RESULTS}{record['query_id']}.arrow", sink.getvalue().to_pybytes(), OVERWRITE)
        store.put(f"{_QUERIES}{record['query_id']}.json", json.dumps(record).encode(), OVERWRITE)

    def load(self, query_id: str) -> dict:
        """The record of a finished query, from whichever warehouse ran it."""
        key = f"{_QUERIES}{_check_id(query_id)}.json"
        for table_store in self.warehouses.tables.values():
            try:
                return json.loads(table_store.objects.get(key).data)
            except ObjectNotFound:
                continue
        raise NoSuchQueryError(f"Query does not exist: {query_id}")

    def result(self, warehouse: str, query_id: str) -> pa.Table:
        try:
            data = self._store(warehouse).get(f"{_RESULTS}{_check_id(query_id)}.arrow").data
        except ObjectNotFound:
            raise NoSuchQueryError(f"No stored result for query {query_id}") from None
        return pa.ipc.open_file(pa.py_buffer(data)).read_all()

    def page(self, warehouse: str, limit: int, after: str | None = None) -> list[dict]:
        """Up to ``limit`` records, newest first, after the query id ``after``."""
        store = self._store(warehouse)
        start = f"{_QUERIES}{_check_id(after)}.json" if after else None
        records = []
        for meta in store.list_page(_QUERIES, start_after=start, limit=limit):
            try:
                records.append(json.loads(store.get(meta.key).data))
            except ObjectNotFound:
                continue
        return records

    def claim_token(self, warehouse: str, token: str, query_id: str, sql: str) -> str:
        """The query id this token stands for: ``query_id`` if the token is new, else the first query's."""
        store = self._store(warehouse)
        key = f"{_TOKENS}{hashlib.sha256(token.encode()).hexdigest()}.json"
        claim = {"query_id": query_id, "sql_sha256": hashlib.sha256(sql.encode()).hexdigest()}
        try:
            store.put(key, json.dumps(claim).encode(), CREATE)
            return query_id
        except ObjectAlreadyExists:
            first = json.loads(store.get(key).data)
        if first["sql_sha256"] != claim["sql_sha256"]:
            raise ClientTokenReusedError("This client request token was already used for a different statement")
        return first["query_id"]
