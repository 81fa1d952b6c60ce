"""Java artifacts (resolved by Maven, never committed) and helpers to run them in tests."""
