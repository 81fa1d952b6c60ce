"""``iceshelf principals``: who may use the service, managed on the warehouse itself.

The command writes the home warehouse's object store directly (no server needed, and so no
chicken-and-egg for the first admin): whoever can write the bucket already controls everything in it.
A new principal's secret is printed once and never stored; only its SHA-256 is.
"""

from __future__ import annotations

import argparse
from typing import Callable

from rich.console import Console
from rich.table import Table

from iceshelf.catalog.cli.flags import add_warehouse_flags, settings_from
from iceshelf.tables.access import Grant, PrincipalStore
from iceshelf.tables.access.principals import NewCredentials
from iceshelf.tables.errors import BadRequestError
from iceshelf.tables.objectstore import open_store


def add_commands(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("principals", help="create, list, grant, revoke, rotate and delete principals")
    actions = parser.add_subparsers(dest="action", required=True)

    def action(name: str, help_text: str, run: Callable[[PrincipalStore, argparse.Namespace, Console], None]) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text)
        add_warehouse_flags(sub)
        sub.set_defaults(run=lambda args: _run(args, run))
        return sub

    create = action("create", "create a principal and print its credentials once", _create)
    create.add_argument("name")
    create.add_argument("--grant", action="append", default=[], metavar="LEVEL:KIND:PATH", help="e.g. read:namespace:default/sales")
    create.add_argument("--external", action="store_true", help="an identity of the OIDC issuer: grants only, no secret")
    action("list", "list principals and their grants", _list)
    for name, help_text, run in (("grant", "add grants", _grant), ("revoke", "remove grants", _revoke)):
        sub = action(name, help_text, run)
        sub.add_argument("name")
        sub.add_argument("grants", nargs="+", metavar="LEVEL:KIND:PATH")
    action("rotate", "replace a principal's secret (the old one stops working)", _rotate).add_argument("name")
    action("delete", "delete a principal (its tokens stop working)", _delete).add_argument("name")


def _run(args: argparse.Namespace, run: Callable[[PrincipalStore, argparse.Namespace, Console], None]) -> int:
    settings = settings_from(args)
    store = open_store(settings.warehouses[settings.default_warehouse], settings.s3)
    console = Console()
    try:
        run(PrincipalStore(store, cache_s=0), args, console)
    except BadRequestError as err:
        console.print(f"[red]error:[/red] {err}")
        return 2
    finally:
        store.close()
    return 0


def _create(principals: PrincipalStore, args: argparse.Namespace, console: Console) -> None:
    credentials = principals.create(args.name, [Grant.parse(g) for g in args.grant], external=args.external)
    console.print(f"created principal [bold]{args.name}[/bold]")
    if credentials is not None:
        _show(credentials, console)


def _show(credentials: NewCredentials, console: Console) -> None:
    console.print("Store these now; the secret is not kept and cannot be shown again.", style="yellow")
    console.print(f"client id:     {credentials.client_id}", soft_wrap=True)
    console.print(f"client secret: {credentials.client_secret}", soft_wrap=True)
    console.print(f"api key:       {credentials.api_key}", soft_wrap=True)


def _list(principals: PrincipalStore, args: argparse.Namespace, console: Console) -> None:
    table = Table("principal", "kind", "grants")
    for p in principals.list():
        table.add_row(p.name, "external" if p.external else "client", "\n".join(g.to_text() for g in p.grants) or "-")
    console.print(table)


def _grant(principals: PrincipalStore, args: argparse.Namespace, console: Console) -> None:
    for text in args.grants:
        principals.grant(args.name, Grant.parse(text))
    console.print(f"granted {', '.join(args.grants)} to {args.name}")


def _revoke(principals: PrincipalStore, args: argparse.Namespace, console: Console) -> None:
    for text in args.grants:
        principals.revoke(args.name, Grant.parse(text))
    console.print(f"revoked {', '.join(args.grants)} from {args.name}")


def _rotate(principals: PrincipalStore, args: argparse.Namespace, console: Console) -> None:
    _show(principals.rotate(args.name), console)


def _delete(principals: PrincipalStore, args: argparse.Namespace, console: Console) -> None:
    principals.delete(args.name)
    console.print(f"deleted principal {args.name}")
