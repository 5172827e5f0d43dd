"""``cb-storage coverage``: per exchange x UTC day, how many instruments of the expected
universe are complete, partial or missing in a table; exit 1 when any is not complete (cron).

Example::

    $ cb-storage coverage --root data --table ohlcv_1m --start 2024-01-01 --end 2024-01-02 \\
          --instruments binance:BTC,binance:ETH,coinbase:BTC
    exchange  date        complete  partial  missing  not complete
    binance   2024-01-01         2        0        0
    binance   2024-01-02         1        1        0  ETH (partial 700/1440)
    coinbase  2024-01-01         0        0        1  BTC (missing)
    coinbase  2024-01-02         1        0        0
    ohlcv_1m: 4 complete, 1 partial, 1 missing instrument-days (a complete day has 1440 intervals)
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from cb_storage_dagster.cli.heatmap import write_heatmap
from cb_storage_dagster.cli.options import (
    add_storage_options,
    existing_table,
    open_manager,
    parse_day,
    render_table,
    universe,
)
from cb_storage_dagster.domain.errors import ConfigurationError
from cb_storage_dagster.storage.coverage import CoverageReport, measure_coverage

NAME = "coverage"
HELP = "Instruments complete / partial / missing per exchange and day (exit 1 on gaps)."
_NAMED = 5
"""Instruments named per exchange-day in the text table (all of them are in --grid and the PNG)."""
_SYMBOLS = {"complete": "#", "partial": "+", "missing": "."}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_storage_options(parser)
    parser.add_argument("--table", default="ohlcv_1m", help="table to check (default: ohlcv_1m)")
    parser.add_argument("--start", help="first UTC day, YYYY-MM-DD (default: --end)")
    parser.add_argument("--end", help="last UTC day, inclusive (default: yesterday, UTC)")
    parser.add_argument(
        "--instruments",
        help="expected universe, binance:BTC,kraken:ETH,... (default: CB_STORAGE_INSTRUMENTS_FILE / CB_STORAGE_INSTRUMENTS)",
    )
    parser.add_argument(
        "--per-day", type=int, default=None,
        help="intervals of a complete day (default: from the table name, 1440 for *_1m; any row for trades)",
    )
    parser.add_argument("--grid", action="store_true", help="also print one line per instrument, one character per day")
    parser.add_argument("--png", type=Path, help="also write a heatmap (instruments x days) to this PNG file")


def execute(args: argparse.Namespace) -> int:
    end = parse_day(args.end, "--end") if args.end else dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    start = parse_day(args.start, "--start") if args.start else end
    expected = universe(args.instruments)
    if args.per_day is not None and args.per_day < 1:
        raise ConfigurationError(f"--per-day {args.per_day} must be a positive number of intervals.")
    manager = open_manager(args)
    table = existing_table(manager, args.table)
    report = measure_coverage(manager, table, expected, start, end, per_day=args.per_day)
    print(render_table(
        ["exchange", "date", "complete", "partial", "missing", "not complete"],
        [[d.exchange, d.date.isoformat(), len(d.complete), len(d.partial), len(d.missing), d.describe_gaps(report.per_day, _NAMED)]
         for d in report.days],
    ))
    if args.grid:
        print()
        print(grid_text(report))
    if args.png is not None:
        grid = report.states()
        write_heatmap(args.png, [[row[day] for day in report.dates] for row in grid.values()])
    totals = report.totals()
    cadence = (
        f"a complete day has {report.per_day} intervals" if report.per_day else "any row makes a day complete"
    )
    print(f"{table}: {totals['complete']} complete, {totals['partial']} partial, {totals['missing']} missing "
          f"instrument-days ({cadence})")
    return 1 if report.has_gaps else 0


def grid_text(report: CoverageReport) -> str:
    """One line per instrument, one character per day: ``#`` complete, ``+`` partial, ``.`` missing."""
    grid = report.states()
    width = max(len(f"{e}:{c}") for e, c in grid)
    lines = [f"{'':{width}}  {report.dates[0]} .. {report.dates[-1]}  (# complete, + partial, . missing)"]
    for (exchange, coin), states in grid.items():
        lines.append(f"{f'{exchange}:{coin}':{width}}  " + "".join(_SYMBOLS[states[d]] for d in report.dates))
    return "\n".join(lines)
