"""Who is calling: every credential form a client may present, turned into one ``Principal``.

The protocols (REST catalog, SQL, maintenance) ask the gate and never look at credentials
themselves, so each form is accepted or refused the same way everywhere:

* ``Bearer <JWT>`` issued by ``/v1/oauth/tokens`` (pyiceberg, DuckDB, Spark, Trino's REST client);
* ``Bearer isk_…`` static API keys (pyiceberg ``token=``, DuckDB ``TOKEN``, the trino client's JWT auth);
* ``Bearer <JWT>`` of an external OIDC issuer, when one is configured;
* ``Basic base64(client_id:secret)`` (what HTTP-basic clients such as the trino CLI send).
"""

from __future__ import annotations

import base64
import binascii

from iceshelf.tables.access.principals import OPEN, Principal, PrincipalStore, split_api_key
from iceshelf.tables.access.tokens import OidcVerifier, TokenIssuer
from iceshelf.tables.errors import NotAuthorizedError
from iceshelf.tables.objectstore import ObjectStore
from iceshelf.tables.settings import AuthSettings


class AccessGate:
    def __init__(self, home: ObjectStore, settings: AuthSettings, enabled: bool) -> None:
        self.enabled = enabled
        self.principals = PrincipalStore(home, settings.cache_s)
        self.tokens = TokenIssuer(home, settings)
        self.oidc = OidcVerifier(settings) if settings.oidc_issuer else None

    def token_for(self, principal: Principal, ttl_s: float = 3600.0) -> str | None:
        """A short-lived token for work the server does on a caller's behalf (the SQL engine's writes)."""
        return self.tokens.issue(principal.name, ttl_s)[0] if self.enabled else None

    def authenticate_client(self, client_id: str, secret: str) -> Principal:
        """Client credentials, for the token endpoint and HTTP Basic."""
        principal = self.principals.verify_secret(client_id, secret)
        if principal is None:
            raise NotAuthorizedError("Unknown client or wrong secret")
        return principal

    def authenticate_basic(self, authorization: str) -> Principal:
        """``Basic base64(client_id:secret)``: HTTP-basic clients and DuckDB's token request."""
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise NotAuthorizedError("Expected Basic credentials")
        return self.authenticate_client(*_basic(credentials.strip()))

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal behind an ``Authorization`` header; with auth off, everybody is ``OPEN``."""
        if not self.enabled:
            return OPEN
        if not authorization:
            raise NotAuthorizedError("Authentication required: send a bearer token or API key")
        scheme, _, credentials = authorization.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "basic":
            return self.authenticate_basic(authorization)
        if scheme.lower() != "bearer" or not credentials:
            raise NotAuthorizedError("Unsupported Authorization scheme: use Bearer or Basic")
        api_key = split_api_key(credentials)
        if api_key is not None:
            return self.authenticate_client(*api_key)
        if self.oidc is not None and self.oidc.owns(credentials):
            name = self.oidc.verify(credentials)
            return self.principals.get(name) or Principal(name)  # known to the issuer, granted nothing here
        principal = self.principals.get(self.tokens.verify(credentials))
        if principal is None:
            raise NotAuthorizedError("The token's principal no longer exists")
        return principal


def _basic(credentials: str) -> tuple[str, str]:
    try:
        client_id, sep, secret = base64.b64decode(credentials, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise NotAuthorizedError("Malformed Basic credentials") from None
    if not sep:
        raise NotAuthorizedError("Malformed Basic credentials")
    return client_id, secret
