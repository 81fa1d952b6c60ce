"""How far storage access handed to a client for one table reaches: the table's own prefix, nothing around it.

Both ways of handing it out -- vended credentials (``credentials.py``) and the remote signer
(``signing.py``) -- are scoped by a ``TableScope``. A table's location is chosen by whoever creates
or registers it, so a writer of namespace ``a`` could point a table at the files of ``b.secret``;
access is therefore delegated only for locations under the table's own namespace directory, where
the namespace's writers could read and write everything anyway. Every default location is there;
a table renamed into another namespace keeps its old location and gets no delegated access, and so
does a table in one of the warehouse's allowed locations outside its root (``ICESHELF_ALLOWED_LOCATIONS``):
clients reach those with their own storage credentials.
"""

from __future__ import annotations

from dataclasses import dataclass

from iceshelf.tables.errors import ForbiddenError
from iceshelf.tables.locations import fresh_default_of, location_key_problem, namespace_location
from iceshelf.tables.names import Identifier, Namespace
from iceshelf.tables.objectstore import ObjectStore, normalize_uri

#: Wildcards in a policy's resource ARN or an S3 prefix condition would widen it to sibling tables.
_WILDCARDS = frozenset("*?")


@dataclass(frozen=True)
class TableScope:
    bucket: str
    prefix: str  # the table's key prefix in the bucket, without a trailing "/"

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def contains(self, bucket: str, key: str) -> bool:
        """``key`` names an object below the table's prefix (``.``/``..`` segments never do)."""
        if bucket != self.bucket or not key.startswith(self.prefix + "/"):
            return False
        return not any(part in (".", "..") for part in key.split("/"))


def table_scope(store: ObjectStore, namespace: Namespace, location: str) -> TableScope:
    """The scope of a table at ``location`` in namespace ``namespace`` of the S3 warehouse ``store``."""
    location = normalize_uri(location).rstrip("/")  # s3a://, unreserved escapes: as every location check reads them
    namespace_dir = namespace_location(store, namespace) + "/"
    if not location.startswith(namespace_dir) or not location.startswith("s3://"):
        raise ForbiddenError(
            f"Storage access is delegated only for tables located in their namespace's directory {namespace_dir}; "
            f"this table is at {location}"
        )
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    if problem := location_key_problem(prefix):
        raise ForbiddenError(f"Storage access is not delegated for location {location}: {problem}")
    if _WILDCARDS & set(location):
        raise ForbiddenError(f"Storage access is not delegated for location {location}: it contains a wildcard")
    return TableScope(bucket, prefix)


def staged_scope(store: ObjectStore, ident: Identifier, bucket: str, key: str) -> TableScope | None:
    """The fresh default location (``iceshelf.tables.locations.default_location``) of ``ident`` that ``key`` lies in, if any.

    A staged create (Spark's CTAS, pyiceberg's create transaction) writes its files before the table
    exists, into the location the stage answer named: ``<namespace dir>/<name>-<32 hex digits>``.
    """
    fresh = fresh_default_of(store, ident, f"s3://{bucket}/{key}")
    return table_scope(store, ident.namespace, fresh) if fresh else None
