"""Fetch and transform an exchange-day run in chunks, one instrument's failure never failing the others.

The ``exchange`` profile's raw asset fetches each exchange-day of its run in blocks of
``chunk_instruments`` instruments (:func:`fetch_in_chunks`), checks every block, and parks it
in an :class:`~cb_storage_dagster.storage.spool.ArrowSpool` on local disk, so the run's
memory holds one block whatever its size. Per instrument:

* a transient failure (an outage, a timeout; by type, :mod:`cb_storage_dagster.retry`) is
  retried in the step by the one backoff loop under :data:`INSTRUMENT_RETRY_POLICY`;
* a permanent failure (an unknown symbol, a day before the listing, retries exhausted) or
  rows that break the data type's rules leave that instrument-day out: it becomes an
  :class:`InstrumentFailure` (error type and a redacted message) and the write excludes it,
  so what is stored for it stays as it was;
* any other exception (a bug) fails the step as before.

A source that can fetch a block at once (``fetch_many``; the synthetic source) is asked for the
block first; only when that fails is the block fetched instrument by instrument to find
which one failed.

:func:`transform_in_chunks` builds a downstream asset's rows (candles) chunk by chunk into a
spool in the same way. Both count rows (and minutes) per instrument-day as they go, so the
asset publishes exact per-instrument metadata without ever holding the run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import dagster as dg
import pandas as pd
import pyarrow as pa

from cb_storage_dagster.domain.chunks import InstrumentFailure, MarketDataChunks, instrument_blocks
from cb_storage_dagster.domain.errors import ProjectError
from cb_storage_dagster.domain.keys import DataType, PartitionSlot
from cb_storage_dagster.domain.schemas import normalize
from cb_storage_dagster.domain.scope import WriteScope, check_rows_in_scope
from cb_storage_dagster.orchestration.asset_metadata import failure_metadata, metadata_of_counts
from cb_storage_dagster.orchestration.failures import permanent_failures
from cb_storage_dagster.orchestration.quality import instrument_day_counts
from cb_storage_dagster.retry import RetryPolicy, run_with_retries
from cb_storage_dagster.retry.transient import Transient, transient_by_type
from cb_storage_dagster.sources.base import MarketDataSource
from cb_storage_dagster.storage.backends.azure.redaction import redact
from cb_storage_dagster.storage.spool import ArrowSpool

__all__ = [
    "INSTRUMENT_RETRY_POLICY",
    "ExchangeDay",
    "fetch_in_chunks",
    "fetch_run_in_chunks",
    "fetches_many_itself",
    "transform_in_chunks",
]

INSTRUMENT_RETRY_POLICY = RetryPolicy(attempts=3, backoff_seconds=1.0, max_backoff_seconds=8.0, max_wait_seconds=30.0)
"""Retries of one instrument's transient fetch failure inside the step (~1 s, ~2 s apart)."""
_MESSAGE_CHARS = 300

FetchMany = Callable[[str, Sequence[str], dt.date], pd.DataFrame]
FetchOne = Callable[[str, str, dt.date], pd.DataFrame]
ExchangeDay = tuple[str, dt.date, Sequence[str]]
"""``(exchange, day, coins)``: one exchange-day of a run and the coins it fetches."""


Counts = dict[tuple[str, str, dt.date], int]


def _add(total: Counts, more: Counts) -> None:
    for key, n in more.items():
        total[key] = total.get(key, 0) + n


def fetch_in_chunks(
    work: Sequence[ExchangeDay],
    data_type: DataType,
    fetch_one: FetchOne,
    *,
    fetch_many: FetchMany | None,
    chunk_instruments: int,
    secrets: Sequence[str] = (),
    policy: RetryPolicy = INSTRUMENT_RETRY_POLICY,
    log: Callable[[str], None] = lambda _message: None,
) -> tuple[MarketDataChunks, Counts]:
    """Every exchange-day of ``work`` fetched block by block into spooled chunks (see the
    module docstring), and the rows per instrument-day; ``secrets`` are cut out of failure
    messages."""
    spool = ArrowSpool()
    slots: list[PartitionSlot] = []
    failures: list[InstrumentFailure] = []
    rows: Counts = {}
    for exchange, day, coins in work:
        for block in instrument_blocks(list(coins), chunk_instruments):
            block_slots = [PartitionSlot(exchange, coin, day) for coin in block]
            slots.extend(block_slots)
            table, failed = _fetch_block(exchange, day, block, data_type, fetch_one, fetch_many, policy, secrets)
            spool.append(table)
            _add(rows, instrument_day_counts(table, gaps=False)[0])
            failures.extend(failed)
            for failure in failed:
                log(f"Left out {failure.instrument} {failure.date}: {failure.error_type}: {failure.message}")
    return MarketDataChunks(spool.chunks, tuple(slots), tuple(failures), release=spool.close), rows


def transform_in_chunks(
    chunks: MarketDataChunks,
    transform: Callable[[pd.DataFrame], pd.DataFrame],
    slots: Sequence[PartitionSlot],
    *,
    gaps: bool = False,
) -> tuple[MarketDataChunks, dict[str, object]]:
    """``transform`` applied chunk by chunk into spooled chunks, and the per-instrument
    metadata of the result (:func:`metadata_of_counts`; ``gaps``: minutes without a row)."""
    spool = ArrowSpool()
    rows: Counts = {}
    minutes: Counts = {}
    for chunk in chunks:
        out = transform(chunk.to_pandas())
        counted_rows, counted_minutes = instrument_day_counts(out, gaps=gaps)
        _add(rows, counted_rows)
        _add(minutes, counted_minutes)
        spool.append(pa.Table.from_pandas(out, preserve_index=False))
    chunked = MarketDataChunks(spool.chunks, tuple(slots), release=spool.close)
    return chunked, metadata_of_counts(rows, minutes, slots, gaps=gaps)


def _fetch_block(
    exchange: str, day: dt.date, block: list[str], data_type: DataType, fetch_one: FetchOne,
    fetch_many: FetchMany | None, policy: RetryPolicy, secrets: Sequence[str],
) -> tuple[pa.Table, list[InstrumentFailure]]:
    if fetch_many is not None:
        try:
            whole = _checked(fetch_many(exchange, block, day), data_type, exchange, block, day)
            return whole, []
        except Exception as exc:  # noqa: BLE001 - found out per instrument below, or re-raised there
            if _verdict(exc) is None:
                raise
    tables: list[pa.Table] = []
    failures: list[InstrumentFailure] = []
    for coin in block:
        try:
            frame = run_with_retries(
                lambda coin=coin: fetch_one(exchange, coin, day), policy=policy, classify=_transient,
                describe=f"fetching {exchange}:{coin} for {day}",
            )
            tables.append(_checked(frame, data_type, exchange, [coin], day))
        except Exception as exc:  # noqa: BLE001 - a bug is re-raised just below
            verdict = _verdict(exc)
            if verdict is None:
                raise
            error_type, message = verdict
            failures.append(InstrumentFailure(exchange, coin, day, error_type,
                                              redact(message, secrets, limit=_MESSAGE_CHARS)))
    tables = [t for t in tables if t.num_rows]
    return (pa.concat_tables(tables) if tables else pa.table({})), failures


def _checked(frame: pd.DataFrame | pa.Table, data_type: DataType, exchange: str, coins: list[str], day: dt.date) -> pa.Table:
    """The rows in the storage schema, refused (typed error) if they break a rule or fall
    outside these instrument-days."""
    table = normalize(frame, data_type, exchange=exchange, coin=coins[0] if len(coins) == 1 else None)
    check_rows_in_scope(table, WriteScope.of_slots(PartitionSlot(exchange, c, day) for c in coins))
    return table.drop_columns([c for c in ("date", "month") if c in table.column_names]) if table.num_rows else table


def _project_error(exc: BaseException) -> ProjectError | None:
    if isinstance(exc, ProjectError):
        return exc
    cause = exc.__cause__
    return cause if isinstance(exc, dg.Failure) and isinstance(cause, ProjectError) else None


def _transient(exc: BaseException) -> Transient | None:
    """Transient by type; a source's ``dg.Failure`` by the error it wraps, else its ``allow_retries``."""
    error = _project_error(exc)
    if error is not None:
        return transient_by_type(error)
    if isinstance(exc, dg.Failure) and exc.allow_retries:
        return Transient(reason="the source says it may succeed when retried")
    return None


def _verdict(exc: BaseException) -> tuple[str, str] | None:
    """``(error type, message)`` of a failure that leaves one instrument out, or ``None``
    for an exception that is not a source's or the data's (re-raised: a bug fails the step)."""
    error = _project_error(exc)
    if error is not None:
        return type(error).__name__, str(error)
    if isinstance(exc, dg.Failure):
        return "Failure", exc.description or "failed"
    return None


def fetch_run_in_chunks(
    context: dg.AssetExecutionContext, source: MarketDataSource, slots: Sequence[PartitionSlot], block_size: int
) -> MarketDataChunks:
    """The ``trades`` of a run's instrument-days in chunks (:func:`fetch_in_chunks`), with
    the run's metadata: rows per instrument-day and the failed instrument-days."""
    with permanent_failures(context.instance, context.run.run_id):
        work: dict[tuple[str, dt.date], list[str]] = {}
        for slot in slots:
            work.setdefault((slot.exchange, slot.date), []).append(slot.coin)
        chunks, rows = fetch_in_chunks(
            [(e, d, c) for (e, d), c in work.items()], DataType.TRADES, source.fetch_trades,
            fetch_many=source.fetch_trades_many if fetches_many_itself(type(source)) else None,
            chunk_instruments=block_size, log=context.log.warning,
        )
    context.add_output_metadata({
        "partition_count": len(context.partition_keys), "instrument_count": len({(s.exchange, s.coin) for s in slots}),
        "chunk_instruments": block_size, **metadata_of_counts(rows, {}, slots, gaps=False),
        **failure_metadata(chunks.failures),
    })
    return chunks


def fetches_many_itself(source: type[MarketDataSource]) -> bool:
    """Whether ``source`` fetches a block of coins its own way, consistent with its
    ``fetch_trades``: the class that defines ``fetch_trades_many`` is not the interface's
    default and is at least as derived as the one defining ``fetch_trades`` (a subclass that
    changes ``fetch_trades`` alone must be asked coin by coin)."""
    def owner(name: str) -> type:
        return next(cls for cls in source.__mro__ if name in vars(cls))

    many = owner("fetch_trades_many")
    return many is not MarketDataSource and issubclass(many, owner("fetch_trades"))
