"""Catalog state in the object store: namespaces, pointers (entries), transaction and idempotency records, and their key layout."""
