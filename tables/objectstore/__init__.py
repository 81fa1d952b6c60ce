"""Object stores: one small contract (``base``), several backends, and ``open_store`` to pick one."""

from __future__ import annotations

from typing import Sequence
from urllib.parse import unquote

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
    normalize_uri,
)
from iceshelf.tables.settings import S3Settings


def open_warehouse_store(location: str, s3: S3Settings, allowed_locations: Sequence[str] = ()) -> ObjectStore:
    """A warehouse's store; with ``allowed_locations``, each opened as a store of the same backend and
    mounted beside the warehouse's (``iceshelf.tables.objectstore.mounted``)."""
    home = open_store(location, s3)
    if not allowed_locations:
        return home
    from iceshelf.tables.objectstore.mounted import MountedStore

    mounts = [open_store(allowed, s3) for allowed in allowed_locations]
    for allowed, mount in zip(allowed_locations, mounts):
        if type(mount) is not type(home):
            raise ValueError(f"allowed location {allowed} is not on the backend of the warehouse {home.root_uri}")
    return MountedStore(home, mounts)


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

    if location.lower().startswith("file:"):
        location = unquote(normalize_uri(location).removeprefix("file://"))
    return LocalStore(location)


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
    "normalize_uri",
    "open_store",
    "open_warehouse_store",
]
