"""The warehouses ("table buckets") a server holds, built from settings: one table store each."""

from __future__ import annotations

from dataclasses import dataclass

from iceshelf.tables.errors import NoSuchWarehouseError
from iceshelf.tables.objectstore import open_store
from iceshelf.tables.settings import Settings
from iceshelf.tables.tablestore import TableStore


@dataclass
class Warehouses:
    tables: dict[str, TableStore]
    default: str

    @classmethod
    def open(cls, settings: Settings) -> "Warehouses":
        tables = {
            name: TableStore(name, open_store(location, settings.s3), settings.commit_attempts, settings.group_commit)
            for name, location in settings.warehouses.items()
        }
        return cls(tables, settings.default_warehouse)

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
