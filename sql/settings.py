"""The SQL endpoint's settings slice (limits; the composition root reads them with the rest)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from iceshelf.tables.settings import env_flag


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
            read_only=env_flag(env["ICESHELF_SQL_READ_ONLY"]) if "ICESHELF_SQL_READ_ONLY" in env else base.read_only,
            timeout_s=float(env.get("ICESHELF_SQL_TIMEOUT", base.timeout_s)),
            memory_limit=env.get("ICESHELF_SQL_MEMORY_LIMIT", base.memory_limit),
            max_rows=int(env.get("ICESHELF_SQL_MAX_ROWS", base.max_rows)),
            pool_size=int(env.get("ICESHELF_SQL_POOL_SIZE", base.pool_size)),
        )
