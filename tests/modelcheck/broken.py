"""Deliberately broken variants of the protocol: the model check must find each one out.

A checker that never fails proves nothing. Each variant here breaks one thing the protocol's
safety rests on, the way a plausible bug would:

* ``CheckThenWriteStore`` -- a backend whose compare-and-swap is a read, then an unconditional
  write: two scheduling points where the contract demands one atomic step;
* ``OverwritingCommitter`` -- a commit path that publishes the new pointer with ``Overwrite``
  instead of ``Update(etag)``;
* ``EagerTransactionCommitter`` -- a transaction that rolls its pointers forward *before* it
  flips its record to committed;
* ``LoserAckingCommitter`` -- a group commit batch that answers its changes as committed although
  its pointer swing lost the race;
* ``ForgetfulRebaser`` -- a rebase of a stale append whose new manifest list holds the append's own
  manifests but not the head's;
* ``ClientClockRebaser`` -- a rebase that keeps the client's ``timestamp-ms``, so the rebased snapshot
  can be older than the parent it now has (DuckDB, taking the newest snapshot, misses an append).
"""

from __future__ import annotations

from dataclasses import replace

from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Snapshot

from iceshelf.tables.commit.committer import Committer, Staged
from iceshelf.tables.commit.rebase import AppendRebaser
from iceshelf.tables.metadata.manifest_lists import ManifestList
from iceshelf.tables.objectstore import OVERWRITE, ObjectNotFound, ObjectStore, PreconditionFailed, PutMode, Update
from iceshelf.tables.state.keys import entry_key
from iceshelf.tables.state.pointer import Pointer
from iceshelf.tables.state.transactions import TxnRecord
from iceshelf.tables.tablestore import TableStore
from tests.modelcheck.explorer import COMMIT_ATTEMPTS, Scenario, default_tables
from tests.modelcheck.scenarios import T1, T2, appends_rebased_and_batched, transaction_writer_reader, two_appenders
from tests.modelcheck.scheduled_store import ScheduledStore


class CheckThenWriteStore(ScheduledStore):
    """BROKEN: ``Update(etag)`` as compare, then write -- another process can write in between."""

    def put(self, key: str, data: bytes, mode: PutMode = OVERWRITE) -> str:
        if not isinstance(mode, Update):
            return super().put(key, data, mode)
        try:
            current = self.head(key)
        except ObjectNotFound:
            raise PreconditionFailed(key) from None
        if current.etag != mode.etag:
            raise PreconditionFailed(key)
        return super().put(key, data, OVERWRITE)


class OverwritingCommitter(Committer):
    """BROKEN: swings an existing table's pointer unconditionally."""

    def publish(self, staged: Staged, pointer: Pointer) -> str:
        if staged.base is None:
            return super().publish(staged, pointer)
        return self.entries.store.put(entry_key(staged.change.identifier), pointer.to_bytes(), OVERWRITE)


class EagerTransactionCommitter(Committer):
    """BROKEN: settles the staged pointers forward, then flips the record (the real order is reversed)."""

    def _decide_committed(self, record: TxnRecord) -> TxnRecord | None:
        entries = self.entries
        for ident in (T1, T2):
            current = entries.read_raw(ident)
            if current is not None and current.pointer.txn == record.id:
                entries.settle(ident, current, committed=True)
        return super()._decide_committed(record)


class LoserAckingCommitter(Committer):
    """BROKEN: a swing that lost the race counts as done, so the batch acknowledges its changes."""

    def publish(self, staged: Staged, pointer: Pointer) -> str:
        try:
            return super().publish(staged, pointer)
        except PreconditionFailed:
            return "lost"


def _with_committer(committer: type[Committer]):
    def tables(store: ObjectStore) -> TableStore:
        built = default_tables(store)
        built.committer = committer(
            built.entries, built.files, built.io, built.locations, built.after_commit, built.committer.rebaser, COMMIT_ATTEMPTS
        )
        return built

    return tables


def _broken(scenario: Scenario, what: str, **changes: object) -> Scenario:
    """``scenario`` with a broken part and no faults: these bugs need no crash to show."""
    return replace(scenario, name=f"BROKEN {what}: {scenario.name}", bounds=replace(scenario.bounds, faults=0), **changes)


def compare_then_write() -> Scenario:
    return _broken(two_appenders(), "compare-then-write store", wrap=CheckThenWriteStore)


def overwriting_publish() -> Scenario:
    return _broken(two_appenders(), "overwrite publish", tables=_with_committer(OverwritingCommitter))


def settle_before_flip() -> Scenario:
    return _broken(transaction_writer_reader(), "settle before flip", tables=_with_committer(EagerTransactionCommitter))



def batch_acks_a_lost_swing() -> Scenario:
    return _broken(appends_rebased_and_batched(), "batch acknowledged after a lost swing", tables=_with_committer(LoserAckingCommitter))


class ForgetfulRebaser(AppendRebaser):
    """BROKEN: a rebased append's manifest list leaves out the manifests of the head it lands on."""

    def head_manifests(self, head: Snapshot | None) -> ManifestList | None:
        return None


def _forgetful(store: ObjectStore) -> TableStore:
    built = default_tables(store)
    built.committer.rebaser = ForgetfulRebaser(built.committer.rebaser.lists)
    return built


def rebase_forgets_the_head() -> Scenario:
    return _broken(appends_rebased_and_batched(), "rebase forgets the head's manifests", tables=_forgetful)


class ClientClockRebaser(AppendRebaser):
    """BROKEN: a rebased append keeps the timestamp its client gave it."""

    def timestamp(self, snapshot: Snapshot, head: TableMetadata, parent: Snapshot | None) -> int:
        return snapshot.timestamp_ms


def _client_clock(store: ObjectStore) -> TableStore:
    built = default_tables(store)
    built.committer.rebaser = ClientClockRebaser(built.committer.rebaser.lists)
    return built


def rebase_keeps_the_client_clock() -> Scenario:
    return _broken(appends_rebased_and_batched(), "rebase keeps the client's timestamp", tables=_client_clock)
