"""What a principal may do where: levels, resources and the pure rules that decide a request.

A grant is ``(level, resource)``. Resources nest: a warehouse holds namespaces, a namespace holds
child namespaces and tables (views count as tables), so a grant on a namespace reaches everything
below it. Levels nest too: ``admin`` implies every other level, ``write`` and ``maintain`` each
imply ``read``. ``maintain`` is the scheduler's level: it may run and configure maintenance
(compaction commits go through the commit path as the service itself), but not write data.

Written form (CLI, principal records): ``LEVEL:KIND:PATH``, e.g. ``read:namespace:default/sales``,
``write:table:default/sales/eu/orders`` (the last segment of a table path is the table),
``admin:warehouse:*`` (``*`` = every warehouse). Names never contain ``/``, so a path is unambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from iceshelf.tables.errors import BadRequestError
from iceshelf.tables.names import Identifier, Namespace, check_identifier, check_name, check_namespace

ANY_WAREHOUSE = "*"


class Level(str, Enum):
    READ = "read"
    WRITE = "write"
    MAINTAIN = "maintain"
    ADMIN = "admin"

    def implies(self, wanted: "Level") -> bool:
        return self is wanted or self is Level.ADMIN or wanted is Level.READ


class Kind(str, Enum):
    WAREHOUSE = "warehouse"
    NAMESPACE = "namespace"
    TABLE = "table"


@dataclass(frozen=True)
class Resource:
    """A warehouse, a namespace in it, or a table (or view) in a namespace."""

    warehouse: str
    namespace: Namespace = ()
    table: str | None = None

    @classmethod
    def of_table(cls, warehouse: str, ident: Identifier) -> "Resource":
        return cls(warehouse, tuple(ident.namespace), ident.name)

    @property
    def kind(self) -> Kind:
        if self.table is not None:
            return Kind.TABLE
        return Kind.NAMESPACE if self.namespace else Kind.WAREHOUSE

    @property
    def parent(self) -> "Resource":
        """Where this resource is created or dropped: a table's namespace, a namespace's parent."""
        if self.table is not None:
            return Resource(self.warehouse, self.namespace)
        return Resource(self.warehouse, self.namespace[:-1])

    def contains(self, other: "Resource") -> bool:
        """``other`` is this resource or lies below it."""
        if self.warehouse not in (ANY_WAREHOUSE, other.warehouse):
            return False
        if self.table is not None:
            return other.table == self.table and other.namespace == self.namespace
        return other.namespace[: len(self.namespace)] == self.namespace

    def path(self) -> str:
        return "/".join((self.warehouse, *self.namespace, *((self.table,) if self.table is not None else ())))

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.path()}"


@dataclass(frozen=True)
class Grant:
    level: Level
    resource: Resource

    @classmethod
    def parse(cls, text: str) -> "Grant":
        """``LEVEL:KIND:PATH``; a clear 400-style error names what is wrong."""
        parts = text.split(":", 2)
        if len(parts) != 3:
            raise BadRequestError(f"Invalid grant {text!r}: expected LEVEL:KIND:PATH, e.g. read:namespace:default/sales")
        level_text, kind_text, path = parts
        try:
            level, kind = Level(level_text), Kind(kind_text)
        except ValueError:
            raise BadRequestError(
                f"Invalid grant {text!r}: level is one of {[lv.value for lv in Level]}, kind one of {[k.value for k in Kind]}"
            ) from None
        return cls(level, _resource(kind, path.split("/"), text))

    def to_text(self) -> str:
        return f"{self.level.value}:{self.resource}"


def _resource(kind: Kind, segments: list[str], text: str) -> Resource:
    warehouse, rest = segments[0], segments[1:]
    if warehouse != ANY_WAREHOUSE:
        check_name(warehouse, "warehouse")
    if kind is Kind.WAREHOUSE and not rest:
        return Resource(warehouse)
    if kind is Kind.NAMESPACE and rest:
        return Resource(warehouse, check_namespace(rest))
    if kind is Kind.TABLE and len(rest) >= 2:
        ident = check_identifier(rest[:-1], rest[-1])
        return Resource(warehouse, ident.namespace, ident.name)
    raise BadRequestError(f"Invalid grant {text!r}: a {kind.value} path has the wrong number of segments")


def allows(grants: tuple[Grant, ...], level: Level, resource: Resource) -> bool:
    """Some grant at a sufficient level covers the resource or one of its ancestors."""
    return any(g.level.implies(level) and g.resource.contains(resource) for g in grants)


def can_see(grants: tuple[Grant, ...], resource: Resource) -> bool:
    """The resource is on the way to something granted, or granted itself: lists show it.

    A principal granted only ``sales.eu`` must still find ``sales`` when it lists the warehouse's
    namespaces, or it could never navigate to what it may use.
    """
    return any(g.resource.contains(resource) or resource.contains(g.resource) for g in grants)
