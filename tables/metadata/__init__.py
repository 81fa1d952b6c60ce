"""Immutable metadata files and their models: table and view metadata, kept manifest lists."""
