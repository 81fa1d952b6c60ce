"""Leases: at most one replica works on a table at a time, with nothing but the object store.

A lease is an object ``_catalog/maintenance/leases/<name>.json`` naming its holder and when it
expires. It is taken with ``Create`` (none yet) or with ``Update(etag)`` over an expired one,
renewed and released by ``Update`` on the etag the holder itself wrote -- so of two replicas
racing for a lease exactly one compare-and-swap wins, and a holder that lost its lease (it
stalled past the expiry and another took over) finds out on its next renewal instead of
overwriting the new holder. Every version carries a fresh token, so its bytes (and its S3 etag,
an MD5 of them) never repeat.

A crashed holder's lease frees itself when it expires. Expiry compares wall clocks of different
replicas, so their clocks must agree to well within the lease duration (NTP gives milliseconds;
leases last minutes).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Iterator

from iceshelf.tables import clock
from iceshelf.tables.objectstore import CREATE, ObjectAlreadyExists, ObjectNotFound, ObjectStore, PreconditionFailed, Update

log = logging.getLogger("iceshelf.maintenance")

_PREFIX = "_catalog/maintenance/leases/"


@dataclass(frozen=True)
class LeaseRecord:
    owner: str
    expires_ms: int
    token: str

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def parse(cls, data: bytes) -> "LeaseRecord":
        return cls(**json.loads(data))


class Lease:
    """A lease this replica holds; ``lost`` turns true once a renewal finds it taken over or expired."""

    def __init__(self, leases: "Leases", key: str, etag: str, expires_ms: int) -> None:
        self._leases = leases
        self.key = key
        self._etag = etag
        self.expires_ms = expires_ms
        self.lost = False

    def renew(self) -> bool:
        """Extend the lease by its duration; false (and ``lost``) if it is no longer ours."""
        if self.lost:
            return False
        record = self._leases.record()
        try:
            self._etag = self._leases.store.put(self.key, record.to_bytes(), Update(self._etag))
        except PreconditionFailed:
            self.lost = True
            return False
        except Exception:  # outcome unknown (timeout, 5xx): ours until it expires, then presumed lost
            log.warning("could not renew lease %s", self.key, exc_info=True)
            self.lost = clock.now_ms() >= self.expires_ms
            return not self.lost
        self.expires_ms = record.expires_ms
        return True

    def release(self) -> None:
        """Expire the lease at once so another replica need not wait; a lost lease is left alone."""
        if self.lost:
            return
        released = LeaseRecord(self._leases.owner, 0, uuid.uuid4().hex)
        try:
            self._leases.store.put(self.key, released.to_bytes(), Update(self._etag))
        except PreconditionFailed:
            pass
        except Exception:  # it expires by itself
            log.warning("could not release lease %s", self.key, exc_info=True)
        self.lost = True


class Leases:
    """Takes and keeps leases for one replica (``owner``) in one warehouse's object store."""

    def __init__(self, store: ObjectStore, owner: str, duration_s: float) -> None:
        self.store = store
        self.owner = owner
        self.duration_ms = int(duration_s * 1000)

    def record(self) -> LeaseRecord:
        return LeaseRecord(self.owner, clock.now_ms() + self.duration_ms, uuid.uuid4().hex)

    def acquire(self, name: str) -> Lease | None:
        """The lease on ``name`` if it is free or expired, else ``None`` (another replica holds it)."""
        key = f"{_PREFIX}{name}.json"
        record = self.record()
        try:
            current = self.store.get(key)
        except ObjectNotFound:
            try:
                return Lease(self, key, self.store.put(key, record.to_bytes(), CREATE), record.expires_ms)
            except ObjectAlreadyExists:
                return None
        if LeaseRecord.parse(current.data).expires_ms > clock.now_ms():
            return None
        try:
            return Lease(self, key, self.store.put(key, record.to_bytes(), Update(current.etag)), record.expires_ms)
        except PreconditionFailed:
            return None

    @contextmanager
    def hold(self, name: str) -> Iterator[Lease | None]:
        """The lease on ``name`` (or ``None``), renewed in the background every third of its duration."""
        lease = self.acquire(name)
        if lease is None:
            yield None
            return
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(self.duration_ms / 3000) and lease.renew():
                pass
            if lease.lost and not done.is_set():
                log.warning("lost the lease %s while working", lease.key)

        beat = threading.Thread(target=heartbeat, name=f"lease-{name}", daemon=True)
        beat.start()
        try:
            yield lease
        finally:
            done.set()
            beat.join()
            lease.release()
