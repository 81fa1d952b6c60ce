"""Delete files, loaded into DuckDB so a rewrite writes exactly the live rows.

* Position delete files (Parquet ``file_path``, ``pos``) and deletion vectors (Puffin blobs,
  decoded by pyiceberg) become one table ``(path, pos)`` keyed by the DuckDB path of the data
  file, each position kept only where its delete applies (the sequence-number rule of
  ``table_files``). The rewrite anti-joins on ``(filename, file_row_number)``.
* Equality delete files become one table per set of equality field ids, each row carrying its
  file's sequence number; a data row goes when an equality delete with a higher sequence number
  matches it on every equality column (``IS NOT DISTINCT FROM``: null matches null, as the spec says).

It also records which data files each position delete file names, so the commit can tell which
delete files no longer apply to anything once the rewrite lands.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pyarrow as pa
from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFileContent, ManifestEntry
from pyiceberg.schema import Schema
from pyiceberg.table.deletion_vector import deletion_vectors_from_puffin_file
from pyiceberg.table.puffin import PuffinFile

from iceshelf.compaction.manifests.codec import is_deletion_vector, referenced_data_file
from iceshelf.compaction.rewrite.datapath import Engine, quote_literal
from iceshelf.compaction.rewrite.live_files import content_key, data_sequence_number, referenced_path
from iceshelf.compaction.rewrite.sqltypes import read_schema_sql

_POSITIONS = pa.schema([("delete_key", pa.string()), ("delete_seq", pa.int64()), ("file_path", pa.string()), ("pos", pa.int64())])


@dataclass(frozen=True)
class EqualityDeletes:
    """One DuckDB table ``(seq, c<id>...)`` of the equality deletes sharing these field ids."""

    table: str
    field_ids: tuple[int, ...]


@dataclass
class LoadedDeletes:
    #: DuckDB table ``(path, pos)`` of deleted positions, or ``None`` when no position delete applies.
    positions: str | None = None
    equality: list[EqualityDeletes] = field(default_factory=list)
    #: ``content_key`` of each position delete file or DV -> the data file locations it names.
    references: dict[str, frozenset[str]] = field(default_factory=dict)


def load_deletes(
    engine: Engine, io: FileIO, schema: Schema, inputs: dict[str, ManifestEntry], deletes: list[ManifestEntry], tag: str
) -> LoadedDeletes:
    """Load ``deletes`` (those applying to some of ``inputs``: data file location -> entry) as DuckDB tables named ``tag*``."""
    loaded = LoadedDeletes()
    positional = [d for d in deletes if d.data_file.content == DataFileContent.POSITION_DELETES]
    equality: dict[tuple[int, ...], list[ManifestEntry]] = defaultdict(list)
    for delete in deletes:
        if delete.data_file.content == DataFileContent.EQUALITY_DELETES:
            ids = tuple(sorted(delete.data_file.equality_ids or ()))
            if not ids:
                raise ValueError(f"Equality delete file {delete.data_file.file_path} has no equality field ids")
            equality[ids].append(delete)
    if positional:
        loaded.positions = _load_positions(engine, io, inputs, positional, loaded.references, tag)
    for n, (ids, entries) in enumerate(sorted(equality.items())):
        loaded.equality.append(EqualityDeletes(_load_equality(engine, schema, ids, entries, f"{tag}_eq{n}"), ids))
    return loaded


def _load_positions(
    engine: Engine,
    io: FileIO,
    inputs: dict[str, ManifestEntry],
    deletes: list[ManifestEntry],
    references: dict[str, frozenset[str]],
    tag: str,
) -> str:
    con = engine.connection
    vectors = [d for d in deletes if is_deletion_vector(d.data_file)]
    files = [d for d in deletes if not is_deletion_vector(d.data_file)]
    views = {
        f"{tag}_vectors": _vector_positions(io, vectors, inputs),
        f"{tag}_data": pa.table(
            {
                "location": list(inputs),
                "path": [engine.path(location) for location in inputs],
                "seq": pa.array([data_sequence_number(e) for e in inputs.values()], pa.int64()),
            }
        ),
        f"{tag}_files": pa.table(
            {
                "path": [engine.path(d.data_file.file_path) for d in files],
                "delete_key": [content_key(d) for d in files],
                "delete_seq": pa.array([data_sequence_number(d) for d in files], pa.int64()),
            }
        ),
    }
    for name, table in views.items():
        con.register(name, table)
    raw, positions = f"{tag}_raw", f"{tag}_positions"
    try:
        union = ""
        if files:
            paths = ", ".join(quote_literal(engine.path(d.data_file.file_path)) for d in files)
            union = (
                f" UNION ALL SELECT f.delete_key, f.delete_seq, r.file_path, r.pos"
                f" FROM read_parquet([{paths}], filename = true) r JOIN {tag}_files f ON r.filename = f.path"
            )
        con.execute(f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT * FROM {tag}_vectors{union}")
        for key, path in con.execute(f"SELECT DISTINCT delete_key, file_path FROM {raw}").fetchall():
            references[key] = references.get(key, frozenset()) | {path}
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {positions} AS SELECT DISTINCT d.path, r.pos FROM {raw} r"
            f" JOIN {tag}_data d ON r.file_path = d.location AND r.delete_seq >= d.seq"
        )
        con.execute(f"DROP TABLE {raw}")
    finally:
        for name in views:
            con.unregister(name)
    for delete in deletes:
        references.setdefault(content_key(delete), frozenset())
    return positions


def _vector_positions(io: FileIO, vectors: list[ManifestEntry], inputs: dict[str, ManifestEntry]) -> pa.Table:
    """Deletion vectors are small Puffin blobs: each file fetched whole through the store, decoded by pyiceberg."""
    columns: dict[str, list] = {name: [] for name in _POSITIONS.names}
    by_file: dict[str, dict[str, ManifestEntry]] = defaultdict(dict)
    for entry in vectors:
        by_file[entry.data_file.file_path][referenced_data_file(entry.data_file) or ""] = entry
    for location, wanted in by_file.items():
        with io.new_input(location).open() as stream:
            decoded = deletion_vectors_from_puffin_file(PuffinFile(stream.read()))
        for vector in decoded:
            entry = wanted.get(vector.referenced_data_file)
            if entry is None or vector.referenced_data_file not in inputs:
                continue
            positions = vector.to_vector().to_pylist()
            columns["delete_key"] += [content_key(entry)] * len(positions)
            columns["delete_seq"] += [data_sequence_number(entry)] * len(positions)
            columns["file_path"] += [vector.referenced_data_file] * len(positions)
            columns["pos"] += positions
    return pa.table(columns, schema=_POSITIONS)


def _load_equality(engine: Engine, schema: Schema, ids: tuple[int, ...], entries: list[ManifestEntry], table: str) -> str:
    """Read by field id, so a renamed column still matches."""
    read_schema = read_schema_sql(schema, ids)
    selects = [
        f"SELECT {data_sequence_number(entry)}::BIGINT AS seq, * FROM "
        f"read_parquet({quote_literal(engine.path(entry.data_file.file_path))}, schema = {read_schema})"
        for entry in entries
    ]
    engine.connection.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {' UNION ALL '.join(selects)}")
    return table


class DeleteTargets:
    """Exactly which data files a position delete file names: from the manifest when it says, else
    read from the file (once). Lets a commit tell a concurrent delete that hits its inputs from one
    that merely could, by its (often missing) bounds."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read: dict[str, frozenset[str]] = {}

    def __call__(self, entry: ManifestEntry) -> frozenset[str]:
        if (single := referenced_path(entry)) is not None:
            return frozenset({single})
        key = content_key(entry)
        if key not in self._read:
            path = quote_literal(self.engine.path(entry.data_file.file_path))
            rows = self.engine.connection.execute(f"SELECT DISTINCT file_path FROM read_parquet({path})").fetchall()
            self._read[key] = frozenset(row[0] for row in rows)
        return self._read[key]
