"""The one settings object: environment variables first, CLI flags on top.

Nothing else in Iceshelf reads ``os.environ``; the composition roots take a ``Settings``.
S3 connection settings follow the AWS SDK conventions (``AWS_ENDPOINT_URL`` and friends) so
a deployment configured for any other S3 tool works unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Mapping

DEFAULT_WAREHOUSE = "default"


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    region: str = "us-east-1"

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
        )


def parse_warehouses(specs: list[str] | str) -> dict[str, str]:
    """``[NAME=]LOCATION`` entries, comma-separated in the environment; an unnamed one is ``default``."""
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, location = spec.partition("=")
        if not sep or "://" in name or "/" in name:
            name, location = DEFAULT_WAREHOUSE, spec
        if name in out:
            raise ValueError(f"warehouse {name!r} given twice")
        out[name.strip()] = location.strip()
    return out


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class SqlSettings:
    """Limits of the SQL endpoint (``sql/``): safe by default, each one an env var and a flag.

    Every pooled DuckDB is a database of its own, so ``memory_limit`` holds per query.
    """

    read_only: bool = False
    timeout_s: float = 300.0
    memory_limit: str = "2GB"
    max_rows: int = 1_000_000
    pool_size: int = 4

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "SqlSettings":
        base = cls()
        return cls(
            read_only=_flag(env["ICESHELF_SQL_READ_ONLY"]) if "ICESHELF_SQL_READ_ONLY" in env else base.read_only,
            timeout_s=float(env.get("ICESHELF_SQL_TIMEOUT", base.timeout_s)),
            memory_limit=env.get("ICESHELF_SQL_MEMORY_LIMIT", base.memory_limit),
            max_rows=int(env.get("ICESHELF_SQL_MAX_ROWS", base.max_rows)),
            pool_size=int(env.get("ICESHELF_SQL_POOL_SIZE", base.pool_size)),
        )


@dataclass(frozen=True)
class MaintenanceSettings:
    """The maintenance scheduler (``compaction/``): on inside ``iceshelf serve`` unless switched off.

    ``lease_s`` is how long a replica's claim on a table outlives the replica if it crashes;
    a live one renews its lease every third of that.
    """

    enabled: bool = True
    interval_s: float = 300.0
    lease_s: float = 120.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "MaintenanceSettings":
        base = cls()
        return cls(
            enabled=_flag(env["ICESHELF_MAINTENANCE"]) if "ICESHELF_MAINTENANCE" in env else base.enabled,
            interval_s=float(env.get("ICESHELF_MAINTENANCE_INTERVAL", base.interval_s)),
            lease_s=float(env.get("ICESHELF_MAINTENANCE_LEASE", base.lease_s)),
        )


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


@dataclass(frozen=True)
class Settings:
    #: Warehouse name -> location (a directory or ``s3://bucket[/prefix]``).
    warehouses: dict[str, str] = field(default_factory=lambda: {DEFAULT_WAREHOUSE: "./warehouse"})
    default_warehouse: str = DEFAULT_WAREHOUSE
    host: str = "127.0.0.1"
    port: int = 8181
    s3: S3Settings = field(default_factory=S3Settings)
    #: How often a commit re-reads and re-validates after losing a pointer race before answering 409.
    commit_attempts: int = 20
    #: Apply concurrent commits to one table as one batch (one metadata write, one pointer swap).
    group_commit: bool = True
    log_level: str = "info"
    sql: SqlSettings = field(default_factory=SqlSettings)
    maintenance: MaintenanceSettings = field(default_factory=MaintenanceSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    credentials: CredentialSettings = field(default_factory=CredentialSettings)

    @property
    def auth_enabled(self) -> bool:
        return self.auth.enabled_for(self.host)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> "Settings":
        env = os.environ if env is None else env
        base = cls(s3=S3Settings.from_env(env))
        base = replace(base, sql=SqlSettings.from_env(env))
        base = replace(base, maintenance=MaintenanceSettings.from_env(env))
        base = replace(base, auth=AuthSettings.from_env(env))
        base = replace(base, credentials=CredentialSettings.from_env(env))
        if "ICESHELF_WAREHOUSE" in env:
            base = replace(base, warehouses=parse_warehouses(env["ICESHELF_WAREHOUSE"]))
        if "ICESHELF_HOST" in env:
            base = replace(base, host=env["ICESHELF_HOST"])
        if "ICESHELF_PORT" in env:
            base = replace(base, port=int(env["ICESHELF_PORT"]))
        if "ICESHELF_GROUP_COMMIT" in env:
            base = replace(base, group_commit=env["ICESHELF_GROUP_COMMIT"].lower() not in ("0", "false", "no", "off"))
        if "ICESHELF_LOG_LEVEL" in env:
            base = replace(base, log_level=env["ICESHELF_LOG_LEVEL"])
        settings = replace(base, **{k: v for k, v in overrides.items() if v is not None})
        if settings.default_warehouse not in settings.warehouses:
            settings = replace(settings, default_warehouse=next(iter(settings.warehouses)))
        return settings
