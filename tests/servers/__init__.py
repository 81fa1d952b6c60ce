"""Real servers started for tests and benchmarks (SeaweedFS, ...)."""
