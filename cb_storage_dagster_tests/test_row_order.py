"""Whether a read's rows are in (exchange, coin, time) order is decided exactly
(``storage/delta/sorting.py``): the check by instrument runs used for candles gives the same
answer as sorting the rows and comparing, on tables in order and on every kind of disorder."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa
import pytest

from cb_storage_dagster.storage.delta import sorting
from cb_storage_dagster.storage.delta.sorting import is_sorted, sort_rows

KEYS = ["exchange", "coin", "timestamp"]
START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def candles(rows: list[tuple[str, str, int]], chunks: int = 1) -> pa.Table:
    exchange, coin, minute = zip(*rows)
    table = pa.table({
        "exchange": pa.array(exchange, pa.string()), "coin": pa.array(coin, pa.string()),
        "timestamp": pa.array([START + dt.timedelta(minutes=m) for m in minute], pa.timestamp("us", "UTC")),
        "close": pa.array([float(m) for m in minute]),
    })
    size = max(1, len(rows) // chunks)
    return pa.concat_tables([table.slice(i, size) for i in range(0, len(rows), size)])


def by_sorting(table: pa.Table) -> bool:
    return table.sort_by([(key, "ascending") for key in KEYS]).equals(table.combine_chunks())


IN_ORDER = [("binance", "BTC", 0), ("binance", "BTC", 1), ("binance", "BTC", 1), ("binance", "ETH", 0),
            ("binance", "ETH", 5), ("kraken", "ADA", 0), ("kraken", "BTC", 3)]


@pytest.mark.parametrize("rows, expected", [
    (IN_ORDER, True),
    ([IN_ORDER[1], IN_ORDER[0]] + IN_ORDER[2:], False),  # time falls within an instrument
    (IN_ORDER[:3] + [("binance", "AAA", 9)] + IN_ORDER[4:], False),  # a coin out of order
    (IN_ORDER[:5] + [("coinbase", "ZZZ", 0), ("binance", "ZZZ", 1)], False),  # an exchange goes back
    ([("binance", "BTC", 9), ("binance", "ETH", 0)], True),  # time may fall where the coin changes
], ids=["in order", "time falls", "coin back", "exchange back", "time falls at a new coin"])
@pytest.mark.parametrize("chunks", [1, 3])
def test_the_run_check_agrees_with_sorting(rows, expected, chunks):
    table = candles(rows, chunks)
    assert sorting._by_instrument_runs(table, KEYS)
    assert is_sorted(table, KEYS, single_instrument=False) is expected is by_sorting(table)


def test_random_tables_are_judged_as_sorting_judges_them():
    chooser = random.Random(7)
    for _ in range(200):
        rows = sorted((chooser.choice(["binance", "kraken"]), chooser.choice(["BTC", "ETH", "SOL"]),
                       chooser.randrange(5)) for _ in range(chooser.randrange(2, 12)))
        if chooser.random() < 0.6:  # disturb: swap two rows
            i, j = chooser.randrange(len(rows)), chooser.randrange(len(rows))
            rows[i], rows[j] = rows[j], rows[i]
        table = candles(rows, chooser.choice([1, 2]))
        assert is_sorted(table, KEYS, single_instrument=False) == by_sorting(table), rows


def test_many_instrument_changes_take_the_generic_check(monkeypatch):
    monkeypatch.setattr(sorting, "RUN_CHECK_MAX_CHANGES", 1)
    assert is_sorted(candles(IN_ORDER), KEYS, single_instrument=False)
    assert not is_sorted(candles([IN_ORDER[3], IN_ORDER[0]]), KEYS, single_instrument=False)


def test_unsorted_rows_come_back_sorted():
    table = candles([IN_ORDER[i] for i in (6, 2, 0, 4, 1, 5, 3)])
    assert by_sorting(sort_rows(table, KEYS, single_instrument=False).combine_chunks())


@pytest.mark.parametrize("chunks", [1, 2])
def test_one_instruments_times_are_judged_as_sorting_judges_them(chunks):
    """A read of one instrument checks only its times (one chunk: compared on the buffer,
    a slice of a larger array included)."""
    chooser = random.Random(11)
    for _ in range(200):
        minutes = sorted(chooser.randrange(6) for _ in range(chooser.randrange(2, 10)))
        if chooser.random() < 0.6:
            i, j = chooser.randrange(len(minutes)), chooser.randrange(len(minutes))
            minutes[i], minutes[j] = minutes[j], minutes[i]
        table = candles([("binance", "BTC", m) for m in [99, *minutes]], chunks).slice(1)  # (an offset)
        assert is_sorted(table, KEYS, single_instrument=True) == by_sorting(table), minutes
