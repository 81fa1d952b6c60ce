"""The warehouses ("table buckets") a server holds, built from settings: one table store each."""

from __future__ import annotations

from dataclasses import dataclass

from iceshelf.tables.errors import NoSuchWarehouseError
from iceshelf.tables.objectstore import open_store
from iceshelf.tables.settings import Settings
from iceshelf.tables.tablestore import TableStore


@dataclass
class Warehouses:
    stores: dict[str, TableStore]
    default: str

    @classmethod
    def open(cls, settings: Settings) -> "Warehouses":
        stores = {
            name: TableStore(name, open_store(location, settings.s3), settings.commit_attempts, settings.group_commit)
            for name, location in settings.warehouses.items()
        }
        return cls(stores, settings.default_warehouse)

    def get(self, name: str | None) -> TableStore:
        """By name, by location URI (what many clients pass as ``warehouse``), or the default."""
        if not name:
            return self.stores[self.default]
        if name in self.stores:
            return self.stores[name]
        for store in self.stores.values():
            if store.store.root_uri.rstrip("/") == name.rstrip("/"):
                return store
        raise NoSuchWarehouseError(f"Warehouse does not exist: {name}")

    def close(self) -> None:
        for table_store in self.stores.values():
            table_store.store.close()
