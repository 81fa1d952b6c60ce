"""Leases on every backend: one holder at a time, expiry hands a lease over, the heartbeat keeps it.

The exclusion test is a lost-update detector: holders do a deliberately racy read-sleep-write
increment of a counter object inside the lease. Any overlap of two holders loses an increment.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import iceshelf.tables.clock
from bench.servers.seaweed import SeaweedServer
from iceshelf.compaction.jobs.leases import Leases
from iceshelf.tables.objectstore import ObjectStore, open_store
from iceshelf.tables.objectstore.memory import MemoryStore
from iceshelf.tables.settings import S3Settings


@pytest.fixture(params=["memory", "local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "memory":
        return MemoryStore()
    if request.param == "local":
        return open_store(str(tmp_path / "wh"), S3Settings())
    seaweed: SeaweedServer = request.getfixturevalue("seaweed")
    return open_store(f"s3://{seaweed.create_bucket()}/wh", seaweed.s3_settings())


def test_only_one_holder_at_a_time(store: ObjectStore) -> None:
    replicas, rounds = 4, 5
    holders: set[str] = set()
    overlaps: list[str] = []
    guard = threading.Lock()

    def replica(owner: str) -> None:
        leases = Leases(store, owner, duration_s=60)
        done = 0
        while done < rounds:
            lease = leases.acquire("tables/t")
            if lease is None:
                time.sleep(0.01)
                continue
            with guard:
                if holders:
                    overlaps.append(f"{owner} entered while {holders} held it")
                holders.add(owner)
            try:
                count = int(store.get("counter").data) if store.exists("counter") else 0
                time.sleep(0.005)
                store.put("counter", str(count + 1).encode())
            finally:
                with guard:
                    holders.discard(owner)
                lease.release()
            done += 1

    threads = [threading.Thread(target=replica, args=(f"r{n}",)) for n in range(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []
    assert int(store.get("counter").data) == replicas * rounds


def test_an_expired_lease_is_taken_over_and_its_old_holder_learns_it(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = Leases(store, "first", duration_s=30), Leases(store, "second", duration_s=30)
    held = first.acquire("tables/t")
    assert held is not None and second.acquire("tables/t") is None

    now = iceshelf.tables.clock.now_ms()
    monkeypatch.setattr(iceshelf.tables.clock, "now_ms", lambda: now + 31_000)  # the first holder stalled past its expiry
    taken = second.acquire("tables/t")
    assert taken is not None
    assert held.renew() is False and held.lost
    held.release()  # a lost lease is left alone: the new holder keeps it
    assert taken.renew() and first.acquire("tables/t") is None
    taken.release()
    assert first.acquire("tables/t") is not None  # released: free at once, no waiting for the expiry


def test_a_held_lease_is_renewed_while_its_work_runs(store: ObjectStore) -> None:
    holder, other = Leases(store, "holder", duration_s=0.3), Leases(store, "other", duration_s=0.3)
    with holder.hold("tables/t") as lease:
        assert lease is not None
        time.sleep(1.0)  # three lease lengths: only the heartbeat keeps it
        assert other.acquire("tables/t") is None and not lease.lost
    assert other.acquire("tables/t") is not None
