"""End to end: the real `dagster dev` (webserver + daemon) runs a backfill launched with the
GraphQL mutation the UI uses, and the Delta tables hold exactly the backfilled partitions."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from cb_storage_dagster_tests.support.dagster_dev import DagsterDev

pytestmark = pytest.mark.slow

INSTRUMENTS = ["binance:BTC", "coinbase:ETH"]
DAYS = ["2024-03-01", "2024-03-02", "2024-03-03"]
ASSETS = ["trades", "ohlcv_1m"]


def rows_per_partition(table_path) -> dict[tuple[str, str, dt.date], int]:
    data = pa.table(DeltaTable(str(table_path)).to_pyarrow_dataset().to_table(columns=["exchange", "coin", "date"]))
    counts = data.group_by(["exchange", "coin", "date"]).aggregate([([], "count_all")]).to_pylist()
    return {(r["exchange"], r["coin"], r["date"]): r["count_all"] for r in counts}


def test_a_ui_backfill_fills_the_delta_tables_exactly_once(tmp_path):
    env = {"CB_STORAGE_INSTRUMENTS": ",".join(INSTRUMENTS)}
    with DagsterDev(tmp_path, env=env) as dev:
        dev.add_dynamic_partitions("instruments", INSTRUMENTS)
        partitions = [f"{day}|{instrument}" for day in DAYS for instrument in INSTRUMENTS]

        first = dev.wait_for_backfill(dev.launch_backfill(ASSETS, partitions, "2 instruments x 3 days"))
        assert first["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), (first, dev.log_tail())
        assert first["runs"] and all(r["status"] == "SUCCESS" for r in first["runs"])
        trades_after_first = rows_per_partition(dev.data / "trades")
        candles_after_first = rows_per_partition(dev.data / "ohlcv_1m")

        second = dev.wait_for_backfill(dev.launch_backfill(ASSETS, partitions, "the same again"))
        assert second["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), (second, dev.log_tail())

    expected_keys = {(i.split(":")[0], i.split(":")[1], dt.date.fromisoformat(d)) for d in DAYS for i in INSTRUMENTS}
    assert set(trades_after_first) == expected_keys
    assert set(candles_after_first) == expected_keys
    assert all(count > 1000 for count in trades_after_first.values())
    assert all(1300 <= count <= 1440 for count in candles_after_first.values())
    # Re-running the backfill replaced the partitions: nothing duplicated, nothing lost.
    assert rows_per_partition(dev.data / "trades") == trades_after_first
    assert rows_per_partition(dev.data / "ohlcv_1m") == candles_after_first
    assert dev.process is not None and dev.process.poll() is not None
