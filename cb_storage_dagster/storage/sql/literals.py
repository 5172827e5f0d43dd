"""SQL literals and identifiers: every value that reaches a SQL string passes here.

A value is escaped by :func:`sql_literal` (strings single-quoted with quotes doubled; control
characters, non-finite numbers and other types refused); a column name is checked against
:data:`_COLUMN_PATTERN` by :func:`validate_column` and double-quoted by :func:`quote_identifier`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from typing import Any

from cb_storage_dagster.domain.errors import InvalidKeyError
from cb_storage_dagster.storage.times import utc

_COLUMN_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def sql_literal(value: Any) -> str:
    """A SQL literal for ``value``; strings are single-quoted with quotes doubled.

    >>> sql_literal("O'Neil")
    "'O''Neil'"
    """
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidKeyError(f"Non-finite number {value!r} cannot be used in a predicate.")
        return repr(value)
    if isinstance(value, dt.datetime):
        return f"'{utc(value, 'value').isoformat()}'"
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'"
    if isinstance(value, str):
        if any(ord(c) < 32 for c in value):
            raise InvalidKeyError("Control characters are not allowed in predicate values.")
        return "'" + value.replace("'", "''") + "'"
    raise InvalidKeyError(f"Unsupported predicate value type {type(value).__name__}.")


def validate_column(name: Any) -> str:
    if not isinstance(name, str) or not _COLUMN_PATTERN.fullmatch(name):
        raise InvalidKeyError(
            f"Invalid column name {name!r}: use letters, digits and '_' (not starting with a digit)."
        )
    return name


def quote_identifier(name: Any) -> str:
    """A validated column name, double-quoted for SQL (DataFusion matches it case-sensitively).

    >>> quote_identifier("timestamp")
    '"timestamp"'
    """
    return f'"{validate_column(name)}"'


def date_list(days: Iterable[dt.date]) -> str:
    return ", ".join(sql_literal(d.isoformat()) for d in sorted(set(days)))


def timestamp_literal(value: dt.datetime) -> str:
    return f"'{value.astimezone(dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}'"


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
