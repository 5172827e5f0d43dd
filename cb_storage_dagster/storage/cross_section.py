"""Cross-sectional reads: many instruments (or a whole exchange) over a time range in one scan.

:func:`get_many` is what :meth:`IStorageManager.get_many
<cb_storage_dagster.storage.interfaces.IStorageManager.get_many>` runs. It turns a selection
(an exchange name, or a list of instruments) and a ``[start, end)`` range into a read scope
and row filters, and hands them to the manager's one pruned read (``read_partitions``):

* an exchange: every instrument of its days (``WriteScope.of_exchange_days``);
* a few instruments (at most :data:`SLOT_SCOPE_LIMIT`): their exact instrument-days, so
  the planner opens only their files, and from local files each instrument's rows are taken
  by position as a read of that instrument alone takes them
  (:func:`.delta.positional_read.reads_coins_by_position`);
* many instruments: the days of their exchanges plus a ``coin IN (...)`` row filter per
  exchange, so that planning stays one vectorized pass however many instruments are asked for
  (files of other coins are skipped by their partition values or coin statistics).

Rows come back sorted by exchange, coin and timestamp, as pandas or Arrow.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from cb_storage_dagster.domain.errors import InvalidKeyError
from cb_storage_dagster.domain.keys import DataType, PartitionSlot, decode_instrument, validate_name
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.storage.frame_conversion import as_frame
from cb_storage_dagster.storage.sql import coin_filter, validate_filters
from cb_storage_dagster.storage.times import days_in_range, time_range

if TYPE_CHECKING:
    import pandas as pd

    from cb_storage_dagster.storage.interfaces import Filter, IStorageManager

SLOT_SCOPE_LIMIT = 64
"""Up to this many instruments a read is planned per instrument (exact file pruning); above
it, per exchange with a coin filter (per-instrument planning would cost a pass over the log's
add actions per instrument)."""

Selection = str | Iterable[str | tuple[str, str]]
"""An exchange name (``"binance"``), or instruments as ``"binance:BTC"`` keys or
``("binance", "BTC")`` pairs."""


def parse_selection(selection: Any) -> tuple[str | None, list[tuple[str, str]]]:
    """``(exchange, [])`` for an exchange name, ``(None, instruments)`` for instruments
    (validated, de-duplicated, in the order given).

    >>> parse_selection("binance")
    ('binance', [])
    >>> parse_selection(["binance:BTC", ("kraken", "ETH"), "binance:BTC"])
    (None, [('binance', 'BTC'), ('kraken', 'ETH')])

    Raises:
        InvalidKeyError: a bad name, an instrument that is neither ``"exchange:coin"`` nor a
            pair, or an instrument key passed where an exchange or a list is expected.
    """
    if isinstance(selection, str):
        if ":" in selection:
            raise InvalidKeyError(
                f"{selection!r} looks like one instrument; pass instruments as a list "
                f"(e.g. [{selection!r}]) or an exchange name alone (e.g. 'binance')."
            )
        return validate_name(selection, "exchange"), []
    if isinstance(selection, (bytes, dict)) or not isinstance(selection, Iterable):
        raise InvalidKeyError(
            f"Select instruments with an exchange name or a list of 'exchange:coin' keys, not "
            f"{type(selection).__name__}."
        )
    instruments: dict[tuple[str, str], None] = {}
    for item in selection:
        if isinstance(item, str):
            pair = decode_instrument(item)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            pair = (validate_name(item[0], "exchange"), validate_name(item[1], "coin"))
        else:
            raise InvalidKeyError(
                f"Instrument {item!r} must be an 'exchange:coin' key or an (exchange, coin) pair."
            )
        instruments.setdefault(pair)
    return None, list(instruments)


def read_requests(
    selection: Any, start: dt.datetime, end: dt.datetime
) -> list[tuple[WriteScope, list[Filter]]]:
    """The scopes and extra row filters that read ``selection`` over ``[start, end)`` (one
    per exchange when many instruments are asked for; none when nothing can match)."""
    exchange, instruments = parse_selection(selection)
    days = days_in_range(start, end)
    if not days:
        return []
    if exchange is not None:
        return [(WriteScope.of_exchange_days((exchange, d) for d in days), [])]
    if len(instruments) <= SLOT_SCOPE_LIMIT:
        if not instruments:
            return []
        return [(WriteScope.of_slots(PartitionSlot(e, c, d) for e, c in instruments for d in days), [])]
    coins: dict[str, list[str]] = defaultdict(list)
    for e, c in instruments:
        coins[e].append(c)
    return [
        (WriteScope.of_exchange_days((e, d) for d in days), [coin_filter(coins[e])])
        for e in sorted(coins)
    ]


def get_many(
    manager: IStorageManager,
    data_type: DataType | str,
    selection: Selection,
    start_time: dt.datetime,
    end_time: dt.datetime,
    *,
    columns: Sequence[str] | None = None,
    filters: Sequence[Filter] | None = None,
    as_arrow: bool = False,
    table: str | None = None,
    format_hint: str | None = None,
) -> pd.DataFrame | pa.Table:
    """Rows of every selected instrument with ``start_time <= timestamp < end_time``, sorted
    by exchange, coin and timestamp (see :meth:`IStorageManager.get_many`)."""
    data_type = DataType.parse(data_type)
    start, end = time_range(start_time, end_time)
    checked = validate_filters(filters)
    parts = [
        manager.read_partitions(
            data_type, scope, filters=checked + extra, columns=columns, format_hint=format_hint,
            table=table, time_range=(start, end),
        )
        for scope, extra in read_requests(selection, start, end)
    ]
    if not parts:  # nothing selected: the empty result, in the shape of a read
        parts = [manager.read_partitions(data_type, WriteScope(), columns=columns, table=table)]
    # One read per exchange, exchanges in sorted order: the concatenation stays sorted.
    result = parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="permissive")
    return result if as_arrow else as_frame(result)


__all__ = ["SLOT_SCOPE_LIMIT", "Selection", "get_many", "parse_selection", "read_requests"]
