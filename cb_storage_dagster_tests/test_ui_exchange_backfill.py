"""End to end with the exchange profile: the real ``dagster dev`` (webserver + daemon) runs a
backfill launched through the GraphQL API the UI uses.

* Every instrument of each backfilled exchange-day is stored, exactly once.
* Bounded writers: the backfills' runs all write the same tables at once; with the project's
  dagster.yaml (pools ``delta_<table>``, ``default_limit: 2``, op granularity) the event log
  shows at no moment more than 2 steps of one pool running, and steps that waited for a slot.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from cb_storage_dagster.sources.synthetic import SyntheticMarketDataSource
from cb_storage_dagster_tests.support.dagster_dev import DagsterDev

pytestmark = pytest.mark.slow

POOL_LIMIT = 2  # dagster.yaml: concurrency.pools.default_limit
EXCHANGES = ["binance", "coinbase", "kraken"]
COINS = ["BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "DOT", "LTC", "LINK", "AVAX", "ATOM", "TRX"]
UNIVERSE = [f"{e}:{c}" for e in EXCHANGES for c in COINS]
DAYS = [(dt.date(2024, 5, 1) + dt.timedelta(days=n)).isoformat() for n in range(10)]
"""Ten days x twelve coins per run: steps long enough (seconds) that runs launched a couple of
seconds apart by the daemon really contend for the pools, on an idle machine too."""

STEP_EVENTS = """
query Steps($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection { events {
      __typename
      ... on ExecutionStepStartEvent { stepKey timestamp }
      ... on ExecutionStepSuccessEvent { stepKey timestamp }
      ... on ExecutionStepFailureEvent { stepKey timestamp }
      ... on EngineEvent { stepKey message }
    } }
  }
}"""


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    server = DagsterDev(
        tmp_path_factory.mktemp("dagster_dev_exchange"),
        env={"CB_STORAGE_PARTITIONING": "exchange", "CB_STORAGE_INSTRUMENTS": ",".join(UNIVERSE)},
    )
    with server:
        yield server
    assert server.leftover_processes() == []


def stored(table_path) -> dict[tuple[str, str, dt.date], int]:
    data = pa.table(DeltaTable(str(table_path)).to_pyarrow_dataset().to_table(columns=["exchange", "coin", "date"]))
    counts = data.group_by(["exchange", "coin", "date"]).aggregate([([], "count_all")]).to_pylist()
    return {(r["exchange"], r["coin"], r["date"]): r["count_all"] for r in counts}


def step_spans(dev: DagsterDev, run_ids: list[str]) -> tuple[dict[str, list[tuple[float, float]]], list[str]]:
    """``{asset: [(start, end), ...]}`` of every step of the runs, and the engine messages."""
    spans: dict[str, list[tuple[float, float]]] = {}
    messages: list[str] = []
    for run_id in run_ids:
        events = dev.graphql(STEP_EVENTS, {"runId": run_id})["logsForRun"]["events"]
        starts: dict[str, float] = {}
        for event in events:
            kind = event["__typename"]
            if kind == "EngineEvent":
                messages.append(event["message"])
            elif kind == "ExecutionStepStartEvent":
                starts[event["stepKey"]] = float(event["timestamp"])
            elif kind in ("ExecutionStepSuccessEvent", "ExecutionStepFailureEvent"):
                spans.setdefault(event["stepKey"], []).append((starts.pop(event["stepKey"]), float(event["timestamp"])))
    return spans, messages


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one moment (an end frees before a start takes)."""
    moments = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans],
                     key=lambda m: (m[0], m[1]))
    return max(itertools.accumulate(delta for _, delta in moments), default=0)


def test_ui_backfills_of_exchange_days_store_every_instrument_with_bounded_writers(dev):
    # One backfill per exchange (ten exchange-days, one run each), launched together: 3 runs
    # that all write `trades` and `ohlcv_1m` (up to 4 run at once, dagster.yaml's
    # concurrency.runs), as when a user backfills each exchange from the UI.
    ids = [dev.launch_backfill(["trades", "ohlcv_1m"], [f"{day}|{exchange}" for day in DAYS], f"{exchange} May")
           for exchange in EXCHANGES]
    backfills = [dev.wait_for_backfill(backfill_id) for backfill_id in ids]
    assert all(b["status"] in ("COMPLETED", "COMPLETED_SUCCESS") for b in backfills), (backfills, dev.log_tail())
    runs = [run for backfill in backfills for run in backfill["runs"]]
    assert len(runs) == len(EXCHANGES) and all(r["status"] == "SUCCESS" for r in runs), runs

    source = SyntheticMarketDataSource()
    days = [dt.date.fromisoformat(day) for day in DAYS]
    expected = {(e, c, d): len(source.fetch_trades(e, c, d)) for e in EXCHANGES for c in COINS for d in days}
    assert stored(dev.data / "trades") == expected  # every instrument of every exchange-day, once
    candles = stored(dev.data / "ohlcv_1m")
    assert set(candles) == set(expected) and all(1300 <= n <= 1440 for n in candles.values())

    spans, messages = step_spans(dev, [r["runId"] for r in runs])
    runs_at_once = most_at_once([(float(r["startTime"]), float(r["endTime"])) for r in runs])
    blocked = [m for m in messages if m.startswith("Step blocked by limit for pool delta_")]
    report = f"runs at once: {runs_at_once}; blocked messages: {len(blocked)}; spans: {spans}"
    print(report)
    for asset in ("trades", "ohlcv_1m"):
        assert len(spans[asset]) == len(runs), report
        assert most_at_once(spans[asset]) <= POOL_LIMIT, report
    # The runs overlapped beyond the limit, so only the pool kept the writers at 2.
    assert runs_at_once > POOL_LIMIT, report
    assert blocked, report
