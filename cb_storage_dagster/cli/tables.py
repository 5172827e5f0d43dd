"""``cb-storage tables``: every table under the root with its format, version, data files,
bytes and last maintenance.

Example::

    $ cb-storage tables --root data
    table     format  version  files  bytes     last maintenance
    ohlcv_1m  delta         7      3  54.1 KiB  2026-12-05 05:23 UTC
"""

from __future__ import annotations

import argparse
import json

from cb_storage_dagster.cli.options import add_storage_options, human_bytes, open_manager, render_table
from cb_storage_dagster.storage.inventory import describe_table, list_tables

NAME = "tables"
HELP = "List the tables: format, version, files, bytes, last maintenance."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_storage_options(parser)
    parser.add_argument("--table", action="append", default=None, help="only this table (repeatable)")
    parser.add_argument("--json", action="store_true", help="one JSON object per table instead of a text table")


def execute(args: argparse.Namespace) -> int:
    manager = open_manager(args)
    names = args.table or list_tables(manager.backend)
    summaries = [describe_table(manager.backend, name) for name in names]
    if args.json:
        for s in summaries:
            print(json.dumps({
                "table": s.name, "format": s.format, "version": s.version, "files": s.files,
                "bytes": s.bytes, "last_maintenance": s.last_maintenance.isoformat() if s.last_maintenance else None,
            }))
        return 0
    if not summaries:
        print(f"No tables in {manager.backend.describe()}.")
        return 0
    rows = [
        [s.name, s.format, "-" if s.version is None else s.version, s.files, human_bytes(s.bytes), s.describe_maintenance()]
        for s in summaries
    ]
    print(render_table(["table", "format", "version", "files", "bytes", "last maintenance"], rows))
    return 0
