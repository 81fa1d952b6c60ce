"""Local-filesystem store: the embedded default warehouse.

Atomicity comes from the filesystem, not from luck:

* ``Create`` writes a temp file and ``os.link``s it into place; ``link`` fails if the name
  exists, so exactly one creator wins, across threads and processes (the lock below is held
  too, for the mtime stamp).
* Every write and delete takes an ``flock`` on the key's lock stripe (one of ``_STRIPES`` lock
  files), compares the etag for ``Update``, then ``os.replace``s. ``flock`` locks belong to the
  open file description, so they exclude other threads of this process and other processes.
* The etag is the inode, mtime and size of the file; ``get`` takes it from the open descriptor,
  so data and etag match. Inode numbers are reused at once and mtimes can be coarse (ext4 before
  Linux 6.13 ticks every ~4 ms), so under its stripe lock each write sets the file's mtime to
  at least one nanosecond past the stripe's last stamp: a key's etags never repeat, even across
  delete and re-create, and a stale ``Update`` cannot match a newer version.
* File and directory are fsynced before a write returns: an acknowledged write survives a crash.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from iceshelf.tables.objectstore.base import (
    Create,
    GetResult,
    ObjectAlreadyExists,
    ObjectMeta,
    ObjectNotFound,
    ObjectStore,
    Overwrite,
    PreconditionFailed,
    PutMode,
    Update,
)

#: Bookkeeping lives under this directory of the root and is never listed as an object.
_INTERNAL = ".iceshelf"
#: Lock files are shared by keys hashing alike: bounded in number, contention negligible.
_STRIPES = 1024
_STAMP_BYTES = 32


def _etag(st: os.stat_result) -> str:
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


def _meta(key: str, st: os.stat_result) -> ObjectMeta:
    return ObjectMeta(key, st.st_size, _etag(st), st.st_mtime_ns // 1_000_000)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStore(ObjectStore):
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root_uri = self.root.as_uri()
        self._tmp = self.root / _INTERNAL / "tmp"
        self._locks = self.root / _INTERNAL / "locks"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._locks.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or parts[0] == _INTERNAL:
            raise ValueError(f"invalid object key: {key!r}")
        return self.root.joinpath(*parts)

    @contextmanager
    def _key_lock(self, key: str) -> Iterator[int]:
        stripe = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % _STRIPES
        fd = os.open(self._locks / f"{stripe:04d}", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    @staticmethod
    def _stamp(lock_fd: int, tmp: Path) -> str:
        """Give ``tmp`` an mtime past every earlier write in this stripe; return its etag."""
        last = int(os.pread(lock_fd, _STAMP_BYTES, 0).strip() or b"0")
        st = tmp.stat()
        mtime = max(st.st_mtime_ns, last + 1)
        os.utime(tmp, ns=(st.st_atime_ns, mtime))
        os.pwrite(lock_fd, str(mtime).encode().ljust(_STAMP_BYTES), 0)
        return _etag(tmp.stat())

    def _write_temp(self, data: bytes) -> Path:
        tmp = self._tmp / uuid.uuid4().hex
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def get(self, key: str) -> GetResult:
        try:
            with open(self._path(key), "rb") as f:
                st = os.fstat(f.fileno())
                return GetResult(f.read(), _etag(st))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(key) from None

    def head(self, key: str) -> ObjectMeta:
        try:
            st = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        if not os.path.isfile(self._path(key)):
            raise ObjectNotFound(key)
        return _meta(key, st)

    def put(self, key: str, data: bytes, mode: PutMode = Overwrite()) -> str:
        path = self._path(key)
        tmp = self._write_temp(data)
        try:
            with self._key_lock(key) as lock_fd:
                if isinstance(mode, Update):
                    try:
                        current = _etag(path.stat())
                    except (FileNotFoundError, NotADirectoryError):
                        raise PreconditionFailed(key) from None
                    if current != mode.etag:
                        raise PreconditionFailed(key)
                # link and rename keep inode and mtime: this is the installed version's etag
                etag = self._stamp(lock_fd, tmp)
                self._install(tmp, path, os.link if isinstance(mode, Create) else os.replace)
            return etag
        finally:
            tmp.unlink(missing_ok=True)

    def _install(self, tmp: Path, path: Path, op) -> None:
        """Move the temp file into place with ``op``, creating parents (a delete may prune them meanwhile)."""
        for _ in range(10):
            self._make_parents(path.parent)
            try:
                op(tmp, path)
            except FileExistsError:
                raise ObjectAlreadyExists(str(path.relative_to(self.root))) from None
            except FileNotFoundError:
                continue
            _fsync_dir(path.parent)
            return
        raise OSError(errno.ENOENT, f"could not install {path}")

    def _make_parents(self, directory: Path) -> None:
        """Create missing directories, fsyncing each into its parent so a crash cannot lose them."""
        missing = []
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for created in reversed(missing):
            try:
                created.mkdir()
            except FileExistsError:
                continue
            _fsync_dir(created.parent)

    def ensure_prefix(self, prefix: str) -> None:
        self._make_parents(self._path(prefix.rstrip("/") + "/_"))

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._key_lock(key):
            try:
                path.unlink()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return
        self._prune(path.parent)

    def _prune(self, directory: Path) -> None:
        """Remove now-empty parent directories so purged tables leave nothing behind."""
        while directory != self.root:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def list_page(self, prefix: str, start_after: str | None = None, limit: int = 1000) -> list[ObjectMeta]:
        out: list[ObjectMeta] = []
        for meta in self._listing(prefix, start_after):
            out.append(meta)
            if len(out) == limit:
                break
        return out

    def list(self, prefix: str = "") -> Iterator[ObjectMeta]:
        """One walk for the whole listing (paging through ``list_page`` would re-walk per page)."""
        return self._listing(prefix, None)

    def _listing(self, prefix: str, start_after: str | None) -> Iterator[ObjectMeta]:
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = self.root.joinpath(*base.split("/")) if base else self.root
        for key in sorted(self._walk(top)):
            if not key.startswith(prefix) or (start_after is not None and key <= start_after):
                continue
            try:
                yield _meta(key, self._path(key).stat())
            except FileNotFoundError:
                continue

    def _walk(self, top: Path) -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(top):
            rel = os.path.relpath(dirpath, self.root)
            if rel == ".":
                dirnames[:] = [d for d in dirnames if d != _INTERNAL]
                rel = ""
            for name in filenames:
                yield f"{rel}/{name}" if rel else name
