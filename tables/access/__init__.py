"""Access control: principals, grants and credentials, kept in the home warehouse's object store.

It lives in ``tables/`` because every protocol on top (REST catalog, SQL, maintenance) must decide
the same way about the same tables; HTTP specifics stay in ``catalog/auth.py``.
"""

from iceshelf.tables.access.gate import AccessGate
from iceshelf.tables.access.grants import Grant, Level, Resource
from iceshelf.tables.access.principals import OPEN, NewCredentials, Principal, PrincipalStore

__all__ = ["AccessGate", "Grant", "Level", "NewCredentials", "OPEN", "Principal", "PrincipalStore", "Resource"]
