"""End to end: the real `dagster dev` (webserver + daemon + queued run coordinator) runs
backfills launched with the GraphQL mutation the UI uses, and the Delta tables hold exactly
the backfilled partitions."""

from __future__ import annotations

import datetime as dt
import itertools

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from cb_storage_dagster.sources.synthetic import SyntheticMarketDataSource
from cb_storage_dagster_tests.support.dagster_dev import DagsterDev

pytestmark = pytest.mark.slow

INSTRUMENTS = ["binance:BTC", "binance:ETH", "coinbase:BTC", "coinbase:ETH"]


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    server = DagsterDev(tmp_path_factory.mktemp("dagster_dev"), env={"CB_STORAGE_INSTRUMENTS": ",".join(INSTRUMENTS)})
    with server:
        server.add_dynamic_partitions("instruments", INSTRUMENTS)
        yield server
    assert server.process is not None and server.process.poll() is not None
    assert server.leftover_processes() == []  # webserver, daemon, code servers, run workers


def rows_per_partition(table_path) -> dict[tuple[str, str, dt.date], int]:
    data = pa.table(DeltaTable(str(table_path)).to_pyarrow_dataset().to_table(columns=["exchange", "coin", "date"]))
    counts = data.group_by(["exchange", "coin", "date"]).aggregate([([], "count_all")]).to_pylist()
    return {(r["exchange"], r["coin"], r["date"]): r["count_all"] for r in counts}


def partition_keys(days: list[str], instruments: list[str]) -> list[str]:
    return [f"{day}|{instrument}" for day in days for instrument in instruments]


def slots(days: list[str], instruments: list[str]) -> set[tuple[str, str, dt.date]]:
    return {(*i.split(":"), dt.date.fromisoformat(d)) for d in days for i in instruments}


def in_table(counts: dict, days: list[str]) -> dict:
    wanted = {dt.date.fromisoformat(d) for d in days}
    return {k: v for k, v in counts.items() if k[2] in wanted}


def test_a_ui_backfill_fills_the_delta_tables_exactly_once(dev):
    days, instruments = ["2024-03-01", "2024-03-02", "2024-03-03"], INSTRUMENTS[:2]
    partitions = partition_keys(days, instruments)

    first = dev.wait_for_backfill(dev.launch_backfill(["trades", "ohlcv_1m"], partitions, "2 instruments x 3 days"))
    assert first["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), (first, dev.log_tail())
    assert first["runs"] and all(r["status"] == "SUCCESS" for r in first["runs"])
    trades_first = in_table(rows_per_partition(dev.data / "trades"), days)
    candles_first = in_table(rows_per_partition(dev.data / "ohlcv_1m"), days)
    assert set(trades_first) == set(candles_first) == slots(days, instruments)
    assert all(1300 <= count <= 1440 for count in candles_first.values())

    second = dev.wait_for_backfill(dev.launch_backfill(["trades", "ohlcv_1m"], partitions, "the same again"))
    assert second["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), (second, dev.log_tail())
    # Re-running replaced the partitions: nothing duplicated, nothing lost.
    assert in_table(rows_per_partition(dev.data / "trades"), days) == trades_first
    assert in_table(rows_per_partition(dev.data / "ohlcv_1m"), days) == candles_first


def test_a_parallel_backfill_of_4_instruments_x_10_days_writes_every_partition(dev):
    days = [f"2024-04-{d:02d}" for d in range(1, 11)]
    backfill = dev.wait_for_backfill(
        dev.launch_backfill(["trades"], partition_keys(days, INSTRUMENTS), "4 instruments x 10 days"))
    assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), (backfill, dev.log_tail())
    runs = backfill["runs"]
    assert len(runs) >= 4 and all(r["status"] == "SUCCESS" for r in runs)
    spans = sorted((r["startTime"], r["endTime"]) for r in runs)
    overlapping = any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))
    assert overlapping, f"runs did not run in parallel: {spans}"
    messages = dev.engine_messages(runs[0]["runId"])
    assert any("multiprocess executor" in m for m in messages), messages

    counts = in_table(rows_per_partition(dev.data / "trades"), days)
    source = SyntheticMarketDataSource()
    expected = {
        (e, c, d): len(source.fetch_trades(e, c, d)) for e, c, d in slots(days, INSTRUMENTS)
    }
    assert counts == expected
