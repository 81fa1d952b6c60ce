"""Checks over what the processes were told and what a client can see after recovery.

An acknowledged change must be visible, a clean refusal must not be, and a process that crashed
or was told "unknown" may go either way -- but a transaction all-or-nothing, everywhere, and
every acknowledged metadata file on its table's one linear history.
"""

from __future__ import annotations

from typing import Callable

from iceshelf.tables.metadata.files import Loaded, MetadataFile
from iceshelf.tables.names import Identifier
from iceshelf.tables.tablestore import TableStore
from tests.modelcheck.explorer import Outcome
from tests.modelcheck.invariants import check_acknowledged, check_pointers, visible

Check = Callable[[TableStore, dict[str, Outcome]], None]
Observe = Callable[[TableStore, dict], None]


def tagged(tables: TableStore, ident: Identifier, tag: str) -> bool:
    file = visible(tables, ident)
    return file is not None and tag in file.metadata.properties


def check_effect(name: str, outcome: Outcome, applied: bool) -> None:
    """Acknowledged: visible. Refused cleanly: invisible. Crashed or unknown: either."""
    if outcome.acked:
        assert applied, f"{name} was acknowledged but its effect is not visible"
    elif not outcome.unknown:
        assert not applied, f"{name} was refused ({outcome}) but its effect is visible"


def acked_files(outcome: Outcome) -> list[MetadataFile]:
    """The metadata files an acknowledged commit (one table) or transaction (a list) returned."""
    if not outcome.acked:
        return []
    loaded = outcome.value if isinstance(outcome.value, list) else [outcome.value]
    return [table.file for table in loaded if isinstance(table, Loaded)]


def check_histories(tables: TableStore, outcomes: dict[str, Outcome], *idents: Identifier) -> None:
    """Every acknowledged metadata file is on its table's one linear history."""
    finals = {ident: visible(tables, ident) for ident in idents}
    by_table = {final.metadata.table_uuid: final for final in finals.values() if final is not None}
    for name, outcome in outcomes.items():
        for file in acked_files(outcome):
            final = by_table.get(file.metadata.table_uuid)
            assert final is not None, f"{name}: the table it committed to is gone"
            check_acknowledged(final, file, name)


def check_atomic(tables: TableStore, tag: str, *idents: Identifier) -> bool:
    """A transaction's tag is on all of its tables or on none; returns which."""
    seen = {ident: tagged(tables, ident, tag) for ident in idents}
    assert len(set(seen.values())) == 1, f"transaction {tag} is half-visible: {seen}"
    return next(iter(seen.values()))


def observe_atomic(tags: tuple[str, ...], idents: tuple[Identifier, ...]) -> Observe:
    """At every state: pointers name existing files, and a fresh reader sees each transaction whole."""

    def observe(tables: TableStore, memo: dict) -> None:
        check_pointers(tables, settled=False)
        for tag in tags:
            seen = {}
            for ident in idents:
                current = tables.entries.read(ident)
                location = current.pointer.metadata_location
                if location not in memo:
                    memo[location] = tables.files.read(location).metadata.properties
                seen[ident] = tag in memo[location]
            assert len(set(seen.values())) == 1, f"a reader sees transaction {tag} half-applied: {seen}"

    return observe


def observe_one_name(*names: Identifier) -> Observe:
    """At every state: pointers name existing files, and a fresh reader finds the table under
    exactly one of ``names`` (a rename is atomic to readers)."""

    def observe(tables: TableStore, memo: dict) -> None:
        check_pointers(tables, settled=False)
        found = [str(name) for name in names if tables.entries.read(name) is not None]
        assert len(found) == 1, f"a reader finds the table under {found or 'no name'}"

    return observe


def observe_pointers(tables: TableStore, memo: dict) -> None:
    check_pointers(tables, settled=False)
