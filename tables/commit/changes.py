"""What a commit is made of: the change a caller asks for, and the change staged on its way in.

A leaf module: the committer, the rebaser and the table store all speak these types, and none of
them needs another's code to do so.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import AssertCreate, TableRequirement, TableUpdate

from iceshelf.tables.errors import NoSuchTableError
from iceshelf.tables.metadata.files import MetadataFile
from iceshelf.tables.names import Identifier
from iceshelf.tables.state.pointer import VersionedPointer


@dataclass(frozen=True)
class TableChange:
    identifier: Identifier
    requirements: tuple[TableRequirement, ...]
    updates: tuple[TableUpdate, ...]
    #: The request's ``Idempotency-Key``: recorded in the pointer, so a retry is not applied twice.
    idempotency_key: str | None = None

    @property
    def creates(self) -> bool:
        return any(isinstance(r, AssertCreate) for r in self.requirements)


@dataclass(frozen=True)
class Staged:
    """A change applied and written, not yet visible: the swing of ``base`` to ``file`` is the commit."""

    change: TableChange
    base: VersionedPointer | None
    base_metadata: TableMetadata | None
    file: MetadataFile | None  # None: the change is a no-op
    #: Files written only for this attempt besides the metadata file (a rebased manifest list).
    scratch: str | None = None


def not_found(ident: Identifier) -> NoSuchTableError:
    return NoSuchTableError(f"Table does not exist: {ident}")
