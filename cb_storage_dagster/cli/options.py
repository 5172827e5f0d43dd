"""What every command shares: the storage it opens (``--root`` or the ``CB_STORAGE_*``
environment), the parsing of instruments, days and instants, and plain-text tables.

Bad input raises the project's typed errors (``ConfigurationError``, ``TimeRangeError``,
``InvalidKeyError``, ``NotFoundError``), which :mod:`.main` turns into a message and exit 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from cb_storage_dagster.domain.errors import ConfigurationError, NotFoundError, TimeRangeError
from cb_storage_dagster.domain.identifiers import normalize_identifier
from cb_storage_dagster.domain.keys import decode_instrument, parse_instruments
from cb_storage_dagster.settings import PipelineSettings, StorageConfig
from cb_storage_dagster.storage.inventory import list_tables
from cb_storage_dagster.storage.manager import StorageManagerImpl
from cb_storage_dagster.storage.times import utc_instant

__all__ = [
    "add_storage_options",
    "existing_table",
    "human_bytes",
    "open_manager",
    "parse_day",
    "parse_instant",
    "render_table",
    "universe",
]


def add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root", type=Path, default=None,
        help="local storage root (default: the CB_STORAGE_* environment, e.g. CB_STORAGE_LOCAL_ROOT_PATH)",
    )


def open_manager(args: argparse.Namespace) -> StorageManagerImpl:
    """The storage manager of ``--root`` (a local folder that must exist) or of the
    ``CB_STORAGE_*`` environment (local or Azure)."""
    root: Path | None = args.root
    if root is not None:
        if not root.is_dir():
            raise ConfigurationError(
                f"--root {str(root)!r} is not an existing folder: pass the folder that holds the tables "
                "(e.g. ./data, what `make run` writes)."
            )
        config = StorageConfig.load(backend_type="local", local_root_path=root)
    else:
        config = StorageConfig.load()
        if config.backend_type == "local" and not config.local_root_path.is_dir():  # type: ignore[union-attr]
            raise ConfigurationError(
                f"{StorageConfig.variable('local_root_path')} {str(config.local_root_path)!r} is not an "
                "existing folder: point it (or --root) at the folder that holds the tables."
            )
    return config.build_manager()


def existing_table(manager: StorageManagerImpl, table: str) -> str:
    """``table``, validated, if the storage holds it; else :class:`NotFoundError` naming the
    tables it does hold."""
    name = normalize_identifier(table)
    if manager.stored_format(name) is None:
        known = list_tables(manager.backend)
        raise NotFoundError(
            f"No table {name!r} in {manager.backend.describe()}; its tables are: {', '.join(known) or 'none'}."
        )
    return name


def universe(instruments: str | None) -> list[tuple[str, str]]:
    """``--instruments`` (``binance:BTC,kraken:ETH``) or, without it, the configured universe
    (``CB_STORAGE_INSTRUMENTS_FILE`` / ``CB_STORAGE_INSTRUMENTS``)."""
    keys = parse_instruments(instruments) if instruments is not None else PipelineSettings.load().instrument_keys()
    if not keys:
        raise ConfigurationError("--instruments lists no instrument: write <exchange>:<coin>,... e.g. binance:BTC.")
    return [decode_instrument(key) for key in keys]


def parse_day(text: str, what: str) -> dt.date:
    """A UTC day written ``YYYY-MM-DD``."""
    try:
        return dt.date.fromisoformat(text) if len(text) == 10 else _not_a_day(text, what)
    except ValueError:
        return _not_a_day(text, what)


def _not_a_day(text: str, what: str) -> dt.date:
    raise TimeRangeError(f"{what} {text!r} is not a UTC day: write YYYY-MM-DD, e.g. 2024-01-02.")


def parse_instant(text: str, what: str) -> dt.datetime:
    """An ISO instant with its offset (``2024-01-02T00:00Z``, ``...+01:00``), as UTC; a naive
    one raises :class:`TimeRangeError` (times are never guessed)."""
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TimeRangeError(f"{what} {text!r} is not an ISO instant: write e.g. 2024-01-02T00:00Z.") from None
    if parsed.tzinfo is None:
        raise TimeRangeError(
            f"{what} {text!r} has no time zone: times are never guessed, write it with an offset, "
            f"e.g. {text}Z (UTC) or {text}+01:00."
        )
    return utc_instant(parsed, what)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, columns aligned, numbers right-aligned.

    >>> print(render_table(["table", "files"], [["ohlcv_1m", 12]]))
    table     files
    ohlcv_1m     12
    """
    cells = [[str(c) for c in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in cells[1:]) and len(cells) > 1 for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def human_bytes(size: int | None) -> str:
    """``1536`` -> ``'1.5 KiB'``; ``None`` (unknown) -> ``'-'``.

    >>> human_bytes(1536), human_bytes(None)
    ('1.5 KiB', '-')
    """
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _is_number(text: str) -> bool:
    return text.replace(",", "").replace(".", "", 1).lstrip("-").isdigit()
