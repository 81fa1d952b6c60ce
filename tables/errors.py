"""The table store's outcomes as typed exceptions.

Iceshelf reuses pyiceberg's exception types, so a pyiceberg user reads the same names on
both sides of the wire; the few outcomes pyiceberg has no type for are added here. The
catalog maps every one of them to an HTTP status and an Iceberg ``ErrorModel`` in one place.
"""

from __future__ import annotations

from pyiceberg.exceptions import (
    CommitFailedException,
    CommitStateUnknownException,
    NamespaceAlreadyExistsError,
    NamespaceNotEmptyError,
    NoSuchNamespaceError,
    NoSuchTableError,
    NoSuchViewError,
    TableAlreadyExistsError,
    ValidationError,
    ViewAlreadyExistsError,
)


class BadRequestError(ValueError):
    """The request is malformed or names something invalid; nothing was changed."""


class InvalidArgumentError(BadRequestError):
    """An argument the reference implementation refuses with ``IllegalArgumentException``: a 400 whose
    ErrorModel type is that name, so a Java client raises the same exception as against Iceberg's own catalog."""


class UnprocessableEntityError(ValueError):
    """Well-formed but contradictory, e.g. the same namespace property both set and removed."""


class NotAuthorizedError(Exception):
    """No credentials, or credentials that prove nothing (bad secret, expired or tampered token)."""


class ForbiddenError(Exception):
    """The caller is known, but no grant lets it do this here."""


class NoSuchWarehouseError(LookupError):
    """The request names a warehouse this server does not hold."""


__all__ = [
    "BadRequestError",
    "CommitFailedException",
    "CommitStateUnknownException",
    "ForbiddenError",
    "InvalidArgumentError",
    "NamespaceAlreadyExistsError",
    "NamespaceNotEmptyError",
    "NoSuchNamespaceError",
    "NoSuchTableError",
    "NoSuchViewError",
    "NoSuchWarehouseError",
    "NotAuthorizedError",
    "TableAlreadyExistsError",
    "UnprocessableEntityError",
    "ValidationError",
    "ViewAlreadyExistsError",
]
