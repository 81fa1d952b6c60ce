"""The SQL endpoint: DuckDB over the catalog's Iceberg tables, behind an Athena-style JSON API and
Trino's client protocol.

A statement goes ``check`` (sqlglot: one statement, allowed kinds only, no file access) ->
``rewrite`` (names resolved through the table store, time travel, metadata tables, dialect
transpiled to DuckDB) -> ``engine`` (a pool of sandboxed DuckDB databases with limits) ->
``queries`` (lifecycle, cancel, history kept in the warehouse). ``athena`` and ``trino`` are
two thin protocols over the same queries.
"""
