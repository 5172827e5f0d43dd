"""``cb-storage maintain``: compaction, checkpoint and vacuum of Delta tables (what the
weekly Dagster job does), with a progress bar on stderr and a summary per table on stdout.

Example::

    $ cb-storage maintain --root data
    [######--------------] 1/3 ohlcv_1m: compact          (on stderr)
    [#############-------] 2/3 ohlcv_1m: checkpoint
    [####################] 3/3 ohlcv_1m: vacuum
    table     partitions  files before  files after  stored before  stored after  vacuumed  version
    ohlcv_1m           2             5            3  99.4 KiB       99.4 KiB             0        7
"""

from __future__ import annotations

import argparse

from cb_storage_dagster.cli.options import (
    add_storage_options,
    existing_table,
    human_bytes,
    open_manager,
    render_table,
)
from cb_storage_dagster.cli.progress import ProgressBar
from cb_storage_dagster.domain.errors import UnsupportedFormatError
from cb_storage_dagster.storage import maintenance

NAME = "maintain"
HELP = "Compact, checkpoint and vacuum Delta tables (safe while writers run)."
_STEPS = ("compact", "checkpoint", "vacuum")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_storage_options(parser)
    parser.add_argument("--table", action="append", default=None, help="only this table (repeatable; default: every Delta table)")
    parser.add_argument(
        "--retention-hours", type=int, default=maintenance.DEFAULT_RETENTION_HOURS,
        help=f"vacuum keeps files younger than this (default {maintenance.DEFAULT_RETENTION_HOURS})",
    )
    parser.add_argument(
        "--target-file-size-mb", type=int, default=maintenance.DEFAULT_TARGET_FILE_SIZE // (1024 * 1024),
        help="size of compacted files",
    )
    parser.add_argument("--dry-run", action="store_true", help="vacuum only lists the files it would delete")


def execute(args: argparse.Namespace) -> int:
    manager = open_manager(args)
    backend = manager.backend
    tables = [existing_table(manager, t) for t in args.table] if args.table else maintenance.find_delta_tables(backend)
    for table in tables:
        if manager.stored_format(table) != "delta":
            raise UnsupportedFormatError(
                f"Table {table!r} is stored as {manager.stored_format(table)}: only Delta tables are maintained."
            )
    if not tables:
        print(f"No Delta tables in {backend.describe()}.")
        return 0
    bar = ProgressBar(len(tables) * len(_STEPS))
    results = []
    try:
        for table in tables:
            results.append(maintenance.maintain_table(
                backend, table,
                target_size=args.target_file_size_mb * 1024 * 1024,
                retention_hours=args.retention_hours,
                vacuum_dry_run=args.dry_run,
                on_step=lambda step, table=table: bar.step(f"{table}: {step}"),
            ))
    finally:
        bar.close()
    rows = [
        [
            r.table, len(r.compaction.partitions), r.compaction.before.files, r.compaction.after.files,
            human_bytes(r.vacuum.before.bytes), human_bytes(r.vacuum.after.bytes),
            len(r.vacuum.files_deleted), r.checkpoint.version,
        ]
        for r in results
    ]
    print(render_table(
        ["table", "partitions", "files before", "files after", "stored before", "stored after",
         "vacuumed" if not args.dry_run else "would vacuum", "version"],
        rows,
    ))
    return 0
