"""Rewriting data files: the pure planner, the DuckDB data path, deletes, and the ``replace`` snapshot."""
