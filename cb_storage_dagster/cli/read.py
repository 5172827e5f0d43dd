"""``cb-storage read``: a time range of one or more instruments of a table, to a Parquet or
CSV file, in one pruned scan.

Example::

    $ cb-storage read --root data --table ohlcv_1m --instruments binance:BTC,binance:ETH \\
          --start 2024-01-01T00:00Z --end 2024-01-08T00:00Z --out week.parquet
    wrote 20160 rows of ohlcv_1m (2 instruments, 2024-01-01T00:00:00+00:00 .. 2024-01-08T00:00:00+00:00) to week.parquet
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cb_storage_dagster.cli.options import (
    add_storage_options,
    existing_table,
    open_manager,
    parse_instant,
    universe,
)
from cb_storage_dagster.domain.errors import ConfigurationError
from cb_storage_dagster.domain.keys import PartitionSlot
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.storage.coverage import data_type_of_table
from cb_storage_dagster.storage.times import days_in_range, time_range

NAME = "read"
HELP = "Export a time range of instruments to a Parquet or CSV file."
FORMATS = ("parquet", "csv")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_storage_options(parser)
    parser.add_argument("--table", default="ohlcv_1m", help="table to read (default: ohlcv_1m)")
    parser.add_argument("--instruments", required=True, help="binance:BTC,binance:ETH,...")
    parser.add_argument("--start", required=True, help="first instant, ISO with offset: 2024-01-01T00:00Z")
    parser.add_argument("--end", required=True, help="end instant (excluded), ISO with offset")
    parser.add_argument("--columns", help="only these columns, comma-separated (plus exchange, coin, timestamp)")
    parser.add_argument("--out", type=Path, required=True, help="output file, .parquet or .csv")
    parser.add_argument("--format", choices=FORMATS, help="output format (default: from the --out suffix)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")


def execute(args: argparse.Namespace) -> int:
    start, end = time_range(parse_instant(args.start, "--start"), parse_instant(args.end, "--end"))
    instruments = universe(args.instruments)
    kind = args.format or args.out.suffix.lstrip(".").lower()
    if kind not in FORMATS:
        raise ConfigurationError(
            f"Cannot tell the output format of {str(args.out)!r}: name it *.parquet or *.csv, or pass --format."
        )
    if args.out.exists() and not args.force:
        raise ConfigurationError(f"{str(args.out)!r} exists: pass --force to replace it, or another --out.")
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    manager = open_manager(args)
    table = existing_table(manager, args.table)
    days = days_in_range(start, end)
    scope = WriteScope.of_slots([PartitionSlot(e, c, d) for e, c in instruments for d in days])
    rows = manager.read_partitions(
        data_type_of_table(table), scope, table=table, time_range=(start, end),
        columns=None if columns is None else ["exchange", "coin", "timestamp", *columns],
    )
    _write(rows, args.out, kind)
    print(f"wrote {rows.num_rows} rows of {table} ({len(instruments)} instruments, "
          f"{start.isoformat()} .. {end.isoformat()}) to {args.out}")
    return 0


def _write(rows, out: Path, kind: str) -> None:
    """Write to a temporary file beside ``out``, then rename: a failed export leaves no half file."""
    partial = out.with_name(f".{out.name}.partial")
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(rows, partial, compression="zstd")
        else:
            import pyarrow.csv as pcsv

            pcsv.write_csv(rows, partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
