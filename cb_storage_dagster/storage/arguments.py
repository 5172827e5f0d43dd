"""The manager's table, mode and format arguments, checked once (times: :mod:`.times`)."""

from __future__ import annotations

from typing import Literal

from cb_storage_dagster.domain.errors import UnsupportedFormatError, UnsupportedWriteModeError
from cb_storage_dagster.domain.identifiers import normalize_identifier
from cb_storage_dagster.domain.keys import DataType, validate_name
from cb_storage_dagster.storage.format import FORMATS

WriteMode = Literal["replace", "merge"]
WRITE_MODES: tuple[str, ...] = ("replace", "merge")


def parse_write_mode(value: str | None) -> WriteMode:
    """``replace`` (the default) or ``merge``; anything else is refused.

    >>> parse_write_mode(" Merge ")
    'merge'
    """
    name = "replace" if value is None else str(value).strip().lower()
    if name not in WRITE_MODES:
        raise UnsupportedWriteModeError(
            f"Unknown write mode {value!r}; use 'replace' (the partitions hold exactly the data) "
            "or 'merge' (upsert the rows by their natural key)."
        )
    return name  # type: ignore[return-value]


def parse_format(value: str | None) -> str | None:
    """A format name (``delta``, ``parquet``, ``json``), or ``None`` for "not given".

    >>> parse_format("Parquet"), parse_format(None)
    ('parquet', None)
    """
    if value is None:
        return None
    name = str(value).strip().lower()
    if name not in FORMATS:
        raise UnsupportedFormatError(f"Unknown format {value!r}; use one of: {', '.join(FORMATS)}.")
    return name


def table_name(data_type: DataType | str, table: str | None = None) -> str:
    """The table a data type is stored in: ``table`` if given (validated), else the type.

    >>> table_name("OHLCV"), table_name("ohlcv", "ohlcv_1d")
    ('ohlcv', 'ohlcv_1d')
    """
    if table is None:
        return DataType.parse(data_type).value
    clean = normalize_identifier(table)
    for segment in clean.split("/"):
        validate_name(segment, "table name segment")
    return clean
