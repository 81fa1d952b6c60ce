"""Iceshelf benchmarks: ``python -m bench --out bench-results/catalog.json``.

``bench.catalog`` measures the catalog hot paths (loadTable, small-append commits) of Iceshelf
side by side with the object-store floor and SeaweedFS's own Iceberg REST catalog, all on one
throwaway SeaweedFS started for the run, and reports the ratios.
"""
