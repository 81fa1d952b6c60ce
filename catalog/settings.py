"""The root settings: environment variables first, CLI flags on top, read once at start.

The composition root owns what only it uses -- listen address, port, log level, the warehouses --
and composes each layer's own slice (``iceshelf.tables.settings``, ``iceshelf.sql.settings``,
``iceshelf.compaction.settings``). Nothing else in Iceshelf reads ``os.environ``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Mapping

from iceshelf.compaction.settings import MaintenanceSettings
from iceshelf.sql.engine import EngineConfig
from iceshelf.sql.settings import SqlSettings
from iceshelf.tables.settings import AuthSettings, CacheSettings, CommitSettings, CredentialSettings, S3Settings
from iceshelf.tables.warehouses import Warehouses

DEFAULT_WAREHOUSE = "default"


def _named_locations(specs: list[str] | str) -> list[tuple[str, str]]:
    """``[NAME=]LOCATION`` entries (comma-separated in the environment) as (name, location); an unnamed
    one is the ``default`` warehouse's. A ``:`` or ``/`` before the ``=`` means it is part of a location."""
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    named = []
    for spec in specs:
        name, sep, location = spec.partition("=")
        if not sep or ":" in name or "/" in name:
            name, location = DEFAULT_WAREHOUSE, spec
        named.append((name.strip(), location.strip()))
    return named


def parse_warehouses(specs: list[str] | str) -> dict[str, str]:
    """``[NAME=]LOCATION`` entries, comma-separated in the environment; an unnamed one is ``default``."""
    out: dict[str, str] = {}
    for name, location in _named_locations(specs):
        if name in out:
            raise ValueError(f"warehouse {name!r} given twice")
        out[name] = location
    return out


def parse_allowed_locations(specs: list[str] | str) -> dict[str, tuple[str, ...]]:
    """``[NAME=]URI`` entries, comma-separated in the environment: where warehouse NAME's tables and views
    may live besides its root (an unnamed one is the ``default`` warehouse's)."""
    out: dict[str, tuple[str, ...]] = {}
    for name, location in _named_locations(specs):
        out[name] = (*out.get(name, ()), location)
    return out


@dataclass(frozen=True)
class Settings:
    """Everything one ``iceshelf`` process is configured with: the root's own fields (where it listens,
    which warehouses it holds) and each layer's slice, which that layer alone interprets."""

    #: Warehouse name -> location (a directory or ``s3://bucket[/prefix]``).
    warehouses: dict[str, str] = field(default_factory=lambda: {DEFAULT_WAREHOUSE: "./warehouse"})
    default_warehouse: str = DEFAULT_WAREHOUSE
    #: Warehouse name -> locations outside its root where its tables and views may also live
    #: (same backend; ``iceshelf.tables.objectstore.mounted``). None by default: only the warehouse.
    allowed_locations: dict[str, tuple[str, ...]] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 8181
    log_level: str = "info"
    s3: S3Settings = field(default_factory=S3Settings)
    commit: CommitSettings = field(default_factory=CommitSettings)
    sql: SqlSettings = field(default_factory=SqlSettings)
    maintenance: MaintenanceSettings = field(default_factory=MaintenanceSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    credentials: CredentialSettings = field(default_factory=CredentialSettings)
    caches: CacheSettings = field(default_factory=CacheSettings)

    @property
    def auth_enabled(self) -> bool:
        return self.auth.enabled_for(self.host)

    @property
    def url(self) -> str:
        """Where this server answers on this machine (a wildcard listen address is reached on loopback):
        the SQL engine attaches it for writes, and the client commands default to it."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def open_warehouses(self) -> Warehouses:
        return Warehouses.open(
            self.warehouses, self.default_warehouse, self.s3, self.commit, self.allowed_locations, self.caches
        )

    def sql_engine(self) -> EngineConfig:
        return EngineConfig(self.sql, self.s3, self.url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> "Settings":
        env = os.environ if env is None else env
        base = cls(s3=S3Settings.from_env(env))
        base = replace(base, sql=SqlSettings.from_env(env))
        base = replace(base, maintenance=MaintenanceSettings.from_env(env))
        base = replace(base, auth=AuthSettings.from_env(env))
        base = replace(base, credentials=CredentialSettings.from_env(env))
        base = replace(base, commit=CommitSettings.from_env(env))
        base = replace(base, caches=CacheSettings.from_env(env))
        if "ICESHELF_WAREHOUSE" in env:
            base = replace(base, warehouses=parse_warehouses(env["ICESHELF_WAREHOUSE"]))
        if "ICESHELF_ALLOWED_LOCATIONS" in env:
            base = replace(base, allowed_locations=parse_allowed_locations(env["ICESHELF_ALLOWED_LOCATIONS"]))
        if "ICESHELF_HOST" in env:
            base = replace(base, host=env["ICESHELF_HOST"])
        if "ICESHELF_PORT" in env:
            base = replace(base, port=int(env["ICESHELF_PORT"]))
        if "ICESHELF_LOG_LEVEL" in env:
            base = replace(base, log_level=env["ICESHELF_LOG_LEVEL"])
        settings = replace(base, **{k: v for k, v in overrides.items() if v is not None})
        if settings.default_warehouse not in settings.warehouses:
            settings = replace(settings, default_warehouse=next(iter(settings.warehouses)))
        return settings
