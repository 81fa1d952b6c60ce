"""The storage layer's settings: S3 connection, the commit path, access control, vended credentials.

Settings are read once: ``iceshelf.catalog.settings.Settings.from_env`` (the composition root) builds
every layer's slice from the environment and the CLI flags on top; nothing else reads ``os.environ``.
S3 connection settings follow the AWS SDK conventions (``AWS_ENDPOINT_URL`` and friends) so a
deployment configured for any other S3 tool works unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


def env_flag(value: str) -> bool:
    """An on/off environment variable, as every layer reads one."""
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    region: str = "us-east-1"
    #: Seconds to establish a connection; past it the store is unreachable (the request was never sent).
    connect_timeout_s: float = 5.0
    #: Seconds of silence tolerated while waiting for a response or its next bytes: a stalled store fails
    #: instead of hanging. Generous, because SeaweedFS answers racing conditional writes one by one.
    read_timeout_s: float = 30.0
    #: Attempts per idempotent request (reads, listings, deletes, overwrites) on a transient fault.
    retry_attempts: int = 4
    #: Seconds an idempotent request may take in total, retries included, before it answers 503.
    retry_budget_s: float = 30.0

    @property
    def path_style(self) -> bool:
        """Custom endpoints (SeaweedFS, MinIO) are addressed path-style; AWS itself virtual-host style."""
        return self.endpoint_url is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "S3Settings":
        return cls(
            endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
            access_key_id=env.get("AWS_ACCESS_KEY_ID"),
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
            session_token=env.get("AWS_SESSION_TOKEN"),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            connect_timeout_s=float(env.get("ICESHELF_S3_CONNECT_TIMEOUT", cls.connect_timeout_s)),
            read_timeout_s=float(env.get("ICESHELF_S3_READ_TIMEOUT", cls.read_timeout_s)),
            retry_attempts=int(env.get("ICESHELF_S3_RETRY_ATTEMPTS", cls.retry_attempts)),
            retry_budget_s=float(env.get("ICESHELF_S3_RETRY_BUDGET", cls.retry_budget_s)),
        )


@dataclass(frozen=True)
class CommitSettings:
    """The commit path (``iceshelf.tables.commit``)."""

    #: How often a commit re-reads and re-validates after losing a pointer race before answering 409.
    attempts: int = 20
    #: Apply concurrent commits to one table as one batch (one metadata write, one pointer swap).
    group_commit: bool = True
    #: Rebase a stale pure append onto the new head instead of answering 409, for every table that does
    #: not set ``iceshelf.commit.rebase-appends`` itself. Off: the spec's requirements are assertions.
    rebase_appends: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "CommitSettings":
        base = cls()
        group = env_flag(env["ICESHELF_GROUP_COMMIT"]) if "ICESHELF_GROUP_COMMIT" in env else base.group_commit
        rebase = env_flag(env["ICESHELF_REBASE_APPENDS"]) if "ICESHELF_REBASE_APPENDS" in env else base.rebase_appends
        return cls(attempts=base.attempts, group_commit=group, rebase_appends=rebase)


MIB = 1024 * 1024


@dataclass(frozen=True)
class CacheSettings:
    """How much memory the caches of immutable files may hold, in total for the process (``ICESHELF_CACHE_MB``).

    Shared out by fixed fractions: half to parsed table metadata files (charged twice their raw size:
    the bytes and the parsed model), a quarter to manifest lists kept for rebasing appends (by their
    entries' Avro encoding, per warehouse) and a quarter to the SQL resolver's per-file facts. The
    charges are estimates; ``make bench`` (suite ``memory``) shows RSS levelling off under them.
    """

    total_bytes: int = 256 * MIB

    @property
    def metadata_bytes(self) -> int:
        return self.total_bytes // 2

    @property
    def manifest_list_bytes(self) -> int:
        return self.total_bytes // 4

    @property
    def sql_bytes(self) -> int:
        return self.total_bytes // 4

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "CacheSettings":
        if "ICESHELF_CACHE_MB" not in env:
            return cls()
        return cls(total_bytes=int(float(env["ICESHELF_CACHE_MB"]) * MIB))


@dataclass(frozen=True)
class AuthSettings:
    """Authentication and authorization (``tables/access/``).

    ``mode`` ``auto`` turns auth on whenever the server listens beyond loopback: a service anyone on
    the network can write to is never the default. On loopback it runs open and says so at start.
    ``cache_s`` bounds how long a revoked grant or deleted principal keeps working on a replica.
    """

    mode: str = "auto"
    token_ttl_s: float = 3600.0
    signing_key: str | None = field(default=None, repr=False)
    cache_s: float = 5.0
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_claim: str = "sub"
    #: The credential Iceshelf's own client commands (``iceshelf sql``) present to a server.
    client_token: str | None = field(default=None, repr=False)

    def enabled_for(self, host: str) -> bool:
        if self.mode not in ("auto", "on", "off"):
            raise ValueError(f"auth mode must be auto, on or off, not {self.mode!r}")
        if self.mode != "auto":
            return self.mode == "on"
        return not (host in ("localhost", "::1") or host.startswith("127."))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "AuthSettings":
        base = cls()
        return cls(
            mode=env.get("ICESHELF_AUTH", base.mode).strip().lower(),
            token_ttl_s=float(env.get("ICESHELF_TOKEN_TTL", base.token_ttl_s)),
            signing_key=env.get("ICESHELF_SIGNING_KEY") or None,
            cache_s=float(env.get("ICESHELF_AUTH_CACHE", base.cache_s)),
            oidc_issuer=env.get("ICESHELF_OIDC_ISSUER") or None,
            oidc_audience=env.get("ICESHELF_OIDC_AUDIENCE") or None,
            oidc_jwks_url=env.get("ICESHELF_OIDC_JWKS_URL") or None,
            oidc_claim=env.get("ICESHELF_OIDC_CLAIM", base.oidc_claim),
            client_token=env.get("ICESHELF_TOKEN") or None,
        )


@dataclass(frozen=True)
class CredentialSettings:
    """Storage credentials vended to clients (``tables/credentials.py``) for S3 warehouses.

    Vending is off until ``role_arn`` names a role the server's own S3 key may assume; each
    client then gets that role's session narrowed by a session policy to one table's prefix.
    ``sts_endpoint`` defaults to the S3 endpoint: SeaweedFS and MinIO serve STS on the S3 port.
    """

    role_arn: str | None = None
    duration_s: int = 3600
    sts_endpoint: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "CredentialSettings":
        base = cls()
        return cls(
            role_arn=env.get("ICESHELF_STS_ROLE_ARN") or None,
            duration_s=int(env.get("ICESHELF_STS_DURATION", base.duration_s)),
            sts_endpoint=env.get("ICESHELF_STS_ENDPOINT") or env.get("AWS_ENDPOINT_URL_STS") or None,
        )
