"""``iceshelf``: a thin CLI that turns flags into ``Settings`` and hands them to a composition root."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace

from iceshelf.catalog.cli import maintenance as maintenance_cli
from iceshelf.catalog.cli import principals as principals_cli
from iceshelf.catalog.cli import compact as compact_cli
from iceshelf.catalog.cli import sql as sql_cli
from iceshelf.tables.settings import Settings, parse_warehouses


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from iceshelf.catalog.app import create_app

    settings = _settings(args, host=args.host, port=args.port, log_level=args.log_level)
    if args.auth:
        settings = replace(settings, auth=replace(settings.auth, mode=args.auth))
    settings = sql_cli.with_serve_flags(settings, args)
    settings = maintenance_cli.with_serve_flags(settings, args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("iceshelf")
    for name, location in settings.warehouses.items():
        log.info("warehouse %r at %s", name, location)
    if settings.auth_enabled:
        log.info("authentication is on: create principals with `iceshelf principals create NAME --grant LEVEL:KIND:PATH`")
    else:
        log.warning(
            "authentication is OFF (listening on %s only): anyone who can reach this port can read and write every table; "
            "set ICESHELF_AUTH=on to require credentials",
            settings.host,
        )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level, workers=1)
    return 0


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    """Settings from the environment, then the warehouse and S3 flags every warehouse command takes."""
    settings = Settings.from_env(warehouses=parse_warehouses(args.warehouse) if args.warehouse else None, s3=None, **overrides)
    return _with_s3_flags(settings, args)


def _with_s3_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    changes = {
        "endpoint_url": args.s3_endpoint,
        "access_key_id": args.s3_access_key_id,
        "secret_access_key": args.s3_secret_access_key,
        "region": args.s3_region,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    return replace(settings, s3=replace(settings.s3, **changes)) if changes else settings


def _add_warehouse_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--warehouse",
        action="append",
        help="[NAME=]PATH or s3://bucket[/prefix]; repeat for several warehouses (env ICESHELF_WAREHOUSE)",
    )
    parser.add_argument("--s3-endpoint", help="S3 endpoint URL (env AWS_ENDPOINT_URL)")
    parser.add_argument("--s3-access-key-id", help="env AWS_ACCESS_KEY_ID")
    parser.add_argument("--s3-secret-access-key", help="env AWS_SECRET_ACCESS_KEY")
    parser.add_argument("--s3-region", help="env AWS_REGION")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iceshelf", description="Iceberg table service over an object store")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the Iceberg REST catalog")
    _add_warehouse_flags(serve)
    serve.add_argument("--host", help="listen address (env ICESHELF_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (env ICESHELF_PORT, default 8181)")
    serve.add_argument("--log-level", help="debug, info, warning (env ICESHELF_LOG_LEVEL)")
    serve.add_argument(
        "--auth", choices=("auto", "on", "off"), help="require credentials (env ICESHELF_AUTH; auto: on unless on loopback)"
    )
    sql_cli.add_serve_flags(serve)
    maintenance_cli.add_serve_flags(serve)
    serve.set_defaults(run=_serve)
    sql_cli.add_command(commands)
    maintenance_cli.add_commands(commands, _add_warehouse_flags, _settings)
    compact_cli.add_command(commands, _add_warehouse_flags, _settings)
    principals_cli.add_command(commands, _add_warehouse_flags, _settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)

