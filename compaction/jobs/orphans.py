"""Orphan file removal: delete objects under a table's location that nothing references and that are old.

"Referenced" is everything the table's metadata reaches (``Reachability.table_files``): the
current metadata file and its metadata log, every snapshot's manifest list, manifests, data and
delete files (in any entry state), and statistics files. "Old" is last modified before
``older_than_ms``: a file an in-flight writer has written but not yet committed is young, and
that age is the only thing protecting it, so the threshold is days (S3 Tables'
``unreferencedDays``, default 3).

The listing is taken *before* the metadata is loaded: a file committed while the listing runs
is then referenced by the metadata read afterwards, so only uncommitted files can be mistaken
for orphans -- and those are young.

The scheduler adds S3 Tables' second phase (``nonCurrentDays``): an orphan is first marked
noncurrent, and deleted only once it has stayed unreferenced that long. Iceshelf has no object
versions to keep a noncurrent file in, so it stays in place, merely condemned; the marks live in
the table's maintenance documents. ``iceshelf remove-orphans`` is an explicit operator action
and deletes at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from iceshelf.compaction.jobs.reachability import FileSizes, Reachability
from iceshelf.compaction.jobs.records import MaintenanceStore, NoncurrentFiles
from iceshelf.compaction.jobs.removal import OnProgress, Removed, remove_files, table_prefix
from iceshelf.tables.names import Identifier
from iceshelf.tables.objectstore import ObjectStore
from iceshelf.tables.objectstore.fileio import StoreFileIO
from iceshelf.tables.tablestore import LoadedTable, TableStore


class UnmappableLocation(ValueError):
    """The metadata names a file by a location that cannot be matched to a key of this warehouse.

    Orphan removal then stops for the table: a file it cannot recognise as referenced would
    look like an orphan, and deleting it would corrupt the table.
    """


@dataclass(frozen=True)
class OrphanResult:
    orphans: int
    marked: int
    removed: Removed
    dry_run: bool = False

    def counts(self) -> dict:
        """The counts of this run's ``JobRun``: the deleted files are what it took in."""
        detail = {"orphans": self.orphans, "markedNoncurrent": self.marked}
        return {"filesIn": self.removed.files, "bytesIn": self.removed.bytes, "detail": detail}


@dataclass(frozen=True)
class Noncurrent:
    """S3 Tables' ``nonCurrentDays``: orphans are deleted only this long after being marked noncurrent."""

    documents: MaintenanceStore
    noncurrent_ms: int
    now_ms: int

    def due(self, table_uuid: str, orphans: FileSizes, dry_run: bool) -> tuple[FileSizes, NoncurrentFiles | None]:
        """The orphans whose mark is old enough, and the marks to store afterwards (``None``: unchanged)."""
        old = self.documents.noncurrent(table_uuid).marked
        marks = {location: old.get(location, self.now_ms) for location in orphans}
        due = {location: size for location, size in orphans.items() if marks[location] <= self.now_ms - self.noncurrent_ms}
        remaining = {location: when for location, when in marks.items() if location not in due}
        return due, None if dry_run or remaining == old else NoncurrentFiles(marked=remaining)


def referenced_key(store: ObjectStore, location: str) -> str:
    """The key of a location as a writer spelled it (``s3a://``, ``file:/x``, a bare path), or raise."""
    candidates = [location]  # store.key_of reads every spelling of a URI (normalize_uri); a bare path is none
    if location.startswith("/"):
        candidates.append(f"file://{location}")
    for candidate in candidates:
        if (key := store.key_of(candidate)) is not None:
            return key
    raise UnmappableLocation(f"{location} is not a location inside the warehouse {store.root_uri}")


def find_orphans(tables: TableStore, ident: Identifier, older_than_ms: int) -> tuple[LoadedTable, FileSizes]:
    """The table as loaded after the listing, and its unreferenced objects last modified before ``older_than_ms``."""
    store = tables.objects
    location = tables.load_table(ident).metadata.location
    prefix = table_prefix(store, location)
    if prefix is None:
        raise UnmappableLocation(f"the table location {location} is not inside the warehouse {store.root_uri}")
    listed = list(store.list(prefix))
    table = tables.load_table(ident)
    if table.metadata.location != location:
        return table, {}  # moved while we listed: the next run looks at the new location
    referenced = {
        referenced_key(store, path)
        for path in Reachability(StoreFileIO(store)).table_files(table.metadata, table.metadata_location)
    }
    return table, {
        store.uri(meta.key): meta.size for meta in listed if meta.key not in referenced and meta.last_modified_ms < older_than_ms
    }


def remove_orphans(
    tables: TableStore,
    ident: Identifier,
    older_than_ms: int,
    noncurrent: Noncurrent | None = None,
    dry_run: bool = False,
    progress: OnProgress | None = None,
) -> OrphanResult:
    """Delete ``ident``'s orphans older than ``older_than_ms`` -- at once, or after their noncurrent period."""
    table, orphans = find_orphans(tables, ident, older_than_ms)
    due, marks = (orphans, None) if noncurrent is None else noncurrent.due(str(table.metadata.table_uuid), orphans, dry_run)
    if dry_run:
        return OrphanResult(len(orphans), len(orphans) - len(due), Removed.counting(due), True)
    removed = remove_files(tables.objects, table.metadata.location, due, progress)
    if marks is not None:
        noncurrent.documents.put_noncurrent(str(table.metadata.table_uuid), marks)
    return OrphanResult(len(orphans), len(orphans) - len(due), removed)
