"""``iceshelf``: a thin CLI that turns flags into ``Settings`` and hands them to a composition root.

This package is the only home of argparse and rich. Every command module has one shape --
``add_commands(commands)`` adds its sub-commands, each with a ``run(args) -> int`` -- and shares the
warehouse and S3 flags of ``flags.py``.
"""

from __future__ import annotations

import argparse

from iceshelf.catalog.cli import compact, maintenance, principals, serve, sql

COMMANDS = (serve, sql, maintenance, compact, principals)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iceshelf", description="Iceberg table service over an object store")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)
