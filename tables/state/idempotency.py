"""Idempotency records: the first final response to a request, replayed to its retries.

The spec's ``Idempotency-Key``: a retried request with the same key gets the first final
response (2xx or a deterministic 4xx) and is never applied twice, on any replica, for the
advertised lifetime. A record is created ``in-progress`` with ``Create`` (so exactly one replica
runs the request), then finalized with the response. A 5xx is not final: the record is
removed and a retry runs again. A record whose runner died stays ``in-progress`` until it is
stale; then a retry takes it over by CAS and runs the request again -- which is safe because
table commits also record their key in the pointer they change (``Pointer.keys``), so the
commit path recognizes a commit that already landed and does not apply it a second time.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Literal

from iceshelf.tables import clock
from iceshelf.tables.objectstore import (
    CREATE,
    ObjectAlreadyExists,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    Update,
)

LIFETIME_MS = 30 * 60 * 1000
#: An in-progress record older than this belongs to a runner presumed dead.
STALE_MS = 60 * 1000
_PREFIX = "_catalog/idempotency/"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    media_type: str | None


@dataclass(frozen=True)
class IdempotencyRecord:
    fingerprint: str
    state: Literal["in-progress", "done"] = "in-progress"
    since_ms: int = field(default_factory=lambda: clock.now_ms())
    response: StoredResponse | None = None
    etag: str = field(default="", compare=False)

    @property
    def expired(self) -> bool:
        return clock.now_ms() - self.since_ms > LIFETIME_MS

    @property
    def abandoned(self) -> bool:
        return self.state == "in-progress" and clock.now_ms() - self.since_ms > STALE_MS

    def to_bytes(self) -> bytes:
        doc: dict = {"fingerprint": self.fingerprint, "state": self.state, "since-ms": self.since_ms}
        if self.response is not None:
            doc["response"] = {
                "status": self.response.status,
                "body": base64.b64encode(self.response.body).decode(),
                "media-type": self.response.media_type,
            }
        return json.dumps(doc).encode()

    @classmethod
    def parse(cls, data: bytes, etag: str) -> "IdempotencyRecord":
        doc = json.loads(data)
        stored = doc.get("response")
        response = None
        if stored is not None:
            response = StoredResponse(stored["status"], base64.b64decode(stored["body"]), stored.get("media-type"))
        return cls(doc["fingerprint"], doc["state"], doc["since-ms"], response, etag)


@dataclass(frozen=True)
class Claimed:
    """This caller runs the request and must then ``finish`` or ``release`` the record."""

    record: IdempotencyRecord


class IdempotencyRecords:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @staticmethod
    def key(idempotency_key: str) -> str:
        return f"{_PREFIX}{hashlib.sha256(idempotency_key.encode()).hexdigest()}.json"

    def claim(self, idempotency_key: str, fingerprint: str) -> Claimed | IdempotencyRecord:
        """Either the right to run the request, or the record of whoever ran (or runs) it."""
        record = IdempotencyRecord(fingerprint)
        key = self.key(idempotency_key)
        for _ in range(8):
            try:
                return Claimed(replace(record, etag=self.store.put(key, record.to_bytes(), CREATE)))
            except ObjectAlreadyExists:
                pass
            try:
                got = self.store.get(key)
            except ObjectNotFound:
                continue
            existing = IdempotencyRecord.parse(got.data, got.etag)
            if not (existing.expired or existing.abandoned):
                return existing
            try:  # take over an expired or abandoned record
                return Claimed(replace(record, etag=self.store.put(key, record.to_bytes(), Update(existing.etag))))
            except PreconditionFailed:
                continue
        raise PreconditionFailed(f"idempotency record {idempotency_key} is contended")

    def read(self, idempotency_key: str) -> IdempotencyRecord | None:
        try:
            got = self.store.get(self.key(idempotency_key))
        except ObjectNotFound:
            return None
        return IdempotencyRecord.parse(got.data, got.etag)

    def finish(self, idempotency_key: str, claimed: Claimed, response: StoredResponse) -> None:
        done = replace(claimed.record, state="done", response=response, since_ms=clock.now_ms())
        try:
            self.store.put(self.key(idempotency_key), done.to_bytes(), Update(claimed.record.etag))
        except PreconditionFailed:
            pass  # taken over meanwhile: its runner records the (equivalent) outcome

    def release(self, idempotency_key: str, claimed: Claimed) -> None:
        """Not final (a 5xx): let a retry run the request again."""
        current = self.read(idempotency_key)
        if current is not None and current.etag == claimed.record.etag:
            self.store.delete(self.key(idempotency_key))
