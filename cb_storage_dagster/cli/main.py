"""The ``cb-storage`` parser, the dispatch to one module per command, and the exit codes.

Exit codes (for cron and scripts):

====  ===========================================================================
0     done (``coverage``: every expected instrument-day is complete)
1     ``coverage`` found partial or missing instrument-days
2     bad input: usage, an unknown table, a naive time, a missing root, bad configuration
3     the storage failed: an outage, a refused credential, an unreadable table
====  ===========================================================================

Example:
    >>> main(["tables", "--root", "/no/such/folder"])  # doctest: +SKIP
    cb-storage tables: error: --root '/no/such/folder' is not an existing folder: ...
    2
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from cb_storage_dagster.cli import coverage, maintain, read, tables
from cb_storage_dagster.domain.errors import ProjectError

__all__ = ["EXIT_BAD_INPUT", "EXIT_GAPS", "EXIT_OK", "EXIT_STORAGE_FAILED", "build_parser", "exit_code", "main", "run"]

EXIT_OK = 0
EXIT_GAPS = 1
EXIT_BAD_INPUT = 2
EXIT_STORAGE_FAILED = 3

COMMANDS = (tables, coverage, read, maintain)
"""Each module has ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``execute(args) -> int``."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cb-storage",
        description="Inspect, export and maintain the market-data tables (no Dagster needed).",
        epilog="Exit codes: 0 done, 1 coverage has gaps, 2 bad input, 3 storage failed.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        sub = commands.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(execute=module.execute)
    return parser


def exit_code(error: BaseException) -> int:
    """2 for what the caller can fix (a ``ValueError``/``LookupError`` kind of project error:
    bad key, time, configuration, unknown table), 3 for a failing storage."""
    return EXIT_BAD_INPUT if isinstance(error, (ValueError, LookupError)) else EXIT_STORAGE_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (never raises for bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2), already printed
        return int(stop.code or 0)
    try:
        return int(args.execute(args))
    except ProjectError as error:
        print(f"cb-storage {args.command}: error: {error}", file=sys.stderr)
        return exit_code(error)
    except BrokenPipeError:  # `cb-storage coverage | head`: the reader left, not an error
        return EXIT_OK
    except OSError as error:  # an output file that cannot be written
        print(f"cb-storage {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


def run() -> NoReturn:
    """The console script: :func:`main`, then leave the process at once.

    ``os._exit`` after flushing: delta-rs' Rust threads can abort a short process at
    interpreter shutdown (delta-rs issue 2184, exit code 134, see STACK-NOTES), which would
    turn a successful run into a failure for cron. Every output file is closed by then.
    """
    try:
        code = main()
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # `cb-storage coverage | head`: the reader left, not an error
        code = EXIT_OK
    os._exit(code)
