"""Writes and reads of :class:`MarketDataChunks`: bounded memory whatever a run's size.

A write of chunks checks each chunk as it streams into the commit (normalize, rows inside
the scope, keys unique within the chunk, and no exchange/coin/day in two chunks, which makes
the keys unique across the run); the first chunk that fails aborts the write before the
commit. A read of chunks cuts the scope into blocks of ``chunk_instruments`` instruments x
one day and reads them one at a time (each an exchange-day with one ``coin IN`` filter and
the block's first and last coin as a range, which lets the reader skip the row groups of an
exchange-layout file that hold other coins: pyarrow prunes row groups by ranges, not by
``IN``), only the columns the consumer asks for (:meth:`MarketDataChunks.select`).

The manager (:class:`~cb_storage_dagster.storage.manager.StorageManagerImpl`) calls these;
they hold no state of their own.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from cb_storage_dagster.domain.chunks import MarketDataChunks, instrument_blocks
from cb_storage_dagster.domain.errors import InvalidDataError
from cb_storage_dagster.domain.keys import DataType, PartitionSlot
from cb_storage_dagster.domain.schemas import DATE_COLUMN, normalize
from cb_storage_dagster.domain.scope import WriteScope, check_rows_in_scope

if TYPE_CHECKING:
    from cb_storage_dagster.storage.manager import StorageManagerImpl

__all__ = ["block_filters", "checked_chunks", "read_chunks", "scope_blocks"]


def checked_chunks(
    chunks: MarketDataChunks, data_type: DataType, scope: WriteScope
) -> Callable[[], Iterator[pa.Table]]:
    """A re-iterable stream of ``chunks`` normalized and checked against ``scope``, one at a time.

    Raises (while iterating):
        SchemaMismatchError, InvalidDataError: a chunk's rows break the data type's rules, or
            two chunks hold rows of the same exchange/coin/day.
        PartitionMismatchError: a chunk holds rows outside ``scope``.
    """
    exchange, coin = scope.sole_instrument or (None, None)

    def opened() -> Iterator[pa.Table]:
        seen: dict[tuple[str, str, dt.date], int] = {}
        for index, chunk in enumerate(chunks):
            normalized = normalize(chunk, data_type, exchange=exchange, coin=coin)
            if normalized.num_rows == 0:
                continue
            check_rows_in_scope(normalized, scope)
            slots = normalized.select(["exchange", "coin", DATE_COLUMN]).group_by(
                ["exchange", "coin", DATE_COLUMN]).aggregate([])
            for row in slots.to_pylist():
                key = (row["exchange"], row["coin"], row[DATE_COLUMN])
                if key in seen:
                    raise InvalidDataError(
                        f"Chunks {seen[key]} and {index} both hold rows of {key[0]}/{key[1]}/{key[2]}: a chunk "
                        "must hold whole instrument-days, so that keys are unique across the run. Nothing "
                        "was written. Cut the data by instrument and day."
                    )
                seen[key] = index
            yield normalized

    return opened


Block = tuple[WriteScope, "list[str] | None"]


def scope_blocks(
    scope: WriteScope, coins_of: Callable[[str], list[str]], chunk_instruments: int
) -> list[Block]:
    """``scope`` cut into blocks of at most ``chunk_instruments`` instruments x one day, each
    an exchange-day and the coins to keep of it.

    Exchange/coin/day slots are grouped by exchange-day; an exchange-day becomes the coins
    ``coins_of(exchange)`` lists. A block is read as its exchange-day with one ``coin IN``
    filter: a scope of hundreds of slots would become a filter expression of hundreds of
    terms that pyarrow simplifies against every file (5 s for 200 files). Whole days of
    every exchange, whole instruments and the whole table stay one block (``None``: no coin
    filter), since their extent is not known in advance.

    >>> day = dt.date(2024, 1, 2)
    >>> blocks = scope_blocks(WriteScope.of_exchange_days([("b", day)]), lambda e: ["A", "B", "C"], 2)
    >>> [(block.describe(), coins) for block, coins in blocks]
    [(['b/*/2024-01-02'], ['A', 'B']), (['b/*/2024-01-02'], ['C'])]
    """
    if scope.whole_table or scope.instruments or any(d.exchange is None for d in scope.days):
        return [(scope, None)]
    by_exchange_day: dict[tuple[str, dt.date], set[str]] = defaultdict(set)
    for slot in scope.slots:
        by_exchange_day[(slot.exchange, slot.date)].add(slot.coin)
    for day in scope.days:
        assert day.exchange is not None
        by_exchange_day[(day.exchange, day.date)].update(coins_of(day.exchange))
    blocks: list[Block] = []
    for (exchange, day), coins in sorted(by_exchange_day.items(), key=lambda item: (item[0][1], item[0][0])):
        wanted = [c for c in sorted(coins) if scope.covers(PartitionSlot(exchange, c, day))]
        for block in instrument_blocks(wanted, chunk_instruments):
            blocks.append((WriteScope.of_exchange_days([(exchange, day)]), block))
    return blocks


def block_filters(coins: list[str] | None) -> list[tuple[str, str, object]] | None:
    """The filters of a block's coins: ``IN`` them, and between the first and the last (the
    range prunes row groups; see the module docstring).

    >>> block_filters(["ETH", "BTC"])
    [('coin', 'in', ['ETH', 'BTC']), ('coin', '>=', 'BTC'), ('coin', '<=', 'ETH')]
    """
    if coins is None:
        return None
    return [("coin", "in", coins), ("coin", ">=", min(coins)), ("coin", "<=", max(coins))]


def read_chunks(
    manager: StorageManagerImpl,
    data_type: DataType,
    scope: WriteScope,
    *,
    table: str | None,
    chunk_instruments: int,
    as_of_version: int | None = None,
) -> MarketDataChunks:
    """``scope`` as chunks read one block at a time (see :func:`scope_blocks`), at the table
    version ``as_of_version`` or else the latest (each block reads the cached table). The
    chunks can be narrowed to some columns before they are read (:meth:`MarketDataChunks.select`)."""

    def reading(columns: tuple[str, ...] | None) -> Callable[[], Iterator[pa.Table]]:
        def opened() -> Iterator[pa.Table]:
            listed: dict[str, list[str]] = {}

            def coins_of(exchange: str) -> list[str]:
                if exchange not in listed:
                    listed[exchange] = manager.list_coins(exchange, data_type, table=table)
                return listed[exchange]

            for block, coins in scope_blocks(scope, coins_of, chunk_instruments):
                yield manager.read_partitions(
                    data_type, block, table=table, as_of_version=as_of_version, filters=block_filters(coins),
                    columns=list(columns) if columns is not None else None,
                )

        return opened

    return MarketDataChunks(reading(None), project=reading)
