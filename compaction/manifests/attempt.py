"""A commit attempt of a new ``main`` snapshot, and its own files: deleted when the attempt fails,
kept when its outcome is unknown.

Every job that writes manifests and then commits them has the same three endings: committed
(the files belong to the table now), failed -- a lost race, a refused requirement, an error
before the commit -- (nothing references the files: delete them), or outcome unknown (the
table may reference them: keep them). A crash (the process dies) deletes nothing: what it
leaves is for orphan removal.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import contextmanager
from typing import Iterator

from pyiceberg.io import FileIO
from pyiceberg.table.refs import MAIN_BRANCH, SnapshotRefType
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.table.update import AddSnapshotUpdate, AssertRefSnapshotId, AssertTableUUID, SetSnapshotRefUpdate

from iceshelf.tables.commit.committer import TableChange
from iceshelf.tables.errors import CommitStateUnknownException
from iceshelf.tables.names import Identifier
from iceshelf.tables.tablestore import TableStore

log = logging.getLogger("iceshelf.maintenance")


@contextmanager
def attempt_files(io: FileIO) -> Iterator[list[str]]:
    """Yields the list to record each written location in; deletes them if the block fails."""
    written: list[str] = []
    try:
        yield written
    except CommitStateUnknownException:
        raise
    except Exception:
        for location in written:
            try:
                io.delete(location)
            except Exception:  # left as an orphan for orphan removal
                log.warning("could not delete %s", location, exc_info=True)
        raise


def commit_on_main(tables: TableStore, ident: Identifier, table_uuid: uuid.UUID, snapshot: Snapshot) -> None:
    """Add ``snapshot`` and point ``main`` at it, provided ``main`` is still its parent (else 409)."""
    tables.commit(
        TableChange(
            ident,
            (AssertTableUUID(uuid=table_uuid), AssertRefSnapshotId(ref=MAIN_BRANCH, snapshot_id=snapshot.parent_snapshot_id)),
            (
                AddSnapshotUpdate(snapshot=snapshot),
                SetSnapshotRefUpdate(ref_name=MAIN_BRANCH, type=SnapshotRefType.BRANCH, snapshot_id=snapshot.snapshot_id),
            ),
        )
    )
