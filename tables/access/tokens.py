"""Bearer tokens: Iceshelf's own signed JWTs, and optionally an external OIDC issuer's.

Iceshelf's tokens are HS256 JWTs. Every replica must verify what any replica issued, so the
signing key is one object in the home warehouse, created if absent (a conditional write: two
replicas starting together still agree on one key), unless the settings supply one.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.request
import uuid

import jwt

from iceshelf.tables.errors import NotAuthorizedError
from iceshelf.tables.objectstore import CREATE, ObjectAlreadyExists, ObjectNotFound, ObjectStore
from iceshelf.tables.settings import AuthSettings

SIGNING_KEY = "_catalog/access/signing-key.json"
ISSUER = "iceshelf"
_ALGORITHM = "HS256"


def _load_or_create_key(store: ObjectStore) -> bytes:
    try:
        doc = json.loads(store.get(SIGNING_KEY).data)
    except ObjectNotFound:
        fresh = base64.b64encode(secrets.token_bytes(64)).decode()
        try:
            store.put(SIGNING_KEY, json.dumps({"hs256": fresh}).encode(), CREATE)
        except ObjectAlreadyExists:
            pass  # another replica won: use its key
        doc = json.loads(store.get(SIGNING_KEY).data)
    return base64.b64decode(doc["hs256"])


class TokenIssuer:
    """Issues and verifies Iceshelf's own tokens; the key is fetched on first use, then kept."""

    def __init__(self, store: ObjectStore, settings: AuthSettings) -> None:
        self.store = store
        self.settings = settings
        self._key: bytes | None = settings.signing_key.encode() if settings.signing_key else None
        self._lock = threading.Lock()

    @property
    def key(self) -> bytes:
        with self._lock:
            if self._key is None:
                self._key = _load_or_create_key(self.store)
            return self._key

    def issue(self, principal: str, ttl_s: float | None = None) -> tuple[str, int]:
        now = int(time.time())
        ttl = int(ttl_s or self.settings.token_ttl_s)
        claims = {"iss": ISSUER, "aud": ISSUER, "sub": principal, "iat": now, "exp": now + ttl, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self.key, algorithm=_ALGORITHM), ttl

    def verify(self, token: str) -> str:
        """The token's principal name; any flaw (signature, expiry, issuer, audience) is a 401."""
        try:
            claims = jwt.decode(
                token, self.key, algorithms=[_ALGORITHM], audience=ISSUER, issuer=ISSUER, options={"require": ["exp", "sub"]}
            )
        except jwt.ExpiredSignatureError:
            raise NotAuthorizedError("The token has expired; fetch a new one from /v1/oauth/tokens") from None
        except jwt.InvalidTokenError:
            raise NotAuthorizedError("The token is not valid") from None
        return claims["sub"]


class OidcVerifier:
    """Tokens of an external identity provider, checked against its published keys (JWKS)."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._jwks: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    def owns(self, token: str) -> bool:
        """The token claims to come from the configured issuer (checked for real in ``verify``)."""
        try:
            return jwt.decode(token, options={"verify_signature": False}).get("iss") == self.settings.oidc_issuer
        except jwt.InvalidTokenError:
            return False

    def _client(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._jwks is None:
                self._jwks = jwt.PyJWKClient(self.settings.oidc_jwks_url or self._discover(), cache_keys=True)
            return self._jwks

    def _discover(self) -> str:
        url = self.settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())["jwks_uri"]

    def verify(self, token: str) -> str:
        try:
            key = self._client().get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"],
                audience=self.settings.oidc_audience,
                issuer=self.settings.oidc_issuer,
                options={"require": ["exp"], "verify_aud": self.settings.oidc_audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise NotAuthorizedError("The identity provider's token has expired") from None
        except (jwt.InvalidTokenError, jwt.PyJWKClientError):
            raise NotAuthorizedError("The identity provider's token is not valid") from None
        name = claims.get(self.settings.oidc_claim)
        if not isinstance(name, str) or not name:
            raise NotAuthorizedError(f"The identity provider's token has no {self.settings.oidc_claim!r} claim")
        return name
