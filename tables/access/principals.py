"""Principals and their grants, one object each in the home warehouse: still no database.

``_catalog/access/principals/<name>.json`` holds a principal's grants and the SHA-256 of each of its
secrets. Secrets are 256 random bits made here, never chosen by people, so a fast hash is as safe
as a slow one (nothing to brute-force) and lets every request be checked without a KDF's cost.
Changes are compare-and-swap updates, so two admins editing one principal never lose a grant.

A principal made with ``external=True`` has no secret: it is an identity vouched for by an OIDC
issuer, and its record only carries what that identity may do here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable
from urllib.parse import quote, unquote

from iceshelf.tables.access.grants import Grant, Level, Resource, allows, can_see
from iceshelf.tables.errors import BadRequestError, ForbiddenError
from iceshelf.tables.names import check_name
from iceshelf.tables.objectstore import CREATE, ObjectAlreadyExists, ObjectNotFound, ObjectStore, PreconditionFailed, Update
from iceshelf.tables.retry import backoff

PREFIX = "_catalog/access/principals/"
API_KEY_PREFIX = "isk_"


@dataclass(frozen=True)
class Principal:
    name: str
    grants: tuple[Grant, ...] = ()
    secret_hashes: tuple[str, ...] = field(default=(), repr=False)
    external: bool = False

    def allows(self, level: Level, resource: Resource) -> bool:
        return allows(self.grants, level, resource)

    def can_see(self, resource: Resource) -> bool:
        return can_see(self.grants, resource)

    def require(self, level: Level, resource: Resource) -> None:
        if not self.allows(level, resource):
            raise ForbiddenError(f"Principal {self.name!r} may not {level.value} {resource}")

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "name": self.name,
                "external": self.external,
                "grants": [g.to_text() for g in self.grants],
                "secret-sha256": list(self.secret_hashes),
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Principal":
        doc = json.loads(data)
        return cls(
            doc["name"],
            tuple(Grant.parse(g) for g in doc["grants"]),
            tuple(doc["secret-sha256"]),
            doc.get("external", False),
        )


#: Who everybody is when authentication is off (a server on loopback): allowed everything.
OPEN = Principal("anonymous", (Grant.parse("admin:warehouse:*"),))


@dataclass(frozen=True)
class NewCredentials:
    """Shown once at creation; only hashes are stored."""

    client_id: str
    client_secret: str

    @property
    def api_key(self) -> str:
        """One bearer string carrying both halves, for clients that take a static token."""
        name = base64.urlsafe_b64encode(self.client_id.encode()).decode().rstrip("=")
        return f"{API_KEY_PREFIX}{name}.{self.client_secret}"


def split_api_key(token: str) -> tuple[str, str] | None:
    """``(client_id, secret)`` of a token in the API-key form, else ``None`` (it is a JWT or garbage)."""
    if not token.startswith(API_KEY_PREFIX) or "." not in token:
        return None
    encoded, _, secret = token[len(API_KEY_PREFIX) :].partition(".")
    try:
        name = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except ValueError:
        return None
    return name, secret


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


#: Cached records beyond which expired ones are dropped: the cache stays as small as the names in use.
_PRUNE_AT = 1024


class PrincipalStore:
    """CRUD of principal records plus a short-lived read cache.

    Every authenticated request needs its principal's grants; reading them from S3 each time would
    add a round trip to every call. A record is cached for ``cache_s`` seconds, so a revoked grant
    or a deleted principal stops working within that time on every replica.
    """

    def __init__(self, store: ObjectStore, cache_s: float = 5.0) -> None:
        self.store = store
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def _key(self, name: str) -> str:
        return PREFIX + quote(name, safe="") + ".json"

    def get(self, name: str) -> Principal | None:
        with self._lock:
            hit = self._cache.get(name)
        if hit is not None and time.monotonic() - hit[0] < self.cache_s:
            return hit[1]
        principal = self._read(name)
        with self._lock:
            now = time.monotonic()
            if len(self._cache) >= _PRUNE_AT:  # names come and go (OIDC subjects): drop the expired ones
                self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self.cache_s}
            self._cache[name] = (now, principal)
        return principal

    def list(self) -> list[Principal]:
        names = [unquote(m.key[len(PREFIX) : -len(".json")]) for m in self.store.list(PREFIX)]
        return [p for p in (self._read(n) for n in sorted(names)) if p is not None]

    def _read(self, name: str) -> Principal | None:
        try:
            return Principal.from_json(self.store.get(self._key(name)).data)
        except ObjectNotFound:
            return None

    def create(self, name: str, grants: list[Grant], external: bool = False) -> NewCredentials | None:
        """A new principal; its credentials (``None`` for an external identity) are returned once."""
        check_name(name, "principal name")
        secret = None if external else secrets.token_urlsafe(32)
        record = Principal(name, tuple(grants), () if secret is None else (_digest(secret),), external)
        try:
            self.store.put(self._key(name), record.to_json(), CREATE)
        except ObjectAlreadyExists:
            raise BadRequestError(f"Principal {name!r} already exists") from None
        self._forget(name)
        return None if secret is None else NewCredentials(name, secret)

    def delete(self, name: str) -> None:
        try:
            self.store.delete(self._key(name))
        except ObjectNotFound:
            raise BadRequestError(f"No principal {name!r}") from None
        self._forget(name)

    def grant(self, name: str, grant: Grant) -> Principal:
        return self._update(name, lambda p: p if grant in p.grants else replace(p, grants=(*p.grants, grant)))

    def revoke(self, name: str, grant: Grant) -> Principal:
        return self._update(name, lambda p: replace(p, grants=tuple(g for g in p.grants if g != grant)))

    def rotate(self, name: str) -> NewCredentials:
        """A fresh secret that replaces every earlier one (a leaked secret dies at once)."""
        secret = secrets.token_urlsafe(32)
        self._update(name, lambda p: replace(p, secret_hashes=(_digest(secret),), external=False))
        return NewCredentials(name, secret)

    def verify_secret(self, name: str, secret: str) -> Principal | None:
        principal = self.get(name)
        if principal is None or not secret:
            return None
        digest = _digest(secret)
        return principal if any(hmac.compare_digest(digest, h) for h in principal.secret_hashes) else None

    def _update(self, name: str, change: Callable[[Principal], Principal]) -> Principal:
        for attempt in range(50):
            try:
                got = self.store.get(self._key(name))
            except ObjectNotFound:
                raise BadRequestError(f"No principal {name!r}") from None
            updated = change(Principal.from_json(got.data))
            try:
                self.store.put(self._key(name), updated.to_json(), Update(got.etag))
            except PreconditionFailed:
                backoff(attempt)
                continue
            self._forget(name)
            return updated
        raise BadRequestError(f"Principal {name!r} is being changed by others; try again")

    def _forget(self, name: str) -> None:
        with self._lock:
            self._cache.pop(name, None)
