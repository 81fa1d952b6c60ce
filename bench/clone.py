"""Zero-copy clones of a table for benchmarks and tests that need the same small files again and again.

A clone is a new table with a fresh location of its own whose one snapshot is the source's current
one, listing the source's own manifest list: no data is copied, and -- unlike registering the same
metadata under a second name, which the catalog refuses because the two tables would share a
location -- maintenance of the clone never deletes the source's files, which lie outside its location.
"""

from __future__ import annotations

from pyiceberg.table.update import AddSnapshotUpdate, AssertRefSnapshotId, SetSnapshotRefUpdate

from iceshelf.tables.commit.committer import TableChange
from iceshelf.tables.names import Identifier
from iceshelf.tables.tablestore import TableStore


def shallow_clone(tables: TableStore, source: Identifier, target: Identifier) -> None:
    metadata = tables.load_table(source).metadata
    snapshot = metadata.current_snapshot()
    if snapshot is None:
        raise ValueError(f"{source} has no snapshot to clone")
    fresh = tables.new_metadata(target, metadata.schema(), None, metadata.spec(), metadata.sort_order_by_id(metadata.default_sort_order_id), metadata.properties)
    tables.create_table(target, fresh)
    updates = (
        AddSnapshotUpdate(snapshot=snapshot.model_copy(update={"parent_snapshot_id": None})),
        SetSnapshotRefUpdate(ref_name="main", type="branch", snapshot_id=snapshot.snapshot_id),
    )
    tables.commit(TableChange(target, (AssertRefSnapshotId(ref="main", snapshot_id=None),), updates))
