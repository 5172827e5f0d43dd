"""The pipeline's assets and checks, run in memory (the IO manager is tested elsewhere).

``materialize_to_memory`` swaps every IO manager for an in-memory one, so these tests prove
the asset logic: one or several partitions per run, canonical frames, checks that pass on
good data and fail (and block downstream assets) on bad data. The same checks with the real
IO manager are in test_checks_with_io_manager.py; step and run retries in test_retries.py.
"""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from cb_storage_dagster.domain.keys import PartitionSlot
from cb_storage_dagster.orchestration import MarketDataSource, SyntheticMarketDataSource
from cb_storage_dagster.orchestration.quality import (
    minute_coverage,
    ohlcv_violations,
    order_book_violations,
    partitions_below_coverage,
    partitions_without_rows,
    rows_per_partition,
    trade_violations,
)
from cb_storage_dagster.transforms import canonical_columns, trades_to_ohlcv

INSTRUMENTS = ["binance:BTC", "coinbase:ETH"]
DAY = dt.date(2024, 1, 2)
BTC_DAY = PartitionSlot("binance", "BTC", DAY)
SOURCE = SyntheticMarketDataSource(trades_per_day=2880)
RANGE_TAGS = {
    "dagster/asset_partition_range_start": "2024-01-02|binance:BTC",
    "dagster/asset_partition_range_end": "2024-01-04|binance:BTC",
}


@pytest.fixture
def instance() -> dg.DagsterInstance:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("instruments", INSTRUMENTS)
    return instance


def run(instance, definitions, *, source: MarketDataSource = SOURCE, **kwargs):
    return dg.materialize_to_memory(
        definitions,
        resources={"market_data_source": source},
        instance=instance,
        raise_on_error=False,
        **kwargs,
    )


def check_outcomes(result) -> dict[str, bool]:
    """``{"<asset>/<check>": passed}`` for every check evaluated in the run."""
    return {
        f"{e.asset_key.to_user_string()}/{e.check_name}": e.passed
        for e in result.get_asset_check_evaluations()
    }


def materialized(result) -> set[str]:
    return {
        event.asset_key.to_user_string()
        for event in result.get_asset_materialization_events()
    }


@pytest.fixture(scope="module")
def assets(instrument_pipeline) -> list[dg.AssetsDefinition]:
    """``trades``, ``order_book``, ``ohlcv_1m``, ``ohlcv_1d`` of the ``instrument`` profile."""
    return instrument_pipeline.assets.all


@pytest.fixture(scope="module")
def checks(instrument_pipeline):
    return instrument_pipeline.checks


@pytest.fixture(scope="module")
def stand_in(instrument_pipeline):
    def make(asset_key: str, frame: pd.DataFrame) -> dg.AssetsDefinition:
        """A partitioned asset that returns ``frame`` under ``asset_key`` (to feed checks bad data)."""

        @dg.asset(name=asset_key, partitions_def=instrument_pipeline.assets.partitions_def,
                  backfill_policy=instrument_pipeline.assets.ohlcv_1m.backfill_policy)  # like the real one
        def _stand_in() -> pd.DataFrame:
            return frame

        return _stand_in

    return make


def synthetic_candles(day: dt.date = DAY) -> pd.DataFrame:
    return trades_to_ohlcv(SOURCE.fetch_trades("binance", "BTC", day))


class TestAssetDefinitions:
    def test_groups_and_data_types_read_well_in_the_lineage(self, assets):
        specs = {next(iter(a.specs)).key.to_user_string(): next(iter(a.specs)) for a in assets}
        assert {k: s.group_name for k, s in specs.items()} == {
            "trades": "raw_market_data",
            "order_book": "raw_market_data",
            "ohlcv_1m": "candles",
            "ohlcv_1d": "candles",
        }
        assert {k: s.metadata["data_type"] for k, s in specs.items()} == {
            "trades": "trades",
            "order_book": "order_book",
            "ohlcv_1m": "ohlcv",
            "ohlcv_1d": "ohlcv",
        }
        assert specs["ohlcv_1m"].deps[0].asset_key == dg.AssetKey("trades")
        assert specs["ohlcv_1d"].deps[0].asset_key == dg.AssetKey("ohlcv_1m")


class TestOnePartition:
    @pytest.fixture
    def result(self, instance, assets, checks):
        return run(instance, [*assets, *checks.all], partition_key="2024-01-02|binance:BTC")

    def test_the_day_assets_materialize_with_canonical_shapes(self, result):
        assert result.success
        trades = result.output_for_node("trades")
        minutes = result.output_for_node("ohlcv_1m")
        daily = result.output_for_node("ohlcv_1d")
        assert (len(trades), len(minutes), len(daily)) == (2880, 1440, 1)
        assert list(trades.columns) == canonical_columns("trades")
        assert list(minutes.columns) == list(daily.columns) == canonical_columns("ohlcv")
        for frame in (trades, minutes, daily):
            assert set(zip(frame["exchange"], frame["coin"], strict=True)) == {("binance", "BTC")}
            assert set(frame["timestamp"].dt.date) == {DAY}

    def test_daily_candle_summarizes_the_minutes(self, result):
        minutes = result.output_for_node("ohlcv_1m")
        daily = result.output_for_node("ohlcv_1d").iloc[0]
        assert daily["timestamp"] == pd.Timestamp("2024-01-02", tz="UTC")
        assert daily["open"] == minutes["open"].iloc[0]
        assert daily["close"] == minutes["close"].iloc[-1]
        assert daily["high"] == minutes["high"].max()
        assert daily["low"] == minutes["low"].min()
        assert daily["volume"] == pytest.approx(minutes["volume"].sum())

    def test_a_day_run_skips_the_order_book_which_has_no_history(self, result):
        assert "order_book" not in materialized(result)

    def test_a_snapshot_run_produces_one_book_per_instrument_and_its_check_passes(
        self, instance, assets, checks
    ):
        at = dt.datetime(2024, 1, 2, 10, 15, tzinfo=dt.UTC)
        result = run(instance, [assets[1], *checks.all], partition_key="2024-01-02|binance:BTC",
                     tags={"cb_storage/snapshot_at": at.isoformat()}, selection=["order_book"])
        book = result.output_for_node("order_book")
        assert len(book) == 2 * 10 and set(book["timestamp"]) == {pd.Timestamp(at)}
        assert list(book.columns) == canonical_columns("order_book")
        assert check_outcomes(result) == {"order_book/valid_rows": True}

    def test_every_check_runs_and_passes_on_synthetic_data(self, result):
        assert check_outcomes(result) == {
            "trades/valid_rows": True,
            "trades/every_partition_has_rows": True,
            "ohlcv_1m/ohlcv_invariants": True,
            "ohlcv_1m/minute_coverage": True,
            "ohlcv_1d/ohlcv_invariants": True,
            "ohlcv_1d/every_partition_has_rows": True,
        }

    def test_output_metadata_names_the_partitions_of_the_run(self, result):
        [event] = result.asset_materializations_for_node("trades")
        assert event.metadata["partition_count"].value == 1
        assert event.metadata["instruments"].value == ["binance:BTC"]


class TestSeveralPartitionsInOneRun:
    def test_a_range_run_produces_every_day_of_the_range_in_one_frame(
        self, instance, assets, checks
    ):
        result = run(instance, [*assets, *checks.all], tags=RANGE_TAGS)
        assert result.success
        days = [DAY + dt.timedelta(days=i) for i in range(3)]
        trades = result.output_for_node("trades")
        assert rows_per_partition(trades, [PartitionSlot("binance", "BTC", d) for d in days]) == {
            PartitionSlot("binance", "BTC", d): 2880 for d in days
        }
        assert len(result.output_for_node("ohlcv_1m")) == 3 * 1440
        daily = result.output_for_node("ohlcv_1d")
        assert list(daily["timestamp"].dt.date) == days
        assert all(check_outcomes(result).values())

    def test_a_range_run_fetches_each_partition_exactly_once(self, instance, assets):
        calls: list[tuple[str, str, dt.date]] = []

        class CountingSource(SyntheticMarketDataSource):
            def fetch_trades(self, exchange, coin, day):
                calls.append((exchange, coin, day))
                return super().fetch_trades(exchange, coin, day)

        run(instance, [assets[0]], source=CountingSource(trades_per_day=10), tags=RANGE_TAGS)
        assert calls == [("binance", "BTC", DAY + dt.timedelta(days=i)) for i in range(3)]


class BadTradesSource(SyntheticMarketDataSource):
    """Synthetic data with one negative price, one unknown side and no trades on 2024-01-03."""

    def fetch_trades(self, exchange, coin, day):
        if day == dt.date(2024, 1, 3):
            return super().fetch_trades(exchange, coin, day).iloc[:0]
        trades = super().fetch_trades(exchange, coin, day)
        trades.loc[5, "price"] = -1.0
        trades.loc[7, "side"] = "hold"
        return trades


class TestChecksFailOnBadData:
    def test_bad_trades_fail_the_checks_and_block_the_candles(self, instance, assets, checks):
        result = run(instance, [*assets, *checks.all], source=BadTradesSource(), tags=RANGE_TAGS)
        assert not result.success
        outcomes = check_outcomes(result)
        assert outcomes["trades/valid_rows"] is False
        assert outcomes["trades/every_partition_has_rows"] is False
        assert materialized(result) == {"trades"}  # no candles from bad trades (no books from a day run)

        [valid] = [e for e in result.get_asset_check_evaluations() if e.check_name == "valid_rows"
                   and e.asset_key == dg.AssetKey("trades")]
        assert valid.metadata["non_positive_price"].value == 2  # one per non-empty day
        assert valid.metadata["unknown_side"].value == 2
        assert "hold" in valid.metadata["first_offending_rows"].value
        [complete] = [e for e in result.get_asset_check_evaluations()
                      if e.check_name == "every_partition_has_rows"]
        assert complete.metadata["empty_partitions"].value == ["binance/BTC/2024-01-03"]

    @pytest.mark.parametrize(
        ("breakage", "rule"),
        [
            (lambda c: c.assign(high=c["low"] - 1.0), "high_below_open_or_close"),
            (lambda c: c.assign(low=c["high"] + 1.0), "low_above_open_or_close"),
            (lambda c: c.assign(volume=-c["volume"]), "negative_volume"),
            (lambda c: pd.concat([c, c.head(3)], ignore_index=True), "duplicate_timestamp"),
            (lambda c: c.assign(timestamp=c["timestamp"] + pd.Timedelta(days=1)), "outside_partitions"),
            (lambda c: c.assign(timestamp=c["timestamp"] + pd.Timedelta(seconds=1)), "not_on_interval_boundary"),
        ],
    )
    def test_broken_minute_candles_fail_the_invariants_and_block_daily_candles(
        self, instance, breakage, rule, assets, checks, stand_in
    ):
        bad = breakage(synthetic_candles())
        result = run(
            instance,
            [stand_in("ohlcv_1m", bad), assets[3], checks.ohlcv_1m_invariants],
            partition_key="2024-01-02|binance:BTC",
        )
        [evaluation] = result.get_asset_check_evaluations()
        assert evaluation.passed is False
        assert evaluation.metadata[rule].value > 0
        assert "ohlcv_1d" not in materialized(result)

    def test_low_minute_coverage_warns_without_blocking(self, instance, assets, checks, stand_in):
        half_day = synthetic_candles().iloc[::2]
        result = run(
            instance,
            [stand_in("ohlcv_1m", half_day), assets[3], checks.ohlcv_1m_minute_coverage],
            partition_key="2024-01-02|binance:BTC",
        )
        [evaluation] = result.get_asset_check_evaluations()
        assert evaluation.passed is False
        assert evaluation.severity == dg.AssetCheckSeverity.WARN
        assert evaluation.metadata["lowest_coverage"].value == 0.5
        assert "ohlcv_1d" in materialized(result)

    def test_the_coverage_threshold_is_configurable(self, instance, checks, stand_in):
        half_day = synthetic_candles().iloc[::2]
        result = run(
            instance,
            [stand_in("ohlcv_1m", half_day), checks.ohlcv_1m_minute_coverage],
            partition_key="2024-01-02|binance:BTC",
            run_config={"ops": {"ohlcv_1m_minute_coverage": {"config": {"min_coverage": 0.4}}}},
        )
        [evaluation] = result.get_asset_check_evaluations()
        assert evaluation.passed is True

    def test_a_missing_daily_candle_fails_completeness(self, instance, assets, checks, stand_in):
        daily = run(instance, [*assets], tags=RANGE_TAGS).output_for_node("ohlcv_1d")
        result = run(
            instance,
            [stand_in("ohlcv_1d", daily.iloc[[0, 2]]), checks.ohlcv_1d_every_partition_has_rows,
             checks.ohlcv_1d_invariants],
            tags=RANGE_TAGS,
        )
        assert check_outcomes(result) == {
            "ohlcv_1d/every_partition_has_rows": False,
            "ohlcv_1d/ohlcv_invariants": True,
        }

    def test_trades_of_another_partition_fail_validation(self, instance, checks, stand_in):
        eth = SOURCE.fetch_trades("coinbase", "ETH", DAY)
        result = run(
            instance,
            [stand_in("trades", eth), checks.trades_are_valid, checks.trades_every_partition_has_rows],
            partition_key="2024-01-02|binance:BTC",
        )
        outcomes = check_outcomes(result)
        assert outcomes == {"trades/valid_rows": False, "trades/every_partition_has_rows": False}


class TestCheckRulesWithoutDagster:
    def test_synthetic_data_breaks_no_rule(self):
        trades = SOURCE.fetch_trades("binance", "BTC", DAY)
        book = SOURCE.fetch_order_book("binance", "BTC", DAY)
        candles = synthetic_candles()
        assert not any(trade_violations(trades, [BTC_DAY]).values())
        assert not any(order_book_violations(book, [BTC_DAY]).values())
        assert not any(ohlcv_violations(candles, [BTC_DAY], interval="1min").values())
        assert minute_coverage(candles, [BTC_DAY]) == {BTC_DAY: 1.0}

    def test_high_below_low_is_caught_by_both_body_rules(self):
        candles = synthetic_candles().head(3)
        candles.loc[1, ["open", "close", "high", "low"]] = [100.0, 100.0, 99.0, 101.0]
        counts = ohlcv_violations(candles)
        assert counts["high_below_open_or_close"] == 1
        assert counts["low_above_open_or_close"] == 1

    def test_missing_values_and_non_positive_prices_are_counted(self):
        candles = synthetic_candles().head(4)
        candles.loc[0, "close"] = float("nan")
        candles.loc[1, "open"] = 0.0
        counts = ohlcv_violations(candles)
        assert counts["missing_values"] == 1
        assert counts["non_positive_price"] == 1

    def test_trade_rules(self):
        trades = SOURCE.fetch_trades("binance", "BTC", DAY).head(6)
        trades.loc[0, "price"] = -5.0
        trades.loc[1, "amount"] = 0.0
        trades.loc[2, "side"] = "BUY"
        trades.loc[4, "trade_id"] = trades.loc[3, "trade_id"]
        counts = trade_violations(trades)
        assert counts == {
            "missing_values": 0,
            "non_positive_price": 1,
            "non_positive_amount": 1,
            "unknown_side": 1,
            "duplicate_trade_id": 2,
        }

    def test_a_crossed_order_book_is_caught(self):
        book = SOURCE.fetch_order_book("binance", "BTC", DAY)
        first_snapshot = book["timestamp"] == book["timestamp"].iloc[0]
        best_ask = book.loc[first_snapshot & (book["side"] == "ask"), "price"].min()
        book.loc[0, "price"] = best_ask + 1.0
        assert order_book_violations(book)["crossed_book"] == first_snapshot.sum()

    def test_completeness_counts_rows_per_partition(self):
        trades = SOURCE.fetch_trades("binance", "BTC", DAY)
        next_day = PartitionSlot("binance", "BTC", DAY + dt.timedelta(days=1))
        assert rows_per_partition(trades, [BTC_DAY, next_day]) == {BTC_DAY: 2880, next_day: 0}
        assert partitions_without_rows(trades, [BTC_DAY, next_day]) == [next_day]
        assert partitions_without_rows(trades.iloc[:0], [BTC_DAY]) == [BTC_DAY]

    def test_coverage_threshold_is_a_parameter(self):
        every_third_minute = synthetic_candles().iloc[::3]
        assert partitions_below_coverage(every_third_minute, [BTC_DAY]) == {BTC_DAY: 480 / 1440}
        assert partitions_below_coverage(every_third_minute, [BTC_DAY], min_coverage=0.3) == {}

    def test_empty_frames_break_no_row_rule(self):
        assert not any(ohlcv_violations(synthetic_candles().iloc[:0], [BTC_DAY]).values())
        trades = SOURCE.fetch_trades("binance", "BTC", DAY).iloc[:0]
        assert not any(trade_violations(trades, [BTC_DAY]).values())
