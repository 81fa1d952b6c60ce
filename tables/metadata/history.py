"""A table's history in time order: the checks every written metadata passes, and the timestamp of a
snapshot the server makes.

Readers order a table's history by time. DuckDB's iceberg reader takes the snapshot with the newest
``timestamp-ms`` as the table's state, and Java, Go and Rust Iceberg refuse to load metadata whose
snapshot log or metadata log steps back by more than a minute. So:

* ``check_ordered`` runs Java's ``TableMetadata`` checks (Iceberg 1.11, same messages, same one-minute
  tolerance for clock skew between writers) on every metadata version before it is written
  (``MetadataBuilder``): a client's commit that breaks them is refused with 400, never written.
* ``snapshot_timestamp`` is the ``timestamp-ms`` of a snapshot the server writes or rewrites (a rebased
  append, a compaction, a manifest rewrite): after its parent's and after everything the log holds,
  so the server's own snapshots never step back, whatever the clocks of the replicas that wrote
  before.
"""

from __future__ import annotations

from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Snapshot

from iceshelf.tables import clock
from iceshelf.tables.errors import BadRequestError

#: Java's ``TableMetadata.ONE_MINUTE``: the clock skew between writers the ordering checks tolerate.
ONE_MINUTE_MS = 60_000


def snapshot_timestamp(metadata: TableMetadata, parent: Snapshot | None) -> int:
    """Now, unless that is not after ``parent``, the newest snapshot-log entry and ``last-updated-ms``."""
    newest = [metadata.last_updated_ms]
    newest += [parent.timestamp_ms + 1] if parent is not None else []
    newest += [metadata.snapshot_log[-1].timestamp_ms + 1] if metadata.snapshot_log else []
    return max(clock.now_ms(), *newest)


def check_ordered(metadata: TableMetadata, updated: int | None = None) -> None:
    """Java's checks of a ``TableMetadata`` on its history: raise ``BadRequestError`` (400) if one fails.
    ``updated``: the ``last-updated-ms`` to check, if not the metadata's own."""
    updated = metadata.last_updated_ms if updated is None else updated
    _check_sorted("snapshot log entries", metadata.snapshot_log)
    if metadata.snapshot_log and updated - metadata.snapshot_log[-1].timestamp_ms < -ONE_MINUTE_MS:
        last = metadata.snapshot_log[-1].timestamp_ms
        raise BadRequestError(f"Invalid update timestamp {updated}: before last snapshot log entry at {last}")
    check_metadata_log(metadata, updated)
    for snapshot in metadata.snapshots:
        if (snapshot.sequence_number or 0) > (metadata.last_sequence_number or 0):
            raise BadRequestError(
                f"Invalid snapshot with sequence number {snapshot.sequence_number} "
                f"greater than last sequence number {metadata.last_sequence_number}"
            )


def check_metadata_log(metadata: TableMetadata, updated: int | None = None) -> None:
    """The metadata-log half of ``check_ordered``: all a finished version needs checking again, since
    finishing only adds a metadata-log entry (and trims old ones) to a state ``check_ordered`` passed."""
    updated = metadata.last_updated_ms if updated is None else updated
    _check_sorted("previous metadata log entries", metadata.metadata_log)
    if metadata.metadata_log and updated - metadata.metadata_log[-1].timestamp_ms < -ONE_MINUTE_MS:
        last = metadata.metadata_log[-1].timestamp_ms
        raise BadRequestError(f"Invalid update timestamp {updated}: before the latest metadata log entry timestamp {last}")


def _check_sorted(what: str, entries: list) -> None:
    for previous, entry in zip(entries, entries[1:]):
        if entry.timestamp_ms - previous.timestamp_ms < -ONE_MINUTE_MS:
            raise BadRequestError(f"[BUG] Expected sorted {what}.")
