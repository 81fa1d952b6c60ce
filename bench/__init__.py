"""Iceshelf benchmarks: ``python -m bench --out bench-results/catalog.json``.

Every figure is taken beside its baseline in the same run, on the same throwaway servers, so a
ratio means something on a shared machine. One module per job:

``catalog``, ``sql``, ``compaction``, ``throughput``
    The suites: what each measures, its derived figures and its summary table.
``harness``
    How a figure is taken: timed calls, thread windows, rounds the systems take turns in.
``targets``
    The systems measured (Iceshelf, SeaweedFS's own Iceberg catalog, the object-store floor) and
    how a benchmark reaches them; ``rows`` is what every append writes, ``writers`` the
    processes that append for ``throughput``, ``clone`` the zero-copy tables ``compaction`` reuses.
``report``
    What every suite's report shares: results and notes, the JSON envelope, writing and printing it.
``servers``
    The real servers on loopback (``iceshelf serve``, SeaweedFS ``weed mini``). The test suite
    uses them too; the dependency points one way only, ``bench`` never depends on the test suite.
"""
