"""Manifests and manifest lists of every format version, read and written on pyiceberg's models.

pyiceberg 0.12 reads every manifest through its v2 schema, which silently drops the v3 fields a
rewrite must keep (``first_row_id``, ``referenced_data_file`` and the content offsets of deletion
vectors), and it writes neither v3 manifests nor delete manifests. This module fills exactly
those gaps -- reading through the v3 schema (a superset: older files simply lack the new
fields), a manifest writer for any content and version, and a v3 manifest-list writer that
assigns row ids -- and otherwise uses pyiceberg's own Avro readers and writers.

Records read here are laid out as the v3 structs. The v2 structs are a prefix of them, so
pyiceberg's v1/v2 writers write these records unchanged.
"""

from __future__ import annotations

import uuid

from pyiceberg.avro.codecs import AvroCompressionCodec
from pyiceberg.avro.file import AvroFile, AvroOutputFile
from pyiceberg.io import FileIO, OutputFile
from pyiceberg.manifest import (
    DATA_FILE_TYPE,
    MANIFEST_ENTRY_SCHEMAS,
    MANIFEST_LIST_FILE_SCHEMAS,
    DataFile,
    DataFileContent,
    FileFormat,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    ManifestListWriter,
    ManifestListWriterV2,
    ManifestWriter,
    ManifestWriterV2,
    PartitionFieldSummary,
    write_manifest,
    write_manifest_list,
)
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.typedef import TableVersion

_NEWEST: TableVersion = 3
_FILE_FIELDS = {field.name: pos for pos, field in enumerate(DATA_FILE_TYPE[_NEWEST].fields)}
_LIST_FIELDS = {field.name: pos for pos, field in enumerate(MANIFEST_LIST_FILE_SCHEMAS[_NEWEST].fields)}
_CODEC: AvroCompressionCodec = "deflate"


# -- the v3 fields pyiceberg's DataFile and ManifestFile have no properties for ---------------------


def first_row_id(data_file: DataFile) -> int | None:
    return data_file[_FILE_FIELDS["first_row_id"]]


def referenced_data_file(data_file: DataFile) -> str | None:
    return data_file[_FILE_FIELDS["referenced_data_file"]]


def content_range(data_file: DataFile) -> tuple[int, int] | None:
    """``(offset, length)`` of a deletion vector inside its Puffin file."""
    offset = data_file[_FILE_FIELDS["content_offset"]]
    length = data_file[_FILE_FIELDS["content_size_in_bytes"]]
    return None if offset is None or length is None else (offset, length)


def manifest_first_row_id(manifest: ManifestFile) -> int | None:
    return manifest[_LIST_FIELDS["first_row_id"]] if len(manifest) > _LIST_FIELDS["first_row_id"] else None


def new_data_file(**fields: object) -> DataFile:
    """A ``DataFile`` laid out as the v3 struct, so every writer can take it."""
    return DataFile.from_args(_table_format_version=_NEWEST, **fields)


def is_deletion_vector(data_file: DataFile) -> bool:
    return data_file.content == DataFileContent.POSITION_DELETES and data_file.file_format == FileFormat.PUFFIN


# -- reading --------------------------------------------------------------------------------------


def read_manifest_list(io: FileIO, location: str) -> list[ManifestFile]:
    with AvroFile[ManifestFile](
        io.new_input(location),
        MANIFEST_LIST_FILE_SCHEMAS[_NEWEST],
        read_types={-1: ManifestFile, 508: PartitionFieldSummary},
        read_enums={517: ManifestContent},
    ) as reader:
        return [_as_v3_manifest(manifest) for manifest in reader]


def read_manifest(io: FileIO, manifest: ManifestFile) -> list[ManifestEntry]:
    """Every entry, ``DELETED`` ones included, with what entries inherit from their manifest filled in.

    Inherited: snapshot id, sequence numbers (for ``ADDED`` entries), the spec id, and -- in v3 --
    the ``first_row_id`` of data files that have none: the manifest's first row id plus the rows
    of the files before them, as the spec's row-lineage inheritance says.
    """
    with AvroFile[ManifestEntry](
        io.new_input(manifest.manifest_path),
        MANIFEST_ENTRY_SCHEMAS[_NEWEST],
        read_types={-1: ManifestEntry, 2: DataFile},
        read_enums={0: ManifestEntryStatus, 101: FileFormat, 134: DataFileContent},
    ) as reader:
        entries = list(reader)
    next_row_id = manifest_first_row_id(manifest)
    for entry in entries:
        if entry.snapshot_id is None:
            entry.snapshot_id = manifest.added_snapshot_id
        if entry.sequence_number is None and (manifest.sequence_number == 0 or entry.status == ManifestEntryStatus.ADDED):
            entry.sequence_number = manifest.sequence_number
        if entry.file_sequence_number is None and (
            manifest.sequence_number == 0 or entry.status == ManifestEntryStatus.ADDED
        ):
            entry.file_sequence_number = manifest.sequence_number
        entry.data_file.spec_id = manifest.partition_spec_id
        data_file = entry.data_file
        if next_row_id is not None and data_file.content == DataFileContent.DATA and first_row_id(data_file) is None:
            data_file[_FILE_FIELDS["first_row_id"]] = next_row_id
            next_row_id += data_file.record_count
    return entries


def _as_v3_manifest(manifest: ManifestFile, always_copy: bool = False) -> ManifestFile:
    if len(manifest) > _LIST_FIELDS["first_row_id"] and not always_copy:
        return manifest
    values = [manifest[pos] for pos in range(len(manifest))]
    return ManifestFile(*values, *([None] * (len(_LIST_FIELDS) - len(values))))


# -- writing --------------------------------------------------------------------------------------


class ContentManifestWriter(ManifestWriterV2):
    """A v2 or v3 manifest of data or delete files (pyiceberg writes v2 data manifests only)."""

    def __init__(
        self,
        version: TableVersion,
        content: ManifestContent,
        spec: PartitionSpec,
        schema: Schema,
        output_file: OutputFile,
        snapshot_id: int,
    ) -> None:
        super().__init__(spec, schema, output_file, snapshot_id, _CODEC)
        self._version = version
        self._content = content

    def content(self) -> ManifestContent:
        return self._content

    @property
    def version(self) -> TableVersion:
        return self._version

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes" if self._content == ManifestContent.DELETES else "data"}

    def new_writer(self) -> AvroOutputFile[ManifestEntry]:
        """Records are written through the file's own schema, so the v3 fields are kept."""
        schema = self._with_partition(self._version)
        return AvroOutputFile[ManifestEntry](
            output_file=self._output_file,
            file_schema=schema,
            record_schema=schema,
            schema_name="manifest_entry",
            metadata=self._meta,
        )

    def to_manifest_file(self) -> ManifestFile:
        return _as_v3_manifest(super().to_manifest_file())


def manifest_writer(
    version: TableVersion,
    content: ManifestContent,
    spec: PartitionSpec,
    schema: Schema,
    output_file: OutputFile,
    snapshot_id: int,
) -> ManifestWriter:
    if version == 1:
        if content != ManifestContent.DATA:
            raise ValueError("v1 tables have no delete files")
        return write_manifest(1, spec, schema, output_file, snapshot_id, _CODEC)
    return ContentManifestWriter(version, content, spec, schema, output_file, snapshot_id)


class ManifestListWriterV3(ManifestListWriterV2):
    """Row lineage: a data manifest without a ``first_row_id`` gets the next free one.

    As in Java, the ids handed out cover the manifest's existing and added rows, and the
    snapshot's ``added-rows`` is how far ``next_row_id`` moved.
    """

    def __init__(
        self, output_file: OutputFile, snapshot_id: int, parent_snapshot_id: int | None, sequence_number: int, first_row_id: int
    ) -> None:
        super().__init__(output_file, snapshot_id, parent_snapshot_id, sequence_number, _CODEC)
        self._format_version = 3
        self._meta = {**self._meta, "format-version": "3", "first-row-id": str(first_row_id)}
        self.next_row_id = first_row_id

    def __enter__(self) -> ManifestListWriter:
        self._writer = AvroOutputFile[ManifestFile](
            output_file=self._output_file,
            record_schema=MANIFEST_LIST_FILE_SCHEMAS[3],
            file_schema=MANIFEST_LIST_FILE_SCHEMAS[3],
            schema_name="manifest_file",
            metadata=self._meta,
        )
        self._writer.__enter__()
        return self

    def prepare_manifest(self, manifest_file: ManifestFile) -> ManifestFile:
        prepared = _as_v3_manifest(super().prepare_manifest(manifest_file))
        if prepared.content == ManifestContent.DATA and manifest_first_row_id(prepared) is None:
            prepared[_LIST_FIELDS["first_row_id"]] = self.next_row_id
            self.next_row_id += (prepared.existing_rows_count or 0) + (prepared.added_rows_count or 0)
        return prepared


def write_manifest_list_file(
    version: TableVersion,
    output_file: OutputFile,
    snapshot_id: int,
    parent_snapshot_id: int | None,
    sequence_number: int,
    first_row_id: int | None,
    manifests: list[ManifestFile],
) -> int:
    """Write the list; return how many row ids it assigned (v3 ``added-rows``; 0 before v3).

    pyiceberg's writers assign sequence numbers by mutating the record they are given (its shallow
    ``copy`` shares the field list), so each manifest goes in as a fresh copy: a manifest reused by
    a retried commit must not carry the sequence number of the failed attempt.
    """
    fresh = [_as_v3_manifest(manifest, always_copy=True) for manifest in manifests]
    if version >= 3:
        start = first_row_id or 0
        with ManifestListWriterV3(output_file, snapshot_id, parent_snapshot_id, sequence_number, start) as writer:
            writer.add_manifests(fresh)
        return writer.next_row_id - start
    with write_manifest_list(version, output_file, snapshot_id, parent_snapshot_id, sequence_number, _CODEC) as writer:
        writer.add_manifests(fresh)
    return 0


def new_manifest_location(table_location: str, properties: dict[str, str], commit_id: uuid.UUID, name: str) -> str:
    """Where this commit's manifest or manifest list goes: ``write.metadata.path``, else ``<table>/metadata``."""
    directory = properties.get("write.metadata.path") or f"{table_location.rstrip('/')}/metadata"
    return f"{directory.rstrip('/')}/{commit_id}-{name}.avro"
