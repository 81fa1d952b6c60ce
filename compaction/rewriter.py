"""Rewrite one group of data files into few large ones: one streaming DuckDB ``COPY``.

The statement reads the group's files by field id, drops every deleted row (position deletes
and deletion vectors by anti-join on ``(filename, file_row_number)``, equality deletes by
sequence number and ``IS NOT DISTINCT FROM``), orders rows by the table's sort order if asked,
and writes Parquet with Iceberg field ids, split at the target file size. DuckDB streams it:
memory stays under ``memory_limit`` (sorts spill to disk) and row groups are encoded on every
core. With no deletes and no sort, the statement is exactly ``COPY (SELECT * FROM
read_parquet([...])) TO ...``.

v3 tables keep row lineage: each row's ``_row_id`` (its file's ``first_row_id`` plus its
position, unless already materialized) and ``_last_updated_sequence_number`` are written
explicitly, so ids survive the move to a new file.

Each output file's manifest metrics come from its Parquet footer, computed by pyiceberg as for
any file it writes (honouring ``write.metadata.metrics.*``). Two checks guard against silent
data loss before anything is committed: never more rows out than in (exactly as many when no
delete applied), and no column with more nulls than its inputs had (a file read without field
ids would come back as nulls).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import compute_statistics_plan, data_file_statistics_from_parquet_metadata, parquet_path_to_id_mapping
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat, ManifestEntry
from pyiceberg.schema import Schema
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.sorting import NullOrder, SortDirection, SortOrder
from pyiceberg.transforms import DayTransform, HourTransform, IdentityTransform, MonthTransform, TruncateTransform, YearTransform
from pyiceberg.typedef import Record

from compaction.deletes import LoadedDeletes, load_deletes
from compaction.engine import Engine, quote_literal
from compaction.manifest_io import first_row_id, new_data_file
from compaction.sqltypes import LAST_UPDATED_SEQUENCE_NUMBER, ROW_ID, alias, field_ids_sql, identifier, read_schema_sql
from compaction.table_files import data_sequence_number

#: Transforms that preserve order: sorting by the source column sorts by the transform too.
_MONOTONE = (IdentityTransform, YearTransform, MonthTransform, DayTransform, HourTransform, TruncateTransform)
_CODECS = {"zstd": "zstd", "snappy": "snappy", "gzip": "gzip", "lz4": "lz4_raw", "uncompressed": "uncompressed", "brotli": "brotli"}


class RewriteCheckFailed(RuntimeError):
    """The rewritten files do not hold what the inputs did; nothing was committed."""


@dataclass(frozen=True)
class RewriteJob:
    metadata: TableMetadata
    spec_id: int
    partition: Record
    #: Data file location -> its live entry in the starting snapshot.
    inputs: dict[str, ManifestEntry]
    #: Delete files applying to at least one input.
    deletes: list[ManifestEntry]
    sort: bool
    target_file_size: int
    #: The job's own output directory: nothing else writes there, so a failed job removes it whole.
    output: str


@dataclass(frozen=True)
class Rewritten:
    outputs: tuple[DataFile, ...]
    records_in: int
    records_out: int
    #: ``content_key`` of each position delete / DV read -> the data files it names.
    references: dict[str, frozenset[str]]

    @property
    def bytes_out(self) -> int:
        return sum(f.file_size_in_bytes for f in self.outputs)


def sortable(metadata: TableMetadata) -> bool:
    """A sort order DuckDB can reproduce: top-level source columns, order-preserving transforms."""
    order = metadata.sort_order()
    if order.is_unsorted:
        return False
    top_level = {f.field_id for f in metadata.schema().fields}
    return all(f.source_id in top_level and isinstance(f.transform, _MONOTONE) for f in order.fields)


def rewrite(engine: Engine, io: FileIO, job: RewriteJob, tag: str) -> Rewritten:
    metadata = job.metadata
    schema = metadata.schema()
    lineage = (ROW_ID, LAST_UPDATED_SEQUENCE_NUMBER) if metadata.format_version >= 3 else ()
    deletes = load_deletes(engine, io, schema, job.inputs, job.deletes, tag)
    try:
        engine.use_whole_file_reads([e.data_file.file_size_in_bytes for e in job.inputs.values()])
        select = _select(engine, schema, job, deletes, lineage, tag)
        rows = engine.connection.execute(
            f"COPY ({select}) TO {quote_literal(engine.prepare_directory(job.output))} ("
            f"FORMAT parquet, FIELD_IDS {field_ids_sql((*schema.fields, *lineage))}, "
            f"FILE_SIZE_BYTES {int(job.target_file_size)}, FILENAME_PATTERN '{{uuid}}', RETURN_STATS true"
            f"{_compression(metadata.properties)})"
        ).fetchall()
    finally:
        _drop(engine, deletes, tag)
    write_schema = Schema(*schema.fields, *lineage, schema_id=schema.schema_id)
    outputs = [_data_file(engine, job, write_schema, path, count, size) for path, count, size, *_ in rows if count > 0]
    for path, count, *_ in rows:
        if count == 0:  # DuckDB writes an empty file when every row was deleted
            engine.delete(_output_location(job, path))
    rewritten = Rewritten(
        tuple(outputs),
        sum(e.data_file.record_count for e in job.inputs.values()),
        sum(f.record_count for f in outputs),
        deletes.references,
    )
    check(job, rewritten)
    return rewritten


def _select(engine: Engine, schema: Schema, job: RewriteJob, deletes: LoadedDeletes, lineage: tuple, tag: str) -> str:
    files = ", ".join(quote_literal(engine.path(location)) for location in job.inputs)
    need_rows = deletes.positions is not None or bool(lineage)
    source = (
        f"read_parquet([{files}], filename = true{', file_row_number = true' if need_rows else ''}, "
        f"schema = {read_schema_sql(schema, extra=lineage)}) d"
    )
    columns = [f"d.{alias(f)} AS {identifier(f.name)}" for f in schema.fields]
    conditions = []
    if deletes.positions is not None:
        conditions.append(
            f"NOT EXISTS (SELECT 1 FROM {deletes.positions} p WHERE p.path = d.filename AND p.pos = d.file_row_number)"
        )
    if lineage or deletes.equality:  # both need each row's file: its sequence number, first row id
        _register_inputs(engine, job, tag)
        source += f" JOIN {tag}_inputs i ON d.filename = i.path"
    if lineage:
        columns += [
            f"COALESCE(d.{alias(ROW_ID)}, i.first_row_id + d.file_row_number) AS {identifier(ROW_ID.name)}",
            f"COALESCE(d.{alias(LAST_UPDATED_SEQUENCE_NUMBER)}, i.seq) AS {identifier(LAST_UPDATED_SEQUENCE_NUMBER.name)}",
        ]
    for eq in deletes.equality:
        matches = " AND ".join(f"e.c{fid} IS NOT DISTINCT FROM d.c{fid}" for fid in eq.field_ids)
        conditions.append(f"NOT EXISTS (SELECT 1 FROM {eq.table} e WHERE e.seq > i.seq AND {matches})")
    sql = f"SELECT {', '.join(columns)} FROM {source}"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    if job.sort:
        sql += " ORDER BY " + _order_by(job.metadata.sort_order())
    return sql


def _register_inputs(engine: Engine, job: RewriteJob, tag: str) -> None:
    values = ", ".join(
        f"({quote_literal(engine.path(location))}, {data_sequence_number(e)}, {_sql_int(first_row_id(e.data_file))})"
        for location, e in job.inputs.items()
    )
    engine.connection.execute(
        f"CREATE OR REPLACE TEMP TABLE {tag}_inputs (path VARCHAR, seq BIGINT, first_row_id BIGINT); "
        f"INSERT INTO {tag}_inputs VALUES {values}"
    )


def _sql_int(value: int | None) -> str:
    return "NULL" if value is None else str(int(value))


def _order_by(order: SortOrder) -> str:
    terms = []
    for field in order.fields:
        direction = "ASC" if field.direction == SortDirection.ASC else "DESC"
        nulls = "NULLS FIRST" if field.null_order == NullOrder.NULLS_FIRST else "NULLS LAST"
        terms.append(f"d.c{field.source_id} {direction} {nulls}")
    return ", ".join(terms)


def _compression(properties: dict[str, str]) -> str:
    codec = properties.get("write.parquet.compression-codec", "zstd").lower()
    sql = f", COMPRESSION {_CODECS.get(codec, 'zstd')}"
    level = properties.get("write.parquet.compression-level")
    if level is not None and codec == "zstd":
        sql += f", COMPRESSION_LEVEL {int(level)}"
    return sql


def _output_location(job: RewriteJob, path: str) -> str:
    """DuckDB names files directly inside the job's directory: the location is that directory's plus the name."""
    return f"{job.output.rstrip('/')}/{posixpath.basename(path)}"


def _data_file(engine: Engine, job: RewriteJob, schema: Schema, path: str, count: int, size: int) -> DataFile:
    location = _output_location(job, path)
    statistics = data_file_statistics_from_parquet_metadata(
        parquet_metadata=engine.footer(location),
        stats_columns=compute_statistics_plan(schema, job.metadata.properties),
        parquet_column_mapping=parquet_path_to_id_mapping(schema),
    )
    data_file = new_data_file(
        content=DataFileContent.DATA,
        file_path=location,
        file_format=FileFormat.PARQUET,
        partition=job.partition,
        file_size_in_bytes=size,
        sort_order_id=job.metadata.default_sort_order_id if job.sort else None,
        equality_ids=None,
        key_metadata=None,
        **statistics.to_serialized_dict(),
    )
    data_file.spec_id = job.spec_id
    if data_file.record_count != count:
        raise RewriteCheckFailed(f"{location}: DuckDB wrote {count} rows, its footer says {data_file.record_count}")
    return data_file


def check(job: RewriteJob, rewritten: Rewritten) -> None:
    """Refuse a rewrite that lost or invented data, before it can be committed."""
    if rewritten.records_out > rewritten.records_in or (not job.deletes and rewritten.records_out != rewritten.records_in):
        raise RewriteCheckFailed(f"Rewrite read {rewritten.records_in} rows and wrote {rewritten.records_out}")
    inputs = [e.data_file for e in job.inputs.values()]
    for field in job.metadata.schema().fields:
        fid = field.field_id
        if not field.field_type.is_primitive or any(fid not in (f.null_value_counts or {}) for f in inputs):
            continue  # no complete input metrics to compare with (e.g. a column added later)
        nulls_in = sum(f.null_value_counts[fid] for f in inputs)
        nulls_out = sum((f.null_value_counts or {}).get(fid, 0) for f in rewritten.outputs)
        if nulls_out > nulls_in:
            raise RewriteCheckFailed(
                f"Column {field.name!r} has {nulls_out} nulls after the rewrite, {nulls_in} before: "
                "an input file was not read by field id"
            )


def _drop(engine: Engine, deletes: LoadedDeletes, tag: str) -> None:
    tables = [deletes.positions, *(eq.table for eq in deletes.equality), f"{tag}_inputs"]
    for table in tables:
        if table is not None:
            engine.connection.execute(f"DROP TABLE IF EXISTS {table}")
