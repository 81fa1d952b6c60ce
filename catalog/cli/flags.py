"""The flags every warehouse command shares (warehouses, S3), and the settings they make.

Each command module adds its own flags on top; all of them read settings through ``settings_from``,
so a flag means the same in ``serve``, ``maintenance``, ``compact`` and ``principals``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from iceshelf.catalog.settings import Settings, parse_allowed_locations, parse_warehouses


def settings_from(args: argparse.Namespace, **overrides: object) -> Settings:
    """Settings from the environment, then the warehouse and S3 flags every warehouse command takes."""
    settings = Settings.from_env(
        warehouses=parse_warehouses(args.warehouse) if args.warehouse else None,
        allowed_locations=parse_allowed_locations(args.allowed_location) if args.allowed_location else None,
        s3=None,
        **overrides,
    )
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


def add_warehouse_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--warehouse",
        action="append",
        help="[NAME=]PATH or s3://bucket[/prefix]; repeat for several warehouses (env ICESHELF_WAREHOUSE)",
    )
    parser.add_argument(
        "--allowed-location",
        action="append",
        help="[NAME=]URI outside warehouse NAME's root (default: the default warehouse) where its tables and views "
        "may also live, on the same backend; repeat for several (env ICESHELF_ALLOWED_LOCATIONS, comma-separated)",
    )
    parser.add_argument("--s3-endpoint", help="S3 endpoint URL (env AWS_ENDPOINT_URL)")
    parser.add_argument("--s3-access-key-id", help="env AWS_ACCESS_KEY_ID")
    parser.add_argument("--s3-secret-access-key", help="env AWS_SECRET_ACCESS_KEY")
    parser.add_argument("--s3-region", help="env AWS_REGION")
