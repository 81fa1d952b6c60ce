"""One conformance suite for every ObjectStore backend.

``StoreConformance`` holds the contract; each ``Test*Store`` subclass only supplies the
``store`` fixture. The race tests are the point: a lost update or a double ``Create`` winner
is the bug the object-store layer exists to prevent, so they count every write exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from iceshelf.tables.objectstore import (
    CREATE,
    OVERWRITE,
    ObjectAlreadyExists,
    ObjectMeta,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    Update,
    normalize_uri,
)
from iceshelf.tables.objectstore.local import LocalStore
from iceshelf.tables.objectstore.mounted import MOUNTS, MountedStore
from iceshelf.tables.objectstore.memory import MemoryStore

REPO = Path(__file__).resolve().parent.parent
THREADS = 16


def _race(n: int, fn) -> list:
    """Run ``fn(i)`` in ``n`` threads released together; return results, re-raise the first error."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "race threads hung"
    if errors:
        raise errors[0]
    return results


def increment(store: ObjectStore, key: str, times: int) -> tuple[list[int], int]:
    """Add 1 to the counter at ``key`` ``times`` times with read + ``Update``, retrying lost races.

    Returns the values this caller installed and how many races it lost.
    """
    written: list[int] = []
    lost = 0
    while len(written) < times:
        current = store.get(key)
        value = int(current.data) + 1
        try:
            store.put(key, str(value).encode(), Update(current.etag))
        except PreconditionFailed:
            lost += 1
            continue
        written.append(value)
    return written, lost


def assert_exact_increments(store: ObjectStore, key: str, per_worker: list[list[int]], expected: int) -> None:
    final = int(store.get(key).data)
    installed = Counter(v for values in per_worker for v in values)
    duplicates = sorted(v for v, n in installed.items() if n > 1)
    assert not duplicates, f"LOST UPDATE: values installed by more than one writer: {duplicates[:20]}"
    assert final == expected, f"LOST UPDATE: counter is {final}, expected {expected}"
    assert sorted(installed) == list(range(1, expected + 1)), "every increment must install a distinct next value"


class StoreConformance:
    #: Increments per thread in the counter race.
    increments = 20
    #: Rounds of the 16-thread Create race.
    create_rounds = 3

    @pytest.fixture
    def store(self) -> ObjectStore:
        raise NotImplementedError

    # -- basic reads and writes -------------------------------------------------------------

    def test_put_get_roundtrip(self, store: ObjectStore) -> None:
        etag = store.put("a.txt", b"hello")
        got = store.get("a.txt")
        assert got.data == b"hello"
        assert got.etag == etag

    def test_head(self, store: ObjectStore) -> None:
        before_ms = int(time.time() * 1000) - 5_000
        etag = store.put("dir/h.bin", b"12345")
        meta = store.head("dir/h.bin")
        assert meta.key == "dir/h.bin"
        assert meta.size == 5
        assert meta.etag == etag
        assert before_ms <= meta.last_modified_ms <= int(time.time() * 1000) + 5_000
        assert store.exists("dir/h.bin")
        assert not store.exists("dir/nope.bin")

    def test_etag_changes_on_each_write(self, store: ObjectStore) -> None:
        # Different bytes each time: on S3 the etag is the content's MD5, so only distinct
        # contents are guaranteed distinct etags (see the S3 store's docstring).
        etags = [store.put("e", f"version {i}".encode()) for i in range(5)]
        assert len(set(etags)) == 5
        assert store.get("e").etag == etags[-1]
        assert store.head("e").etag == etags[-1]

    def test_overwrite_mode_explicit(self, store: ObjectStore) -> None:
        store.put("o", b"1", OVERWRITE)
        store.put("o", b"2", OVERWRITE)
        assert store.get("o").data == b"2"

    def test_create_new(self, store: ObjectStore) -> None:
        etag = store.put("c/new", b"first", CREATE)
        assert store.get("c/new").data == b"first"
        assert store.get("c/new").etag == etag

    def test_create_existing(self, store: ObjectStore) -> None:
        store.put("c/existing", b"first")
        with pytest.raises(ObjectAlreadyExists):
            store.put("c/existing", b"second", CREATE)
        assert store.get("c/existing").data == b"first"

    def test_create_after_delete(self, store: ObjectStore) -> None:
        store.put("c/again", b"1", CREATE)
        store.delete("c/again")
        store.put("c/again", b"2", CREATE)
        assert store.get("c/again").data == b"2"

    def test_update_chain(self, store: ObjectStore) -> None:
        etag = store.put("u", b"0")
        for i in range(1, 4):
            new = store.put("u", str(i).encode(), Update(etag))
            assert new != etag
            assert store.get("u").etag == new
            etag = new
        assert store.get("u").data == b"3"

    def test_update_stale_etag(self, store: ObjectStore) -> None:
        stale = store.put("u", b"0")
        store.put("u", b"1", Update(stale))
        with pytest.raises(PreconditionFailed):
            store.put("u", b"2", Update(stale))
        assert store.get("u").data == b"1"

    def test_update_stale_after_overwrite(self, store: ObjectStore) -> None:
        stale = store.put("u", b"0")
        store.put("u", b"other writer")
        with pytest.raises(PreconditionFailed):
            store.put("u", b"mine", Update(stale))
        assert store.get("u").data == b"other writer"

    def test_update_missing_key(self, store: ObjectStore) -> None:
        etag = store.put("elsewhere", b"x")
        with pytest.raises(PreconditionFailed):
            store.put("missing", b"x", Update(etag))
        with pytest.raises(ObjectNotFound):
            store.get("missing")

    def test_update_deleted_key(self, store: ObjectStore) -> None:
        etag = store.put("gone", b"x")
        store.delete("gone")
        with pytest.raises(PreconditionFailed):
            store.put("gone", b"y", Update(etag))
        assert not store.exists("gone")

    def test_get_head_missing(self, store: ObjectStore) -> None:
        with pytest.raises(ObjectNotFound):
            store.get("nope")
        with pytest.raises(ObjectNotFound):
            store.head("nope")
        with pytest.raises(ObjectNotFound):
            store.get("no/such/dir/key")

    def test_delete_then_get(self, store: ObjectStore) -> None:
        store.put("d/x", b"1")
        store.delete("d/x")
        with pytest.raises(ObjectNotFound):
            store.get("d/x")
        with pytest.raises(ObjectNotFound):
            store.head("d/x")
        assert list(store.list("d/")) == []

    def test_delete_missing_is_ok(self, store: ObjectStore) -> None:
        store.delete("never-existed")
        store.delete("no/such/dir/key")

    def test_nested_keys(self, store: ObjectStore) -> None:
        keys = ["t/metadata/00001-a.metadata.json", "t/data/p=1/f-0.parquet", "t/data/p=2/deep/er/f-1.parquet"]
        for i, k in enumerate(keys):
            store.put(k, str(i).encode())
        for i, k in enumerate(keys):
            assert store.get(k).data == str(i).encode()
        assert [m.key for m in store.list("t/")] == sorted(keys)
        store.delete(keys[2])
        assert [m.key for m in store.list("t/data/")] == [keys[1]]

    def test_unusual_key_characters(self, store: ObjectStore) -> None:
        keys = ["s/with space.txt", "s/plus+equals=.txt", "s/percent%20.txt", "s/ünïcødé-ß.txt", "s/tilde~(paren).txt"]
        for k in keys:
            store.put(k, k.encode())
        for k in keys:
            assert store.get(k).data == k.encode()
        assert [m.key for m in store.list("s/")] == sorted(keys)

    def test_empty_object(self, store: ObjectStore) -> None:
        etag = store.put("empty", b"")
        got = store.get("empty")
        assert got.data == b""
        assert got.etag == etag
        assert store.head("empty").size == 0
        assert [m.size for m in store.list("empty")] == [0]
        store.put("empty", b"now full", Update(etag))
        assert store.get("empty").data == b"now full"

    def test_binary_data(self, store: ObjectStore) -> None:
        blob = bytes(range(256)) * 64 + b"\x00\r\n\x00"
        etag = store.put("bin", blob)
        assert store.get("bin").data == blob
        assert store.head("bin").size == len(blob)
        store.put("bin", blob[::-1], Update(etag))
        assert store.get("bin").data == blob[::-1]

    def test_large_object(self, store: ObjectStore) -> None:
        blob = os.urandom(5 * 1024 * 1024 + 17)  # above SeaweedFS's 4 MB chunk size
        etag = store.put("large", blob, CREATE)
        got = store.get("large")
        assert got.data == blob
        assert got.etag == etag
        store.put("large", b"small", Update(got.etag))
        assert store.get("large").data == b"small"

    def test_uri_and_key_of(self, store: ObjectStore) -> None:
        uri = store.uri("t/metadata/v1.json")
        assert uri.startswith(store.root_uri.rstrip("/") + "/")
        assert store.key_of(uri) == "t/metadata/v1.json"
        assert store.key_of("s3://elsewhere/x") is None

    # -- listing ----------------------------------------------------------------------------

    def test_list_right_after_put(self, store: ObjectStore) -> None:
        for i in range(5):
            key = f"raw/{i:03d}"
            etag = store.put(key, b"x" * i)
            listed = {m.key: m for m in store.list("raw/")}
            assert key in listed, f"{key} not listed right after its put"
            assert listed[key].etag == etag
            assert listed[key].size == i
        assert sorted(m.key for m in store.list("raw/")) == [f"raw/{i:03d}" for i in range(5)]

    def test_list_sees_overwrite_and_delete(self, store: ObjectStore) -> None:
        store.put("lv/a", b"1")
        etag = store.put("lv/a", b"22")
        [meta] = store.list("lv/")
        assert (meta.etag, meta.size) == (etag, 2)
        store.delete("lv/a")
        assert list(store.list("lv/")) == []

    def test_list_by_prefix(self, store: ObjectStore) -> None:
        for k in ["p/a/1", "p/a/2", "p/ab/1", "p/b/1", "p/a", "q/a/1", "pa/1"]:
            if k == "p/a":
                continue  # a key cannot also be a "directory" on filesystem-backed stores
            store.put(k, b"v")
        assert [m.key for m in store.list("p/a/")] == ["p/a/1", "p/a/2"]
        assert [m.key for m in store.list("p/a")] == ["p/a/1", "p/a/2", "p/ab/1"]
        assert [m.key for m in store.list("p/")] == ["p/a/1", "p/a/2", "p/ab/1", "p/b/1"]
        assert [m.key for m in store.list("p")] == ["p/a/1", "p/a/2", "p/ab/1", "p/b/1", "pa/1"]
        assert [m.key for m in store.list("p/a/1")] == ["p/a/1"]
        assert list(store.list("p/zzz")) == []
        assert list(store.list("nothing/")) == []
        assert [m.key for m in store.list("")] == ["p/a/1", "p/a/2", "p/ab/1", "p/b/1", "pa/1", "q/a/1"]

    def test_list_page_paging(self, store: ObjectStore) -> None:
        keys = [f"pg/{i:02d}" for i in range(10)]
        for k in keys:
            store.put(k, b"v")
        assert [m.key for m in store.list_page("pg/", limit=3)] == keys[:3]
        assert [m.key for m in store.list_page("pg/", start_after="pg/02", limit=3)] == keys[3:6]
        assert [m.key for m in store.list_page("pg/", start_after="pg/08", limit=3)] == keys[9:]
        assert store.list_page("pg/", start_after="pg/09", limit=3) == []
        assert [m.key for m in store.list_page("pg/", start_after="pg/045", limit=100)] == keys[5:]
        assert [m.key for m in store.list_page("pg/", start_after="a", limit=2)] == keys[:2]
        # Walk it by hand, a page at a time.
        seen, after = [], None
        while page := store.list_page("pg/", start_after=after, limit=4):
            assert len(page) <= 4
            seen += [m.key for m in page]
            after = page[-1].key
        assert seen == keys

    #: Keys where byte order and "directory-first" order disagree ("-", "." and "+" sort before "/").
    punctuation_keys = ["o/a/1", "o/a/2", "o/a-b", "o/a.c", "o/a0", "o/a+x/1", "o/b"]

    def expected_order(self, keys: list[str]) -> list[str]:
        return sorted(keys)  # S3's documented order: UTF-8 byte order of the whole key

    def test_list_order_and_paging_with_punctuation(self, store: ObjectStore) -> None:
        for k in self.punctuation_keys:
            store.put(k, b"v")
        listed = [m.key for m in store.list("o/")]
        assert listed == self.expected_order(self.punctuation_keys)
        paged, after = [], None
        while page := store.list_page("o/", start_after=after, limit=2):
            paged += [m.key for m in page]
            after = page[-1].key
        assert paged == listed, "paging with start_after must yield every key once, in list order"

    def test_list_iterates_over_pages(self, store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
        keys = [f"many/{i:03d}" for i in range(11)] + [f"many/sub/{i}" for i in range(3)]
        for k in keys:
            store.put(k, b"v")
        calls = []
        real = store.list_page

        def small_pages(prefix: str, start_after: str | None = None, limit: int = 1000):
            calls.append(start_after)
            return real(prefix, start_after, limit=min(limit, 3))

        assert [m.key for m in store.list("many/")] == sorted(keys)
        monkeypatch.setattr(store, "list_page", small_pages)
        # The contract's paging loop over this backend's pages (a backend may override list()).
        assert [m.key for m in ObjectStore.list(store, "many/")] == sorted(keys)
        assert len(calls) >= 5

    # -- races ------------------------------------------------------------------------------

    def test_concurrent_update_increments_are_exact(self, store: ObjectStore) -> None:
        store.put("counter", b"0", CREATE)
        results = _race(THREADS, lambda i: increment(store, "counter", self.increments))
        assert_exact_increments(store, "counter", [w for w, _ in results], THREADS * self.increments)

    def test_concurrent_create_has_one_winner(self, store: ObjectStore) -> None:
        def attempt(i: int) -> str | None:
            try:
                store.put("lock", f"owner {i}".encode(), CREATE)
            except ObjectAlreadyExists:
                return None
            return f"owner {i}"

        for _round in range(self.create_rounds):
            store.delete("lock")
            winners = [w for w in _race(THREADS, attempt) if w is not None]
            assert len(winners) == 1, f"Create must have exactly one winner, got {winners}"
            assert store.get("lock").data.decode() == winners[0]


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self) -> ObjectStore:
        return MemoryStore()


class TestMountedStore(StoreConformance):
    """A warehouse store with an allowed location mounted beside it honours the same contract, in both."""

    @pytest.fixture(params=["warehouse", "mount"])
    def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
        mounted = MountedStore(LocalStore(tmp_path / "wh"), [LocalStore(tmp_path / "allowed")])
        return mounted if request.param == "warehouse" else _Prefixed(mounted, f"{MOUNTS}/0/")

    def test_keys_map_to_the_mount_and_back(self, tmp_path: Path) -> None:
        mounted = MountedStore(LocalStore(tmp_path / "wh"), [LocalStore(tmp_path / "allowed")])
        key = mounted.key_of(f"file:{tmp_path}/allowed/t/data/f.parquet")
        assert key == f"{MOUNTS}/0/t/data/f.parquet"
        mounted.put(key, b"x")
        assert (tmp_path / "allowed" / "t" / "data" / "f.parquet").read_bytes() == b"x"
        assert mounted.uri(key) == (tmp_path / "allowed").as_uri() + "/t/data/f.parquet"
        assert [m.key for m in mounted.list(f"{MOUNTS}/0/t/")] == [key]
        assert mounted.list_page("") == []  # a warehouse listing never reaches into a mount
        assert mounted.key_of(f"file://{tmp_path}/wh/t") == "t"
        assert mounted.key_of(f"file://{tmp_path}/wh/{MOUNTS}/0/t") is None  # not a back door into a mount
        assert mounted.key_of(f"file://{tmp_path}/elsewhere/t") is None

    def test_mounts_may_not_nest_or_lie_in_the_warehouse(self, tmp_path: Path) -> None:
        home = LocalStore(tmp_path / "wh")
        with pytest.raises(ValueError, match="inside the warehouse"):
            MountedStore(home, [LocalStore(tmp_path / "wh" / "sub")])
        with pytest.raises(ValueError, match="nest"):
            MountedStore(home, [LocalStore(tmp_path / "a"), LocalStore(tmp_path / "a" / "b")])
        MountedStore(LocalStore(tmp_path / "around" / "wh"), [LocalStore(tmp_path / "around")])  # around it is fine


class _Prefixed(ObjectStore):
    """The conformance suite's keys, placed below ``prefix`` of ``inner`` (a mount's key space)."""

    def __init__(self, inner: ObjectStore, prefix: str) -> None:
        self.inner, self.prefix, self.root_uri = inner, prefix, inner.root_uri

    def get(self, key):
        return self.inner.get(self.prefix + key)

    def head(self, key):
        meta = self.inner.head(self.prefix + key)
        return ObjectMeta(meta.key.removeprefix(self.prefix), meta.size, meta.etag, meta.last_modified_ms)

    def put(self, key, data, mode=OVERWRITE):
        return self.inner.put(self.prefix + key, data, mode)

    def delete(self, key):
        self.inner.delete(self.prefix + key)

    def list_page(self, prefix, start_after=None, limit=1000):
        after = None if start_after is None else self.prefix + start_after
        return [
            ObjectMeta(m.key.removeprefix(self.prefix), m.size, m.etag, m.last_modified_ms)
            for m in self.inner.list_page(self.prefix + prefix, after, limit)
        ]


@pytest.mark.parametrize(
    ("spelling", "normal"),
    [
        ("file:/srv/wh/t", "file:///srv/wh/t"),  # Java's File.toURI(), Hadoop
        ("file:///srv/wh/t", "file:///srv/wh/t"),
        ("file://localhost/srv/wh/t", "file:///srv/wh/t"),
        ("FILE:/srv/wh/%7euser/%41", "file:///srv/wh/~user/A"),  # unreserved escapes decoded
        ("file:///srv/wh/a%2fb", "file:///srv/wh/a%2Fb"),  # a reserved one stays escaped (one segment)
        ("file://otherhost/srv/wh", "file://otherhost/srv/wh"),  # another machine's file: not ours
        ("s3a://bucket/wh/t", "s3://bucket/wh/t"),
        ("s3://bucket/wh/t", "s3://bucket/wh/t"),
        ("/srv/wh/t", "/srv/wh/t"),  # not a URI
    ],
)
def test_normalize_uri(spelling: str, normal: str) -> None:
    assert normalize_uri(spelling) == normal


def test_key_of_reads_every_spelling_of_a_file_uri(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "wh")
    for spelling in (f"file:{tmp_path}/wh/ns/t", f"file://{tmp_path}/wh/ns/t", f"file://localhost{tmp_path}/wh/ns/t"):
        assert store.key_of(spelling) == "ns/t", spelling
    assert store.key_of(f"file://otherhost{tmp_path}/wh/ns/t") is None
    assert store.key_of(f"file:{tmp_path}/wh2/ns/t") is None


class TestLocalStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> ObjectStore:
        return LocalStore(tmp_path / "wh")

    def test_internal_directory_is_not_listed(self, store: LocalStore) -> None:
        store.put("k", b"v")
        store.put("k", b"w")
        assert [m.key for m in store.list()] == ["k"]

    def test_two_instances_share_the_directory(self, tmp_path: Path) -> None:
        a, b = LocalStore(tmp_path / "wh"), LocalStore(tmp_path / "wh")
        etag = a.put("k", b"1", CREATE)
        with pytest.raises(ObjectAlreadyExists):
            b.put("k", b"2", CREATE)
        b.put("k", b"2", Update(etag))
        with pytest.raises(PreconditionFailed):
            a.put("k", b"3", Update(etag))

    def test_processes_increment_exactly(self, tmp_path: Path) -> None:
        processes, per_process = 4, self.increments
        root = tmp_path / "wh"
        LocalStore(root).put("counter", b"0", CREATE)
        go = tmp_path / "go"
        code = textwrap.dedent(
            """
            import json, os, sys, time
            sys.path.insert(0, sys.argv[1])
            from iceshelf.tables.objectstore.local import LocalStore
            from tests.test_objectstore import increment
            store = LocalStore(sys.argv[2])
            while not os.path.exists(sys.argv[3]):
                time.sleep(0.001)
            written, lost = increment(store, "counter", int(sys.argv[4]))
            print(json.dumps({"written": written, "lost": lost}))
            """
        )
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(REPO), str(root), str(go), str(per_process)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(processes)
        ]
        time.sleep(0.3)
        go.touch()
        per_worker = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            per_worker.append(json.loads(out)["written"])
        assert_exact_increments(LocalStore(root), "counter", per_worker, processes * per_process)


class TestS3Store(StoreConformance):
    # SeaweedFS serialises conditional writes to one key and lets waiters poll about once a
    # second, so the k-th loser of a 16-way race answers after ~k seconds: keep races small.
    increments = 5
    create_rounds = 1

    def expected_order(self, keys: list[str]) -> list[str]:
        # SeaweedFS lists its directory tree depth first, so "/" sorts before every other
        # character ("o/a/1" < "o/a+x/1"), unlike AWS's byte order. Paging is consistent
        # with that order; only code comparing keys itself must not assume byte order.
        return sorted(keys, key=lambda k: k.split("/"))

    @pytest.fixture(scope="class")
    @classmethod
    def bucket(cls, seaweed) -> str:
        return seaweed.create_bucket()

    @pytest.fixture
    def store(self, seaweed, bucket: str) -> ObjectStore:
        from iceshelf.tables.objectstore.s3 import S3Store

        store = S3Store(bucket, f"run/{uuid.uuid4().hex}", seaweed.s3_settings())
        yield store
        store.close()

    def test_root_uri(self, seaweed, bucket: str) -> None:
        from iceshelf.tables.objectstore.s3 import S3Store

        assert S3Store(bucket, "a/b/", seaweed.s3_settings()).root_uri == f"s3://{bucket}/a/b"
        assert S3Store(bucket, "", seaweed.s3_settings()).root_uri == f"s3://{bucket}"

    def test_open_store(self, seaweed, bucket: str) -> None:
        from iceshelf.tables.objectstore import open_store
        from iceshelf.tables.objectstore.s3 import S3Store

        store = open_store(f"s3://{bucket}/wh/x", seaweed.s3_settings())
        assert isinstance(store, S3Store)
        try:
            store.put("k", b"v")
            assert store.uri("k") == f"s3://{bucket}/wh/x/k"
            assert seaweed.client().get_object(Bucket=bucket, Key="wh/x/k")["Body"].read() == b"v"
        finally:
            store.close()

    def test_bucket_root_store(self, seaweed) -> None:
        from iceshelf.tables.objectstore.s3 import S3Store

        bucket = seaweed.create_bucket()
        store = S3Store(bucket, "", seaweed.s3_settings())
        try:
            store.put("a/1", b"1")
            store.put("b", b"2", CREATE)
            assert [m.key for m in store.list()] == ["a/1", "b"]
            assert store.get("a/1").data == b"1"
            assert store.uri("a/1") == f"s3://{bucket}/a/1"
        finally:
            store.close()

    def test_prefixes_isolate_stores(self, seaweed, bucket: str) -> None:
        from iceshelf.tables.objectstore.s3 import S3Store

        a = S3Store(bucket, "iso/a", seaweed.s3_settings())
        ab = S3Store(bucket, "iso/ab", seaweed.s3_settings())
        try:
            a.put("k", b"a")
            ab.put("k", b"ab")
            assert [m.key for m in a.list()] == ["k"]
            assert a.get("k").data == b"a"
            assert ab.get("k").data == b"ab"
        finally:
            a.close()
            ab.close()

    @pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/", "a/./b", "a/../b", ".."])
    def test_malformed_keys_are_refused(self, store: ObjectStore, key: str) -> None:
        with pytest.raises(ValueError):
            store.put(key, b"v")
        with pytest.raises(ValueError):
            store.get(key)

    def test_unreachable_endpoint_is_a_typed_fault(self, bucket: str) -> None:
        """Refused connections are ``StoreUnreachable`` (never sent), not an outcome such as a lost race."""
        import socket

        from iceshelf.tables.objectstore import StoreUnreachable
        from iceshelf.tables.objectstore.s3 import S3Store
        from iceshelf.tables.settings import S3Settings

        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        store = S3Store(bucket, "", S3Settings(f"http://127.0.0.1:{port}", "k", "s", retry_attempts=2, retry_budget_s=5))
        try:
            for call in (lambda: store.put("k", b"v", CREATE), lambda: store.get("k"), lambda: store.head("k")):
                with pytest.raises(StoreUnreachable) as info:
                    call()
                assert info.value.sent is False
        finally:
            store.close()

    def test_lost_response_to_conditional_write_is_a_fault(self, seaweed, bucket: str) -> None:
        """A conditional PUT that landed but whose response was lost must not be retried.

        A retry would meet its own write and answer 412, turning a win into a reported loss
        (``ObjectAlreadyExists``/``PreconditionFailed``). The store must raise the transport
        fault instead, so the caller knows the outcome is unknown and re-reads.
        """
        import dataclasses

        import iceshelf.tables.objectstore.s3 as s3mod
        from iceshelf.tables.objectstore import StoreTimeout

        with _BlackHoleProxy(seaweed.endpoint_url) as proxy:
            settings = seaweed.s3_settings()
            store = s3mod.S3Store(bucket, f"run/{uuid.uuid4().hex}", dataclasses.replace(settings, endpoint_url=proxy.url, read_timeout_s=1))
            direct = s3mod.S3Store(bucket, store.prefix, settings)
            try:
                with pytest.raises(StoreTimeout) as info:  # a fault, sent: outcome unknown, never a lost race
                    store.put("k", b"mine", CREATE)
                assert info.value.sent
                assert direct.get("k").data == b"mine"  # the write did land
                etag = direct.get("k").etag
                proxy.swallow = 1
                with pytest.raises(StoreTimeout) as info:
                    store.put("k", b"mine again", Update(etag))
                assert direct.get("k").data == b"mine again"
            finally:
                store.close()
                direct.close()

    def test_etag_is_passed_through_verbatim(self, store: ObjectStore) -> None:
        etag = store.put("q", b"v")
        assert etag.startswith('"') and etag.endswith('"')
        assert store.put("q", b"w", Update(etag)) != etag

    def test_faults_are_not_outcomes(self, seaweed) -> None:
        """A missing bucket or bad credentials are faults, not ``ObjectNotFound``/``PreconditionFailed``."""
        from iceshelf.tables.objectstore.base import ObjectStoreError
        from iceshelf.tables.objectstore.s3 import S3Store
        from iceshelf.tables.settings import S3Settings

        missing = S3Store("no-such-bucket-here", "", seaweed.s3_settings())
        bad = S3Store(seaweed.create_bucket(), "", S3Settings(seaweed.endpoint_url, seaweed.access_key, "wrong", region=seaweed.region))
        try:
            for store in (missing, bad):
                with pytest.raises(Exception) as info:
                    store.get("k")
                assert not isinstance(info.value, ObjectStoreError)
                with pytest.raises(Exception) as info:
                    store.put("k", b"v", CREATE)
                assert not isinstance(info.value, ObjectStoreError)
        finally:
            missing.close()
            bad.close()

    def test_separate_clients_race_create(self, seaweed, bucket: str) -> None:
        from iceshelf.tables.objectstore.s3 import S3Store

        prefix = f"run/{uuid.uuid4().hex}"
        stores = [S3Store(bucket, prefix, seaweed.s3_settings()) for _ in range(4)]
        try:
            outcomes = _race(4, lambda i: _try_create(stores[i], "lock", i))
            assert sum(outcomes) == 1
        finally:
            for s in stores:
                s.close()


class _BlackHoleProxy:
    """A TCP proxy to ``upstream_url`` that swallows every response on its first ``swallow`` connections.

    Requests always reach the server; the client just never hears back on those connections,
    and later connections (a retry) work normally.
    """

    def __init__(self, upstream_url: str, swallow: int = 1) -> None:
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname, parts.port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._sockets: list = [self._server]
        self._closed = False
        self.swallow = swallow

    def __enter__(self) -> "_BlackHoleProxy":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._closed = True
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass

    def _accept(self) -> None:
        import socket

        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            self._sockets += [client, upstream]
            black_hole = self.swallow > 0
            self.swallow -= 1
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, None if black_hole else client), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while chunk := src.recv(65536):
                if dst is not None:
                    dst.sendall(chunk)
        except OSError:
            pass


def _try_create(store: ObjectStore, key: str, i: int) -> bool:
    try:
        store.put(key, str(i).encode(), CREATE)
    except ObjectAlreadyExists:
        return False
    return True

