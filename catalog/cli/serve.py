"""``iceshelf serve``: the REST catalog, the SQL endpoint and the maintenance scheduler in one process."""

from __future__ import annotations

import argparse
import gc
import logging
from dataclasses import replace

from iceshelf.catalog.cli import maintenance, sql
from iceshelf.catalog.cli.flags import add_warehouse_flags, settings_from


#: The cyclic collector's thresholds for a server (CPython's default: 700, 10, 10). The caches keep a bounded set
#: of large parsed metadata models while every commit allocates a new one; at the default the collector
#: walks the whole cache several times per commit (a third of a commit's time on a table of 1,000 snapshots,
#: measured). Refcounting still frees everything at once; cycles just wait a little longer.
_GC_THRESHOLDS = (50_000, 20, 10)


def add_commands(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="serve the Iceberg REST catalog")
    add_warehouse_flags(serve)
    serve.add_argument("--host", help="listen address (env ICESHELF_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (env ICESHELF_PORT, default 8181)")
    serve.add_argument("--log-level", help="debug, info, warning (env ICESHELF_LOG_LEVEL)")
    serve.add_argument(
        "--auth", choices=("auto", "on", "off"), help="require credentials (env ICESHELF_AUTH; auto: on unless on loopback)"
    )
    serve.add_argument(
        "--rebase-appends",
        action="store_true",
        help="rebase stale pure appends instead of answering 409, for every table that does not set "
        "iceshelf.commit.rebase-appends=false (env ICESHELF_REBASE_APPENDS; off by default, as the spec)",
    )
    sql.add_serve_flags(serve)
    maintenance.add_serve_flags(serve)
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from iceshelf.catalog.app import create_app

    settings = settings_from(args, host=args.host, port=args.port, log_level=args.log_level)
    if args.auth:
        settings = replace(settings, auth=replace(settings.auth, mode=args.auth))
    if args.rebase_appends:
        settings = replace(settings, commit=replace(settings.commit, rebase_appends=True))
    settings = sql.with_serve_flags(settings, args)
    settings = maintenance.with_serve_flags(settings, args)
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
    gc.set_threshold(*_GC_THRESHOLDS)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level, workers=1)
    return 0
