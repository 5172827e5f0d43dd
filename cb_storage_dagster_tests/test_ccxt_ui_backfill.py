"""End to end with real exchange formats: `dagster dev` with ``CB_STORAGE_SOURCE=ccxt`` pointed at
the fake exchange (Binance and Kraken REST on 127.0.0.1); a backfill launched through the UI's
GraphQL API stores exactly the exchange's trades and candles, and a run that fails on a symbol
the exchange refuses is not re-launched by the daemon's run retry (one server for both)."""

from __future__ import annotations

import datetime as dt
import time
import urllib.error

import pandas as pd
import pytest
from deltalake import DeltaTable

from cb_storage_dagster.transforms import canonical_columns
from cb_storage_dagster_tests.support.dagster_dev import DagsterDev
from cb_storage_dagster_tests.support.fake_exchange import FakeExchange
from cb_storage_dagster_tests.support.servers import wait_until
from cb_storage_dagster_tests.test_ccxt_source import expected_candles, expected_trades

pytestmark = pytest.mark.slow

INSTRUMENTS = {"binance:BTC": "BTCUSDT", "kraken:BTC": "XBTUSD"}
REFUSED = ("binance:ETH", "ETHUSDT")
"""Configured too; the fake exchange refuses its symbol in the run-retry test."""
DAY = "2024-03-01"


def stored(path, data_type: str) -> pd.DataFrame:
    data = DeltaTable(str(path)).to_pyarrow_dataset().to_table().to_pandas()
    keys = ["exchange", "coin", "timestamp"] + (["trade_id"] if data_type == "trades" else [])
    return data[canonical_columns(data_type)].sort_values(keys, ignore_index=True)


def add_instruments(dev: DagsterDev, keys: list[str], attempts: int = 5) -> None:
    """Register the partitions; the instruments sensor may be adding the same keys at this moment
    (a concurrent insert answers HTTP 500), so a failed attempt is tried again."""
    for attempt in range(attempts):
        try:
            return dev.add_dynamic_partitions("instruments", keys)
        except urllib.error.HTTPError:
            if attempt == attempts - 1:
                raise
            time.sleep(2)  # deliberate: back off before retrying a refused insert, not a wait for a state


@pytest.fixture(scope="module")
def ccxt_dev(tmp_path_factory):
    """The fake exchange and `dagster dev` with the ccxt source pointed at it (one per module)."""
    with FakeExchange() as fake:
        env = {
            "CB_STORAGE_INSTRUMENTS": ",".join([*INSTRUMENTS, REFUSED[0]]),
            "CB_STORAGE_SOURCE": "ccxt",
            "CB_STORAGE_CCXT_SYMBOLS": "kraken:BTC=BTC/USD",
            "CB_STORAGE_CCXT_API_URLS": ",".join(f"{k}={v}" for k, v in fake.api_urls().items()),
            "CB_STORAGE_CCXT_RATE_LIMIT_MS": "1",
        }
        with DagsterDev(tmp_path_factory.mktemp("ccxt") / "dev", env=env) as dev:
            add_instruments(dev, [*INSTRUMENTS, REFUSED[0]])
            yield fake, dev


def test_a_ui_backfill_with_the_ccxt_source_stores_exactly_the_exchanges_rows(ccxt_dev):
    fake, dev = ccxt_dev
    partitions = [f"{DAY}|{instrument}" for instrument in INSTRUMENTS]
    backfill = dev.wait_for_backfill(dev.launch_backfill(["trades", "ohlcv_1m"], partitions, "ccxt day"))
    assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), (backfill, dev.log_tail())
    assert backfill["runs"] and all(r["status"] == "SUCCESS" for r in backfill["runs"])

    day = dt.date.fromisoformat(DAY)
    want_trades = pd.concat(
        [expected_trades(fake, *i.split(":"), market, day) for i, market in INSTRUMENTS.items()])
    want_candles = pd.concat(
        [expected_candles(fake, *i.split(":"), market, day) for i, market in INSTRUMENTS.items()])
    assert fake.requests["aggTrades"] >= 24 and fake.requests["Trades"] >= 3  # both venues were paged
    keys = ["exchange", "coin", "timestamp"]
    pd.testing.assert_frame_equal(stored(dev.data / "trades", "trades"),
                                  want_trades.sort_values([*keys, "trade_id"], ignore_index=True), check_dtype=False)
    pd.testing.assert_frame_equal(stored(dev.data / "ohlcv_1m", "ohlcv"), want_candles.sort_values(keys, ignore_index=True),
                                  check_dtype=False, check_exact=False, rtol=1e-12)


NOT_RETRIED = "Not retrying run since it failed due to an asset or op failure"


def test_a_run_failing_on_a_refused_symbol_is_not_relaunched_by_the_run_retry(ccxt_dev):
    """dagster.yaml re-launches a run that failed on a step unless it carries the no-run-retry
    tag; a refused symbol is permanent, so the daemon must decide not to retry it (issue 17)."""
    fake, dev = ccxt_dev
    fake.unknown_symbols.add(REFUSED[1])
    run_id = dev.launch_run("market_data_job", ["trades"], {"dagster/partition": f"{DAY}|{REFUSED[0]}"})
    wait_until(lambda: dev.run_status(run_id) == "FAILURE", 180, f"run {run_id} to fail", interval=2)
    # The daemon's run-retry loop reads the failure, then says why it does not re-launch it.
    wait_until(lambda: any(NOT_RETRIED in m for m in dev.engine_messages(run_id)), 120,
               "the daemon's run-retry decision", interval=2)
    assert not any("retry" in m.lower() and "launch" in m.lower() for m in dev.engine_messages(run_id))
