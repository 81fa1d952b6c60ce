"""A pyiceberg ``FileIO`` over a warehouse's ``ObjectStore``.

Server-side jobs (maintenance, compaction) read and write manifests with pyiceberg's own
readers and writers; through this adapter they use the very store the catalog commits to --
same credentials, same backends (local, S3, memory) -- instead of a second, separately
configured pyiceberg FileIO. New files are written with ``Create``, so a name collision is an
error rather than a silent overwrite of someone else's file.
"""

from __future__ import annotations

import io

from pyiceberg.io import FileIO, InputFile, InputStream, OutputFile, OutputStream

from iceshelf.tables.objectstore import CREATE, ObjectNotFound, ObjectStore


class StoreInputFile(InputFile):
    def __init__(self, store: ObjectStore, location: str, key: str) -> None:
        super().__init__(location)
        self._store = store
        self._key = key

    def __len__(self) -> int:
        return self._store.head(self._key).size

    def exists(self) -> bool:
        return self._store.exists(self._key)

    def open(self, seekable: bool = True) -> InputStream:
        """The whole object in memory: manifests and manifest lists are small, and one GET beats many ranged ones."""
        try:
            return io.BytesIO(self._store.get(self._key).data)
        except ObjectNotFound:
            raise FileNotFoundError(self.location) from None


class _Upload(io.BytesIO):
    """Buffers the written bytes and puts them, with ``Create``, in one request when closed."""

    def __init__(self, target: "StoreOutputFile") -> None:
        super().__init__()
        self._target = target

    def close(self) -> None:
        if not self.closed:
            data = self.getvalue()
            self._target.store.put(self._target.key, data, CREATE)
            self._target.written = len(data)
        super().close()


class StoreOutputFile(OutputFile):
    def __init__(self, store: ObjectStore, location: str, key: str) -> None:
        super().__init__(location)
        self.store = store
        self.key = key
        self.written: int | None = None

    def __len__(self) -> int:
        return self.written if self.written is not None else self.store.head(self.key).size

    def exists(self) -> bool:
        return self.store.exists(self.key)

    def to_input_file(self) -> InputFile:
        return StoreInputFile(self.store, self.location, self.key)

    def create(self, overwrite: bool = False) -> OutputStream:
        """Always ``Create``: pyiceberg's Avro writer asks for ``overwrite=True`` on every file, but the
        names it is given are fresh, so an existing object means a collision to report, not to clobber."""
        return _Upload(self)


class StoreFileIO(FileIO):
    def __init__(self, store: ObjectStore) -> None:
        super().__init__({})
        self.store = store

    def key(self, location: str) -> str:
        key = self.store.key_of(location)
        if key is None:
            raise ValueError(f"{location} lies outside the warehouse {self.store.root_uri}")
        return key

    def new_input(self, location: str) -> InputFile:
        return StoreInputFile(self.store, location, self.key(location))

    def new_output(self, location: str) -> OutputFile:
        return StoreOutputFile(self.store, location, self.key(location))

    def delete(self, location: str | InputFile | OutputFile) -> None:
        self.store.delete(self.key(location if isinstance(location, str) else location.location))
