"""The manifest lists the server reads and writes when it rebases appends: kept, and cheap to rewrite.

A manifest list never changes once written, so parsed lists are kept by location: on a busy table
the head a rebase lands on is the list the previous rebase on this server just wrote, and costs no
GET and no parse. And every rebased list repeats its head's entries: each kept list keeps the Avro
encoding of its entries, so a new list encodes only the append's own manifests and joins the rest.
pyiceberg's pure-Python writer spent about 0.1 ms per entry plus about 2 ms setting up each file
(the entry writer and the schema JSON, here built once per format version); on a table of a few
hundred snapshots that was most of a rebase's CPU.

The file is what pyiceberg's ``write_manifest_list`` writes: the same header metadata (the spec's
``snapshot-id``, ``parent-snapshot-id``, ``sequence-number``, ``format-version``), the same Avro
schema, one deflate block.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from functools import cache

from pyiceberg.avro.codecs.deflate import DeflateCodec
from pyiceberg.avro.encoder import BinaryEncoder
from pyiceberg.avro.file import MAGIC, META_SCHEMA, SYNC_SIZE, AvroFileHeader
from pyiceberg.avro.resolver import construct_writer, resolve_writer
from pyiceberg.avro.writer import Writer
from pyiceberg.io import FileIO
from pyiceberg.manifest import DEFAULT_READ_VERSION, MANIFEST_LIST_FILE_SCHEMAS, ManifestFile, read_manifest_list
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.utils.schema_conversion import AvroSchemaConversion

from iceshelf.tables.caches import ByteLRU
from iceshelf.tables.settings import CacheSettings

_HEADER = construct_writer(META_SCHEMA)


@dataclass(frozen=True)
class _Format:
    """How entries of a list of one table format version are written (built once: it is costly)."""

    entry: Writer
    schema_json: str


@cache
def _format(version: int) -> _Format:
    schema = MANIFEST_LIST_FILE_SCHEMAS[version]
    entry = resolve_writer(record_schema=MANIFEST_LIST_FILE_SCHEMAS[DEFAULT_READ_VERSION], file_schema=schema)
    return _Format(entry, json.dumps(AvroSchemaConversion().iceberg_to_avro(schema, schema_name="manifest_file")))


def _encode(manifest: ManifestFile, version: int) -> bytes:
    buffer = io.BytesIO()
    _format(version).entry.write(BinaryEncoder(buffer), manifest)
    return buffer.getvalue()


#: Bytes charged per list, and per entry of a list whose encoding is not known yet (a v2 entry is ~150-300).
_LIST_OVERHEAD = 512
_ENTRY_ESTIMATE = 256


@dataclass(frozen=True, eq=False)
class ManifestList:
    """A manifest list's entries, shared: nobody may modify them."""

    location: str
    manifests: tuple[ManifestFile, ...]
    #: The entries' Avro encodings by the format version of the list they go into, made on first use.
    _encoded: dict[int, tuple[bytes, ...]] = field(default_factory=dict, repr=False)

    def encoded(self, version: int) -> tuple[bytes, ...]:
        done = self._encoded.get(version)
        if done is None:  # two threads may both encode: same bytes, either wins
            done = self._encoded[version] = tuple(_encode(m, version) for m in self.manifests)
        return done

    @property
    def nbytes(self) -> int:
        """What the cache charges: the entries' encoding (a list read and not yet encoded: an estimate of it)."""
        encoded = next(iter(self._encoded.values()), None)
        entries = sum(map(len, encoded)) if encoded is not None else _ENTRY_ESTIMATE * len(self.manifests)
        return _LIST_OVERHEAD + len(self.location) + 2 * entries  # the parsed entries cost about as much again


def _file_bytes(snapshot: Snapshot, version: int, entries: list[bytes]) -> bytes:
    """An Avro object container file: the header, then one deflate block of ``entries``."""
    parent = snapshot.parent_snapshot_id
    meta = {"snapshot-id": str(snapshot.snapshot_id), "parent-snapshot-id": "null" if parent is None else str(parent)}
    if version > 1:
        meta["sequence-number"] = str(snapshot.sequence_number)
    meta.update({"format-version": str(version), "avro.codec": "deflate", "avro.schema": _format(version).schema_json})
    sync = os.urandom(SYNC_SIZE)
    buffer = io.BytesIO()
    encoder = BinaryEncoder(buffer)
    _HEADER.write(encoder, AvroFileHeader(MAGIC, meta, sync))
    content, length = DeflateCodec.compress(b"".join(entries))
    encoder.write_int(len(entries))
    encoder.write_int(length)
    encoder.write(content)
    encoder.write(sync)
    return buffer.getvalue()


def _removals_only(manifest: ManifestFile) -> bool:
    """No added or existing entries (v1 lists may leave the counts out: then it is kept)."""
    return manifest.added_files_count == 0 and manifest.existing_files_count == 0


class ManifestLists:
    """Manifest lists by location, the most recently used kept in memory up to ``max_bytes`` (``ManifestList.nbytes``)."""

    def __init__(self, io: FileIO, max_bytes: int = CacheSettings().manifest_list_bytes) -> None:
        self.io = io
        self._lists: ByteLRU[str, ManifestList] = ByteLRU(max_bytes, lambda kept: kept.nbytes)

    def read(self, location: str) -> ManifestList:
        if (kept := self._lists.get(location)) is not None:
            return kept
        return self._keep(ManifestList(location, tuple(read_manifest_list(self.io.new_input(location)))))

    def write(self, location: str, snapshot: Snapshot, version: int, own: list[ManifestFile], base: ManifestList | None) -> ManifestList:
        """Write ``snapshot``'s list: ``own`` (their sequence numbers assigned), then ``base``'s live manifests.

        A manifest of ``base`` that lists only removed files (what a ``replace`` or ``delete`` snapshot
        leaves) is not carried on, as Java's and pyiceberg's appends don't: its entries concern only
        the snapshot that removed them, and every reader would otherwise open it on every scan.
        """
        inherited: list[tuple[ManifestFile, bytes]] = []
        if base is not None:
            inherited = [(m, e) for m, e in zip(base.manifests, base.encoded(version)) if not _removals_only(m)]
        entries = [_encode(m, version) for m in own] + [e for _, e in inherited]
        data = _file_bytes(snapshot, version, entries)
        with self.io.new_output(location).create() as stream:
            stream.write(data)
        return self._keep(ManifestList(location, (*own, *(m for m, _ in inherited)), {version: tuple(entries)}))

    def _keep(self, kept: ManifestList) -> ManifestList:
        return self._lists.put(kept.location, kept)
