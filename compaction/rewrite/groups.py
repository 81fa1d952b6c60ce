"""Rewrite one group of data files into few large ones: one streaming DuckDB ``COPY``.

The statement reads the group's files by field id, drops every deleted row (position deletes
and deletion vectors by anti-join on ``(filename, file_row_number)``, equality deletes by
sequence number and ``IS NOT DISTINCT FROM``), orders rows as the job says (``ordering``: the
table's sort order or a Z-order), and writes Parquet with Iceberg field ids, split at the target
file size. DuckDB streams it: memory stays under ``memory_limit`` (sorts spill to disk) and row
groups are encoded on every core. With no deletes and no order, the statement is exactly
``COPY (SELECT * FROM read_parquet([...])) TO ...``.

Files written under another partition spec than the output spec (after partition evolution)
are split into the output spec's partitions on the way (``_repartition``), so every file a
compaction writes lies in exactly one partition of the spec it is recorded under.

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
import shutil
from dataclasses import dataclass

from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import compute_statistics_plan, data_file_statistics_from_parquet_metadata, parquet_path_to_id_mapping
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat, ManifestEntry
from pyiceberg.schema import Schema
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.sorting import SortOrder
from pyiceberg.typedef import Record

from iceshelf.compaction.manifests.codec import first_row_id, new_data_file
from iceshelf.compaction.rewrite.datapath import Engine, quote_literal
from iceshelf.compaction.rewrite.deletes import LoadedDeletes, load_deletes
from iceshelf.compaction.rewrite.live_files import data_sequence_number
from iceshelf.compaction.rewrite.ordering import Ordering, ordered
from iceshelf.compaction.rewrite.partitions import column, partition_record, partition_sql
from iceshelf.compaction.rewrite.sqltypes import (
    LAST_UPDATED_SEQUENCE_NUMBER,
    ROW_ID,
    alias,
    field_ids_sql,
    identifier,
    read_schema_sql,
)

_CODECS = {"zstd": "zstd", "snappy": "snappy", "gzip": "gzip", "lz4": "lz4_raw", "uncompressed": "uncompressed", "brotli": "brotli"}


class RewriteCheckFailed(RuntimeError):
    """The rewritten files do not hold what the inputs did; nothing was committed."""


@dataclass(frozen=True)
class RewriteJob:
    metadata: TableMetadata
    #: The partition spec the outputs are written under.
    spec_id: int
    #: The outputs' partition; ``None`` when the inputs were written under another spec: rows are
    #: then split into the output spec's partitions.
    partition: Record | None
    #: Data file location -> its live entry in the starting snapshot.
    inputs: dict[str, ManifestEntry]
    #: Delete files applying to at least one input.
    deletes: list[ManifestEntry]
    order: Ordering
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


def rewrite(engine: Engine, io: FileIO, job: RewriteJob, tag: str) -> Rewritten:
    metadata = job.metadata
    schema = metadata.schema()
    lineage = (ROW_ID, LAST_UPDATED_SEQUENCE_NUMBER) if metadata.format_version >= 3 else ()
    write_schema = Schema(*schema.fields, *lineage, schema_id=schema.schema_id)
    deletes = load_deletes(engine, io, schema, job.inputs, job.deletes, tag)
    try:
        engine.use_whole_file_reads([e.data_file.file_size_in_bytes for e in job.inputs.values()])
        live = _live_rows(engine, schema, job, deletes, lineage, tag)
        if job.partition is None:
            written = _repartition(engine, job, write_schema, live, tag)
        else:
            written = [(job.output, job.partition, _copy(engine, job, write_schema, live, job.output))]
    finally:
        _drop(engine, deletes, tag)
    outputs = []
    for directory, partition, rows in written:
        for path, count, size, *_ in rows:
            location = _output_location(directory, path)
            if count == 0:  # DuckDB writes an empty file when every row was deleted
                engine.delete(location)
            else:
                outputs.append(_data_file(engine, job, write_schema, location, partition, count, size))
    rewritten = Rewritten(
        tuple(outputs),
        sum(e.data_file.record_count for e in job.inputs.values()),
        sum(f.record_count for f in outputs),
        deletes.references,
    )
    check(job, rewritten)
    return rewritten


def _live_rows(engine: Engine, schema: Schema, job: RewriteJob, deletes: LoadedDeletes, lineage: tuple, tag: str) -> str:
    """The group's live rows as a relation with one ``c<field id>`` column per written field."""
    files = ", ".join(quote_literal(engine.path(location)) for location in job.inputs)
    need_rows = deletes.positions is not None or bool(lineage)
    source = (
        f"read_parquet([{files}], filename = true{', file_row_number = true' if need_rows else ''}, "
        f"schema = {read_schema_sql(schema, extra=lineage)}) d"
    )
    columns = [f"d.{alias(f)}" for f in schema.fields]
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
            f"COALESCE(d.{alias(ROW_ID)}, i.first_row_id + d.file_row_number) AS {alias(ROW_ID)}",
            f"COALESCE(d.{alias(LAST_UPDATED_SEQUENCE_NUMBER)}, i.seq) AS {alias(LAST_UPDATED_SEQUENCE_NUMBER)}",
        ]
    for eq in deletes.equality:
        matches = " AND ".join(f"e.c{fid} IS NOT DISTINCT FROM d.c{fid}" for fid in eq.field_ids)
        conditions.append(f"NOT EXISTS (SELECT 1 FROM {eq.table} e WHERE e.seq > i.seq AND {matches})")
    sql = f"SELECT {', '.join(columns)} FROM {source}"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    return f"({sql})"


def _copy(engine: Engine, job: RewriteJob, schema: Schema, source: str, directory: str) -> list[tuple]:
    """One streaming ``COPY`` of ``source``'s rows, ordered as the job says, into Parquet files of
    about the target size in ``directory``: DuckDB's ``RETURN_STATS`` rows, one per file."""
    relation, order_by = ordered(engine.connection, job.order, schema, source)
    columns = ", ".join(f"d.{alias(f)} AS {identifier(f.name)}" for f in schema.fields)
    return engine.connection.execute(
        f"COPY (SELECT {columns} FROM {relation} d{order_by}) TO {quote_literal(engine.prepare_directory(directory))} ("
        f"FORMAT parquet, FIELD_IDS {field_ids_sql(tuple(schema.fields))}, "
        f"FILE_SIZE_BYTES {int(job.target_file_size)}, FILENAME_PATTERN '{{uuid}}', RETURN_STATS true"
        f"{_compression(job.metadata.properties)}{_row_groups(job.metadata.properties)})"
    ).fetchall()


def _repartition(engine: Engine, job: RewriteJob, schema: Schema, live: str, tag: str) -> list[tuple[str, Record, list[tuple]]]:
    """Rows written under another spec, split into the output spec's partitions.

    DuckDB cannot split a partitioned ``COPY`` by file size, so it takes two passes: the live rows
    go to local scratch files per partition (keyed by a hash of the partition tuple, so directory
    names are plain digits whatever the values are), then each partition is copied -- ordered, at
    the target size -- into its own directory under the job's. Each pass streams.
    """
    spec = job.metadata.specs()[job.spec_id]
    table_schema = job.metadata.schema()
    partition_columns = [column(f) for f in spec.fields]
    scratch = engine.scratch_directory(tag)
    try:
        values = ", ".join(partition_sql(engine.connection, spec, table_schema, "d"))
        engine.connection.execute(
            f"COPY (SELECT *, hash({', '.join(partition_columns)}) AS h FROM (SELECT d.*, {values} FROM {live} d)) "
            f"TO {quote_literal(scratch)} (FORMAT parquet, PARTITION_BY (h), WRITE_PARTITION_COLUMNS true)"
        )
        staged = f"{scratch}/h=*/*.parquet"
        tuples = engine.connection.execute(
            f"SELECT DISTINCT h, {', '.join(partition_columns)} FROM read_parquet({quote_literal(staged)}, hive_partitioning = false)"
        ).fetchall()
        if len({h for h, *_ in tuples}) != len(tuples):
            raise RewriteCheckFailed("Two partitions of the output spec hash alike; their rows were not told apart")
        written = []
        for h, *partition_values in tuples:
            record = partition_record(spec, table_schema, tuple(partition_values))
            directory = f"{job.output.rstrip('/')}/{spec.partition_to_path(record, table_schema)}"
            source = f"read_parquet({quote_literal(f'{scratch}/h={h}/*.parquet')}, hive_partitioning = false)"
            written.append((directory, record, _copy(engine, job, schema, source, directory)))
        return written
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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


def _compression(properties: dict[str, str]) -> str:
    codec = properties.get("write.parquet.compression-codec", "zstd").lower()
    sql = f", COMPRESSION {_CODECS.get(codec, 'zstd')}"
    level = properties.get("write.parquet.compression-level")
    if level is not None and codec == "zstd":
        sql += f", COMPRESSION_LEVEL {int(level)}"
    return sql


def _row_groups(properties: dict[str, str]) -> str:
    """Iceberg's ``write.parquet.row-group-size-bytes`` and pyiceberg's ``write.parquet.row-group-limit``
    (rows) when the table sets them; otherwise DuckDB's row groups (122,880 rows), which keep each
    writer thread's buffer small under a tight memory limit (Iceberg's 128 MiB default would not)."""
    sql = ""
    if (limit := properties.get("write.parquet.row-group-limit")) is not None:
        sql += f", ROW_GROUP_SIZE {int(limit)}"
    if (size := properties.get("write.parquet.row-group-size-bytes")) is not None:
        sql += f", ROW_GROUP_SIZE_BYTES {int(size)}"
    return sql


def _output_location(directory: str, path: str) -> str:
    """DuckDB names files directly inside the directory it was given: the location is that directory's plus the name."""
    return f"{directory.rstrip('/')}/{posixpath.basename(path)}"


def _data_file(
    engine: Engine, job: RewriteJob, schema: Schema, location: str, partition: Record, count: int, size: int
) -> DataFile:
    statistics = data_file_statistics_from_parquet_metadata(
        parquet_metadata=engine.footer(location),
        stats_columns=compute_statistics_plan(schema, job.metadata.properties),
        parquet_column_mapping=parquet_path_to_id_mapping(schema),
    )
    data_file = new_data_file(
        content=DataFileContent.DATA,
        file_path=location,
        file_format=FileFormat.PARQUET,
        partition=partition,
        file_size_in_bytes=size,
        sort_order_id=job.order.order_id if isinstance(job.order, SortOrder) else None,
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
