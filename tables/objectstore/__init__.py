"""Object stores: one small contract (``base``), several backends, and ``open_store`` to pick one."""

from __future__ import annotations

from iceshelf.tables.objectstore.base import (
    CREATE,
    OVERWRITE,
    Create,
    GetResult,
    ObjectAlreadyExists,
    ObjectMeta,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    Overwrite,
    PreconditionFailed,
    PutMode,
    StoreConnectionLost,
    StoreServerError,
    StoreThrottled,
    StoreTimeout,
    StoreUnavailable,
    StoreUnreachable,
    Update,
)
from iceshelf.tables.settings import S3Settings


def open_store(location: str, s3: S3Settings) -> ObjectStore:
    """The store for a warehouse location: ``s3://bucket[/prefix]``, ``memory://name`` or a local directory."""
    if location.startswith(("s3://", "s3a://")):
        from iceshelf.tables.objectstore.s3 import S3Store

        bucket, _, prefix = location.split("://", 1)[1].partition("/")
        return S3Store(bucket, prefix.strip("/"), s3)
    if location.startswith("memory://"):
        from iceshelf.tables.objectstore.memory import MemoryStore

        return MemoryStore(location)
    from iceshelf.tables.objectstore.local import LocalStore

    return LocalStore(location.removeprefix("file://"))


__all__ = [
    "CREATE",
    "OVERWRITE",
    "Create",
    "GetResult",
    "ObjectAlreadyExists",
    "ObjectMeta",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectStoreError",
    "Overwrite",
    "PreconditionFailed",
    "PutMode",
    "StoreConnectionLost",
    "StoreServerError",
    "StoreThrottled",
    "StoreTimeout",
    "StoreUnavailable",
    "StoreUnreachable",
    "Update",
    "open_store",
]
