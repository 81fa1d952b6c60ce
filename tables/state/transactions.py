"""Transaction records: the single object whose compare-and-swap commits a multi-table change.

A record is created ``pending``; the coordinator swings each table's pointer to a state that
names the record (old location visible, new location staged), then flips the record to
``committed`` -- the commit point, one CAS -- and finally rolls the pointers forward. Until the
flip every reader sees every table's old state; after it, every reader that meets a staged
pointer looks the record up and sees the new state. Any replica that meets a staged pointer
finishes the work: forward if the record is committed, back if it is aborted, and it aborts a
``pending`` record older than ``TXN_TIMEOUT_MS`` (its coordinator is presumed dead) by CAS --
so a slow coordinator's flip then fails and it rolls back instead. A record is deleted only
by its coordinator after every pointer it staged is settled, so a pointer never names a
missing record except through a stale read.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from typing import Literal

from iceshelf.tables import clock
from iceshelf.tables.objectstore import (
    CREATE,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    Update,
)

TXN_TIMEOUT_MS = 30_000
_PREFIX = "_catalog/transactions/"

TxnState = Literal["pending", "committed", "aborted"]


@dataclass(frozen=True)
class TxnRecord:
    id: str
    state: TxnState = "pending"
    created_ms: int = field(default_factory=lambda: clock.now_ms())
    tables: tuple[str, ...] = ()
    etag: str = field(default="", compare=False)

    @property
    def stale(self) -> bool:
        return self.state == "pending" and clock.now_ms() - self.created_ms > TXN_TIMEOUT_MS

    def to_bytes(self) -> bytes:
        doc = {"id": self.id, "state": self.state, "created-ms": self.created_ms, "tables": list(self.tables)}
        return json.dumps(doc).encode()

    @classmethod
    def parse(cls, data: bytes, etag: str) -> "TxnRecord":
        doc = json.loads(data)
        return cls(doc["id"], doc["state"], doc["created-ms"], tuple(doc.get("tables", ())), etag)


class TxnRecords:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @staticmethod
    def key(txn_id: str) -> str:
        return f"{_PREFIX}{txn_id}.json"

    def begin(self, tables: list[str]) -> TxnRecord:
        record = TxnRecord(uuid.uuid4().hex, tables=tuple(tables))
        etag = self.store.put(self.key(record.id), record.to_bytes(), CREATE)
        return replace(record, etag=etag)

    def read(self, txn_id: str) -> TxnRecord | None:
        try:
            got = self.store.get(self.key(txn_id))
        except ObjectNotFound:
            return None
        return TxnRecord.parse(got.data, got.etag)

    def decide(self, record: TxnRecord, state: TxnState) -> TxnRecord | None:
        """CAS a pending record to its outcome; ``None`` if it was decided (or changed) meanwhile."""
        decided = replace(record, state=state)
        try:
            etag = self.store.put(self.key(record.id), decided.to_bytes(), Update(record.etag))
        except PreconditionFailed:
            return None
        return replace(decided, etag=etag)

    def forget(self, txn_id: str) -> None:
        self.store.delete(self.key(txn_id))
