"""The schedules with the ccxt source against the fake exchange: each tick's run requests,
executed as the daemon would launch them (their tags and partitions) with the real
MarketDataIOManager on local disk, store exactly the rows the fake exchange serves. Every test
runs on both profiles' pipelines (``build_pipeline``): the ``instrument`` profile's runs cover
a range of registered instruments, the ``exchange`` profile's one exchange-day each (one run
per exchange per tick, the exchange Delta layout).

"Now" is pinned on both sides, so the ticks of a fixed day are "today": the fake exchange's
clock (``FakeExchange.now_ms``) is set to each intraday tick, so it reports the day's trades
only up to the tick and its book as of the tick, as a real exchange does during the day; and
the source's own clock (:meth:`CcxtMarketDataSource.now`, which refuses later days and
snapshots of any other day than today) is pinned to the day by a subclass.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from cb_storage_dagster.orchestration import build_pipeline
from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
from cb_storage_dagster.orchestration.resources import LocalStorageResource
from cb_storage_dagster.sources.ccxt.source import CcxtMarketDataSource
from cb_storage_dagster.transforms import canonical_columns, canonical_dtypes
from cb_storage_dagster_tests.test_ccxt_pipeline import stored
from cb_storage_dagster_tests.test_ccxt_source import expected_candles, expected_trades, make_source

DAY = dt.date(2024, 3, 1)
# (instrument, the fake's own market id), in registration order; Kraken quotes BTC in USD.
VENUES = [("binance:BTC", "BTCUSDT"), ("kraken:BTC", "XBTUSD")]


def at(hour: int, minute: int, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=dt.UTC)


class SourceOnDay(CcxtMarketDataSource):
    """The ccxt source with its clock pinned to noon of ``today`` (an ISO date), a config field
    so that Dagster's copy of the resource keeps it."""

    today: str

    def now(self) -> dt.datetime:
        return dt.datetime.combine(dt.date.fromisoformat(self.today), dt.time(12), dt.UTC)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("instruments", [instrument for instrument, _ in VENUES])
        yield instance


@pytest.fixture(params=["instrument", "exchange"])
def pipeline(request, instrument_pipeline):
    """Each profile's pipeline; the exchange profile's universe is the venues'."""
    if request.param == "instrument":
        return instrument_pipeline
    return build_pipeline("exchange", [instrument for instrument, _ in VENUES])


@pytest.fixture
def io_manager(tmp_path, pipeline) -> MarketDataIOManager:
    return MarketDataIOManager(storage=LocalStorageResource(root_path=str(tmp_path)),
                               delta_layout=pipeline.profile.value)


def repository(pipeline, fake, io_manager, today: dt.date) -> dg.RepositoryDefinition:
    """The pipeline with the ccxt source pointed at ``fake``, its "today" pinned to ``today``."""
    source = SourceOnDay(today=today.isoformat(), **make_source(fake).model_dump())
    return dg.Definitions(
        assets=pipeline.assets.all, asset_checks=pipeline.checks.all, jobs=pipeline.jobs,
        schedules=pipeline.schedules,
        resources={"market_data_io_manager": io_manager, "market_data_source": source},
    ).get_repository_def()


def run_requests(repository, schedule, instance, moment: dt.datetime) -> list[dg.RunRequest]:
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=moment, repository_def=repository
    ) as context:
        return list(schedule.evaluate_tick(context).run_requests)


def partitions_of(requests: list[dg.RunRequest]) -> list[object]:
    """What each run covers: a partition key, or a (first, last) range."""
    return [str(r.partition_key) if r.partition_key else
            (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
            for r in requests]


def execute(repository, instance, schedule, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    job = repository.get_job(schedule.job_name)
    result = job.execute_in_process(
        instance=instance, tags=request.tags, partition_key=request.partition_key, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def run_tick(repository, instance, schedule, moment: dt.datetime) -> list[dg.ExecuteInProcessResult]:
    """Execute every run the tick of ``moment`` requests (one, or one per exchange)."""
    return [execute(repository, instance, schedule, r) for r in run_requests(repository, schedule, instance, moment)]


EXPECTED_RUNS = {  # what the runs of a tick over DAY cover, per profile
    "instrument": [("2024-03-01|binance:BTC", "2024-03-01|kraken:BTC")],
    "exchange": ["2024-03-01|binance", "2024-03-01|kraken"],
}


def exchange_trades(fake) -> pd.DataFrame:
    """The fake's trades of DAY for every venue, up to its clock."""
    frames = [expected_trades(fake, *instrument.split(":"), market_id, DAY) for instrument, market_id in VENUES]
    return pd.concat(frames, ignore_index=True).sort_values(["exchange", "coin", "timestamp", "trade_id"], ignore_index=True)


def exchange_candles(fake, before: dt.datetime | None = None) -> pd.DataFrame:
    frames = [expected_candles(fake, *instrument.split(":"), market_id, DAY) for instrument, market_id in VENUES]
    frame = pd.concat(frames, ignore_index=True)
    if before is not None:
        frame = frame[frame["timestamp"] < before]
    return frame.sort_values(["exchange", "coin", "timestamp"], ignore_index=True)


def assert_rows(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(actual, expected.reset_index(drop=True), check_dtype=False,
                                  check_exact=False, rtol=1e-12)


def test_the_daily_tick_stores_exactly_the_exchanges_trades_and_candles_of_yesterday(
    pipeline, fake, instance, io_manager, tmp_path
):
    daily_market_data_schedule = pipeline.schedule("daily_market_data_schedule")
    repo = repository(pipeline, fake, io_manager, today=DAY + dt.timedelta(days=1))
    requests = run_requests(repo, daily_market_data_schedule, instance, at(0, 30, DAY + dt.timedelta(days=1)))
    assert partitions_of(requests) == EXPECTED_RUNS[pipeline.profile]

    results = [execute(repo, instance, daily_market_data_schedule, request) for request in requests]
    trades = stored(tmp_path, "trades")
    assert len(trades) == 2 * 2880
    assert_rows(trades, exchange_trades(fake))
    # One-minute candles built from the stored trades equal the exchange's own klines.
    candles = stored(tmp_path, "ohlcv_1m")
    assert len(candles) == 2 * 1440
    assert_rows(candles, exchange_candles(fake))
    assert len(stored(tmp_path, "ohlcv_1d")) == 2
    # Exchanges keep no order-book history: the daily run stores none and succeeds anyway.
    assert not any(result.asset_materializations_for_node("order_book") for result in results)
    assert not (tmp_path / "order_book").exists()


def test_intraday_ticks_merge_exactly_the_exchanges_trades_so_far_and_a_rerun_changes_nothing(
    pipeline, fake, instance, io_manager, tmp_path
):
    intraday_market_data_schedule = pipeline.schedule("intraday_market_data_schedule")
    repo = repository(pipeline, fake, io_manager, today=DAY)
    for tick in (at(0, 15), at(0, 30)):  # the day's first two ticks, the exchange's clock at each
        fake.now_ms = int(tick.timestamp() * 1000)
        requests = run_requests(repo, intraday_market_data_schedule, instance, tick)
        assert partitions_of(requests) == EXPECTED_RUNS[pipeline.profile]
        assert all(request.tags["cb_storage/write_mode"] == "merge" for request in requests)
        for request in requests:
            execute(repo, instance, intraday_market_data_schedule, request)

    last_tick = at(0, 30)
    trades = stored(tmp_path, "trades")
    assert len(trades) == 2 * 60  # two trades a minute on average, 30 minutes, two venues
    # Everything the exchange reported up to the last tick, each trade once.
    assert_rows(trades, exchange_trades(fake))
    assert_rows(stored(tmp_path, "ohlcv_1m"), exchange_candles(fake, before=last_tick))

    manager = io_manager.manager
    before = (manager.table_version("trades", table="trades"), manager.table_version("ohlcv", table="ohlcv_1m"))
    again = run_tick(repo, instance, intraday_market_data_schedule, last_tick)  # the same tick again
    assert (manager.table_version("trades", table="trades"),
            manager.table_version("ohlcv", table="ohlcv_1m")) == before
    for result in again:
        for event in result.asset_materializations_for_node("trades"):
            assert (event.metadata["rows_inserted"].value, event.metadata["rows_updated"].value) == (0, 0)
    assert_rows(stored(tmp_path, "trades"), exchange_trades(fake))


def exchange_book(fake, moment: dt.datetime, depth: int = 20) -> pd.DataFrame:
    """The fake's books of every venue at its clock, stamped ``moment`` as a snapshot is."""
    rows = []
    for instrument, market_id in VENUES:
        exchange, coin = instrument.split(":")
        bids, asks = fake.expected_book(exchange, market_id, depth)
        for side, levels in (("bid", bids), ("ask", asks)):
            rows += [{"exchange": exchange, "coin": coin, "timestamp": pd.Timestamp(moment), "side": side,
                      "level": level, "price": float(price), "amount": float(amount)}
                     for level, (price, amount) in enumerate(levels)]
    return pd.DataFrame(rows)[canonical_columns("order_book")].astype(canonical_dtypes("order_book"))


def test_snapshot_ticks_merge_exactly_the_exchanges_books_and_a_rerun_changes_nothing(
    pipeline, fake, instance, io_manager, tmp_path
):
    order_book_snapshot_schedule = pipeline.schedule("order_book_snapshot_schedule")
    repo = repository(pipeline, fake, io_manager, today=DAY)
    expected = []
    for tick in (at(10, 0), at(10, 15)):
        fake.now_ms = int(tick.timestamp() * 1000)
        assert len(run_tick(repo, instance, order_book_snapshot_schedule, tick)) == len(EXPECTED_RUNS[pipeline.profile])
        expected.append(exchange_book(fake, tick))

    keys = ["exchange", "coin", "timestamp", "side", "level"]
    books = expected[0].merge(expected[1], how="outer", indicator=True)
    assert (books["_merge"] != "both").any()  # the book moved between the ticks: two distinct snapshots
    want = pd.concat(expected, ignore_index=True).sort_values(keys, ignore_index=True)
    got = io_manager.manager.read_partitions("order_book", None, table="order_book").to_pandas()
    got = got[canonical_columns("order_book")].sort_values(keys, ignore_index=True)
    assert len(got) == 2 * 2 * 2 * 20  # ticks x venues x sides x levels
    assert_rows(got, want)

    version = io_manager.manager.table_version("order_book", table="order_book")
    run_tick(repo, instance, order_book_snapshot_schedule, at(10, 15))  # the last tick again
    assert io_manager.manager.table_version("order_book", table="order_book") == version
