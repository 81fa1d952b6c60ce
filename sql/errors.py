"""The SQL endpoint's outcomes as typed exceptions; ``catalog/errors.py`` maps them to HTTP."""

from __future__ import annotations

from iceshelf.tables.errors import BadRequestError


class SqlRefusedError(BadRequestError):
    """The statement is not allowed here (kind, function, file access, read-only mode, syntax)."""


class QueryFailedError(RuntimeError):
    """The engine ran the statement and it failed (a DuckDB error, a limit); the query is FAILED."""


class QueryCancelledError(RuntimeError):
    """The query was cancelled by its client or stopped by its timeout."""


class NoSuchQueryError(LookupError):
    """No query with this id in memory or in any warehouse's history."""


class QueryNotFinishedError(RuntimeError):
    """Results were asked for before the query reached a final state."""


class ClientTokenReusedError(RuntimeError):
    """A client request token was used before for a different statement (Athena's idempotency rule)."""


class QueryTimeoutError(QueryFailedError):
    """The query ran longer than its timeout and was interrupted."""


class ResultTooLargeError(QueryFailedError):
    """The result has more rows than the server's limit."""
