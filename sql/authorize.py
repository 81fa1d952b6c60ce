"""What a statement may touch, decided before DuckDB runs: every table it reads or writes.

The rewrite names every catalog table a statement reaches -- scans, metadata tables, write targets
-- so the check is complete by construction: a table that is not in the plan is not in the SQL
DuckDB runs. Listings (information_schema, SHOW, system tables) are filtered instead of refused,
as the catalog's list operations are.
"""

from __future__ import annotations

from iceshelf.sql.rewrite import Plan
from iceshelf.tables.access import Level, Principal, Resource
from iceshelf.tables.names import Identifier


def authorize(plan: Plan, caller: Principal) -> None:
    for scan in plan.scans:
        caller.require(Level.READ, Resource.of_table(scan.warehouse, scan.identifier))
    for virtual in plan.virtuals.values():
        if virtual.identifier is not None:
            caller.require(Level.READ, Resource.of_table(virtual.warehouse, virtual.identifier))
    for warehouse, ident in plan.targets:
        caller.require(Level.WRITE, Resource.of_table(warehouse, ident))


def may_read(caller: Principal, warehouse: str, ident: Identifier) -> bool:
    return caller.allows(Level.READ, Resource.of_table(warehouse, ident))


def may_see(caller: Principal, warehouse: str, namespace: tuple[str, ...] = ()) -> bool:
    return caller.can_see(Resource(warehouse, namespace))


def may_manage_queries(caller: Principal, warehouse: str) -> bool:
    """Whose queries a caller may look at and cancel besides its own: a warehouse admin's."""
    return caller.allows(Level.ADMIN, Resource(warehouse))
