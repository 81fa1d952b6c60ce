"""The maintenance scheduler's settings slice (the composition root reads them with the rest)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from iceshelf.tables.settings import env_flag


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
            enabled=env_flag(env["ICESHELF_MAINTENANCE"]) if "ICESHELF_MAINTENANCE" in env else base.enabled,
            interval_s=float(env.get("ICESHELF_MAINTENANCE_INTERVAL", base.interval_s)),
            lease_s=float(env.get("ICESHELF_MAINTENANCE_LEASE", base.lease_s)),
        )
