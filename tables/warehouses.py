"""The warehouses ("table buckets") a server holds: one table store each, by name."""

from __future__ import annotations

from dataclasses import dataclass

from iceshelf.tables.errors import NoSuchWarehouseError
from iceshelf.tables.metadata.files import metadata_cache
from iceshelf.tables.objectstore import open_warehouse_store
from iceshelf.tables.settings import CacheSettings, CommitSettings, S3Settings
from iceshelf.tables.tablestore import TableStore


@dataclass
class Warehouses:
    tables: dict[str, TableStore]
    default: str

    @classmethod
    def open(
        cls,
        locations: dict[str, str],
        default: str,
        s3: S3Settings,
        commit: CommitSettings,
        allowed_locations: dict[str, tuple[str, ...]] | None = None,
        caches: CacheSettings = CacheSettings(),
    ) -> "Warehouses":
        """``locations``: warehouse name -> a directory or ``s3://bucket[/prefix]``; ``allowed_locations``:
        warehouse name -> the locations outside its root where its tables and views may also live. One
        metadata cache serves them all, so its budget is the process's, however many warehouses it holds."""
        allowed_locations = allowed_locations or {}
        if unknown := set(allowed_locations) - set(locations):
            raise ValueError(f"allowed locations given for unknown warehouse(s) {sorted(unknown)}")
        files = metadata_cache(caches.metadata_bytes)
        tables = {
            name: TableStore(
                name,
                open_warehouse_store(location, s3, allowed_locations.get(name, ())),
                commit.attempts,
                commit.group_commit,
                commit.rebase_appends,
                files,
                caches.manifest_list_bytes,
            )
            for name, location in locations.items()
        }
        return cls(tables, default)

    def get(self, name: str | None) -> TableStore:
        """By name, by location URI (what many clients pass as ``warehouse``), or the default."""
        if not name:
            return self.tables[self.default]
        if name in self.tables:
            return self.tables[name]
        for tables in self.tables.values():
            if tables.objects.root_uri.rstrip("/") == name.rstrip("/"):
                return tables
        raise NoSuchWarehouseError(f"Warehouse does not exist: {name}")

    def close(self) -> None:
        for table_store in self.tables.values():
            table_store.objects.close()
