"""Real servers on loopback (an ``iceshelf serve`` subprocess, a SeaweedFS ``weed mini``), started for
benchmarks and tests.

They live under ``bench/`` because both use them and the dependency may only point one way:
the test suite may use ``bench.servers``, while ``bench`` never depends on the test suite.
"""
