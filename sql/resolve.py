"""The catalog as the SQL layer sees it: table names to metadata, over the warehouses' table stores.

``WarehouseCatalog`` answers the rewrite's questions (``iceshelf.sql.rewrite.Catalog``) with fresh pointer
reads -- a query sees every commit acknowledged before it was planned -- and measures what a
query scans: the bytes of the data and delete files of the snapshots it reads (Athena's "data
scanned", without credit for the row groups DuckDB skips), cached per snapshot. What is derived
from a metadata file (snapshot ids, the snapshot log) is cached by its location: metadata files are
immutable, and the pointer read that names the location is never skipped. Both caches are bounded
by an estimate of their entries' bytes (a table's facts grow with its history).
"""

from __future__ import annotations

from pyiceberg.catalog.noop import NoopCatalog
from pyiceberg.table import StaticTable

from iceshelf.sql.rewrite import Scan, TableInfo
from iceshelf.tables.caches import ByteLRU
from iceshelf.tables.errors import NoSuchNamespaceError, NoSuchTableError
from iceshelf.tables.names import Identifier
from iceshelf.tables.objectstore.fileio import StoreFileIO
from iceshelf.tables.settings import CacheSettings
from iceshelf.tables.tablestore import LoadedTable, TableStore
from iceshelf.tables.warehouses import Warehouses

#: Rough bytes of one cached key and its bookkeeping, and of one snapshot in a ``TableInfo``.
_ENTRY_BYTES = 256
_SNAPSHOT_BYTES = 160


def _info_bytes(info: TableInfo) -> int:
    return _ENTRY_BYTES + len(info.metadata_location) + _SNAPSHOT_BYTES * (len(info.snapshot_ids) + len(info.history) + len(info.refs))


class WarehouseCatalog:
    def __init__(self, warehouses: Warehouses, cache_bytes: int = CacheSettings().sql_bytes) -> None:
        self.warehouses = warehouses
        self.default_warehouse = warehouses.default
        self._snapshot_bytes: ByteLRU[str, int] = ByteLRU(cache_bytes // 8, lambda _: _ENTRY_BYTES)
        self._infos: ByteLRU[str, TableInfo] = ByteLRU(cache_bytes - cache_bytes // 8, _info_bytes)

    def is_warehouse(self, name: str) -> bool:
        return name in self.warehouses.tables

    def warehouse(self, warehouse: str) -> TableStore:
        return self.warehouses.get(warehouse)

    def load(self, warehouse: str, ident: Identifier) -> LoadedTable | None:
        try:
            return self.warehouse(warehouse).load_table(ident)
        except (NoSuchTableError, NoSuchNamespaceError):
            return None

    def table(self, warehouse: str, ident: Identifier) -> TableInfo | None:
        loaded = self.load(warehouse, ident)
        if loaded is None:
            return None
        metadata = loaded.metadata
        return self._infos.get_or_compute(
            loaded.metadata_location,
            lambda: TableInfo(
                metadata_location=loaded.metadata_location,
                snapshot_ids=frozenset(s.snapshot_id for s in metadata.snapshots),
                history=tuple((entry.timestamp_ms, entry.snapshot_id) for entry in metadata.snapshot_log),
                refs={name: ref.snapshot_id for name, ref in metadata.refs.items()},
            ),
        )

    def static_table(self, warehouse: str, ident: Identifier, metadata_location: str) -> StaticTable:
        """A read-only pyiceberg table reading through the warehouse's own object store."""
        tables = self.warehouse(warehouse)
        file = tables.files.read(metadata_location)
        return StaticTable(
            identifier=(*ident.namespace, ident.name),
            metadata=file.metadata,
            metadata_location=metadata_location,
            io=StoreFileIO(tables.objects),
            catalog=NoopCatalog("iceshelf-sql"),
        )

    def scanned_bytes(self, scan: Scan) -> int:
        """Bytes of the snapshot's live data and delete files; a snapshot never changes, so cached by it."""
        return self._snapshot_bytes.get_or_compute(f"{scan.metadata_location}#{scan.snapshot_id}", lambda: self._measure(scan))

    def _measure(self, scan: Scan) -> int:
        table = self.static_table(scan.warehouse, scan.identifier, scan.metadata_location)
        snapshot = table.metadata.snapshot_by_id(scan.snapshot_id) if scan.snapshot_id else table.metadata.current_snapshot()
        total = 0
        for manifest in snapshot.manifests(table.io) if snapshot else []:
            total += sum(e.data_file.file_size_in_bytes for e in manifest.fetch_manifest_entry(table.io, discard_deleted=True))
        return total
