"""Both partition profiles, one pipeline: ``instrument`` (date x instrument, the default) and
``exchange`` (date x exchange, every configured instrument of an exchange-day in one run and
one commit per table).

Asset logic and checks run with ``materialize_to_memory``; the IO manager with a real
``materialize`` on local Delta tables.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd
import pytest
from deltalake import DeltaTable

from cb_storage_dagster.orchestration import (
    SyntheticMarketDataSource,
    backfill_policy_of,
    build_pipeline,
    configured_profile,
)
from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
from cb_storage_dagster.orchestration.partitions import PartitionProfile
from cb_storage_dagster.orchestration.profiles import PARTITIONING_ENV_VAR
from cb_storage_dagster.orchestration.resources import LocalStorageResource

EXCHANGE_UNIVERSE = ["binance:BTC", "binance:ETH", "binance:SOL", "kraken:BTC", "kraken:XRP"]
SOURCE = SyntheticMarketDataSource(trades_per_day=1440)


class SilentOnSol(SyntheticMarketDataSource):
    """The synthetic source, except that binance:SOL has no trades (a silent source failure)."""

    def fetch_trades(self, exchange: str, coin: str, day: dt.date) -> pd.DataFrame:
        frame = super().fetch_trades(exchange, coin, day)
        return frame.iloc[0:0] if (exchange, coin) == ("binance", "SOL") else frame


def exchange_day(day: str, exchange: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": day, "exchange": exchange})


def commits(table_path) -> list[str]:
    """The operations of a Delta table's history, oldest first."""
    return [entry["operation"] for entry in reversed(DeltaTable(str(table_path)).history())]


def stored_slots(table_path) -> dict[tuple[str, str, dt.date], int]:
    frame = DeltaTable(str(table_path)).to_pyarrow_dataset().to_table(columns=["exchange", "coin", "date"])
    counts = frame.group_by(["exchange", "coin", "date"]).aggregate([([], "count_all")]).to_pylist()
    return {(r["exchange"], r["coin"], r["date"]): r["count_all"] for r in counts}


def check_outcomes(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {f"{e.asset_key.to_user_string()}/{e.check_name}": e for e in result.get_asset_check_evaluations()}


class TestProfileSwitch:
    def test_the_default_profile_is_instrument_and_keeps_todays_assets(self, monkeypatch):
        monkeypatch.delenv(PARTITIONING_ENV_VAR, raising=False)
        assert configured_profile() is PartitionProfile.INSTRUMENT
        pipeline = build_pipeline(configured_profile())
        for asset in pipeline.assets.all:
            dims = [d.name for d in asset.partitions_def.partitions_defs]
            assert dims == ["date", "instrument"]
        assert [s.name for s in pipeline.sensors] == ["instruments_sensor"]

    def test_exchange_profile_partitions_by_date_and_the_configured_exchanges(self):
        pipeline = build_pipeline("exchange", EXCHANGE_UNIVERSE)
        assert pipeline.exchanges == ("binance", "kraken")
        for asset in pipeline.assets.all:
            date_dim, exchange_dim = asset.partitions_def.partitions_defs
            assert (date_dim.name, exchange_dim.name) == ("date", "exchange")
            assert exchange_dim.partitions_def.get_partition_keys() == ["binance", "kraken"]
        assert pipeline.sensors == []  # the universe is configuration, not partitions

    def test_both_profiles_build_in_one_process_and_load_as_definitions(self):
        for profile in PartitionProfile:
            pipeline = build_pipeline(profile, EXCHANGE_UNIVERSE)
            dg.Definitions(
                assets=pipeline.assets.all, asset_checks=pipeline.checks.all, jobs=pipeline.jobs,
                schedules=pipeline.schedules, sensors=pipeline.sensors,
                resources={"market_data_io_manager": dg.InMemoryIOManager(), "market_data_source": SOURCE},
            ).get_repository_def().get_job("market_data_job")

    def test_each_asset_joins_the_writer_pool_of_its_table(self):
        for profile in PartitionProfile:
            for asset in build_pipeline(profile, EXCHANGE_UNIVERSE).assets.all:
                [node] = asset.node_def.node_defs if hasattr(asset.node_def, "node_defs") else [asset.node_def]
                assert node.pool == f"delta_{asset.key.to_user_string()}"

    def test_an_unknown_profile_names_the_variable_and_the_choices(self, monkeypatch):
        monkeypatch.setenv(PARTITIONING_ENV_VAR, "coin")
        with pytest.raises(ValueError, match="CB_STORAGE_PARTITIONING.*'instrument'.*'exchange'"):
            configured_profile()


class TestOneFactory:
    def test_both_profiles_get_the_same_jobs_schedules_and_checks(self):
        built = {profile: build_pipeline(profile, EXCHANGE_UNIVERSE) for profile in PartitionProfile}
        for pipeline in built.values():
            assert [j.name for j in pipeline.jobs] == [
                "market_data_job", "intraday_market_data_job", "order_book_snapshot_job"]
            assert [s.name for s in pipeline.schedules] == [
                "daily_market_data_schedule", "intraday_market_data_schedule", "order_book_snapshot_schedule"]
        checks = {profile: sorted(str(k) for c in p.checks.all for k in c.check_keys) for profile, p in built.items()}
        # plus, where one run holds many instruments, the check naming those it left out
        left_out = str(dg.AssetCheckKey(dg.AssetKey("trades"), "instruments_stored"))
        assert checks[PartitionProfile.EXCHANGE] == sorted([*checks[PartitionProfile.INSTRUMENT], left_out])

    def test_each_build_is_independent_and_no_definition_lives_at_module_level(self):
        import importlib
        import pkgutil

        import cb_storage_dagster.orchestration as package

        first, second = build_pipeline("instrument"), build_pipeline("instrument")
        assert first.assets.trades is not second.assets.trades
        assert first.job("market_data_job") is not second.job("market_data_job")
        kinds = (dg.AssetsDefinition, dg.AssetChecksDefinition, dg.ScheduleDefinition, dg.SensorDefinition, dg.JobDefinition,
                 type(first.job("market_data_job")))
        singletons = []
        for module_info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{module_info.name}")
            singletons += [f"{module_info.name}.{name}" for name, value in vars(module).items()
                           if isinstance(value, kinds)]
        # Weekly maintenance is an op job over every table, the same in both profiles.
        assert sorted(singletons) == ["maintenance.delta_maintenance_job", "maintenance.weekly_delta_maintenance"]

    def test_the_backfill_policy_is_a_parameter_with_a_default_per_profile(self):
        for profile in PartitionProfile:
            default = build_pipeline(profile, EXCHANGE_UNIVERSE)
            assert {a.backfill_policy for a in default.assets.all} == {backfill_policy_of(profile)}
            policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=2)
            sized = build_pipeline(profile, EXCHANGE_UNIVERSE, backfill_policy=policy)
            assert {a.backfill_policy for a in sized.assets.all} == {policy}

    def test_today_is_a_partition_in_both_profiles_for_the_intraday_merges(self):
        today = dt.datetime.now(dt.UTC).date().isoformat()
        for profile in PartitionProfile:
            date_dim = build_pipeline(profile, EXCHANGE_UNIVERSE).assets.partitions_def.partitions_defs[0]
            assert date_dim.partitions_def.get_last_partition_key() == today

    def test_an_unknown_name_lists_what_the_pipeline_has(self):
        with pytest.raises(KeyError, match="no sensor 'instruments_sensor'.*\\[\\]"):
            build_pipeline("exchange", EXCHANGE_UNIVERSE).sensor("instruments_sensor")


class TestExchangeProfileInMemory:
    def test_one_exchange_day_run_fetches_every_instrument_of_the_exchange(self):
        pipeline = build_pipeline("exchange", EXCHANGE_UNIVERSE)
        result = dg.materialize_to_memory(
            [*pipeline.assets.all, *pipeline.checks.all], resources={"market_data_source": SOURCE},
            partition_key=exchange_day("2024-01-02", "binance"),
        )
        assert result.success
        trades = result.output_for_node("trades").to_table().to_pandas()  # the exchange profile hands chunks on
        assert sorted(set(zip(trades["exchange"], trades["coin"], strict=True))) == [
            ("binance", "BTC"), ("binance", "ETH"), ("binance", "SOL")]
        assert all(e.passed for e in check_outcomes(result).values())
        [event] = result.asset_materializations_for_node("ohlcv_1m")
        table = event.metadata["rows_per_instrument_day"].value
        assert [r.data["instrument"] for r in table.records] == ["binance:BTC", "binance:ETH", "binance:SOL"]
        assert all(r.data["rows"] > 1300 and r.data["gap_minutes"] < 140 for r in table.records)
        assert event.metadata["instrument_days_without_rows"].value == 0

    def test_an_instrument_without_rows_is_named_by_the_checks_and_the_metadata(self):
        pipeline = build_pipeline("exchange", EXCHANGE_UNIVERSE)
        result = dg.materialize_to_memory(
            [*pipeline.assets.all, *pipeline.checks.all], resources={"market_data_source": SilentOnSol()},
            partition_key=exchange_day("2024-01-02", "binance"), raise_on_error=False,
        )
        outcome = check_outcomes(result)["trades/every_partition_has_rows"]
        assert not outcome.passed
        assert outcome.metadata["empty_partitions"].value == ["binance/SOL/2024-01-02"]
        assert outcome.metadata["partitions_checked"].value == 3
        [event] = result.asset_materializations_for_node("trades")
        assert event.metadata["without_rows"].value == ["binance/SOL/2024-01-02"]
        coverage = check_outcomes(result).get("ohlcv_1m/minute_coverage")
        assert coverage is None  # the blocking check stopped the candles of the run


class TestOneCommitPerTable:
    @pytest.fixture
    def io_manager(self, tmp_path) -> MarketDataIOManager:
        return MarketDataIOManager(storage=LocalStorageResource(root_path=str(tmp_path)))

    def test_an_exchange_profile_run_of_three_days_writes_each_table_once(self, io_manager, tmp_path):
        pipeline = build_pipeline("exchange", EXCHANGE_UNIVERSE)
        result = dg.materialize(
            [*pipeline.assets.all, *pipeline.checks.all],
            resources={"market_data_io_manager": io_manager, "market_data_source": SOURCE},
            tags={"dagster/asset_partition_range_start": "2024-01-02|kraken",
                  "dagster/asset_partition_range_end": "2024-01-04|kraken"},
        )
        assert result.success
        days = [dt.date(2024, 1, d) for d in (2, 3, 4)]
        assert not (tmp_path / "order_book").exists()  # a daily run skips order books: no history exists
        for table in ("trades", "ohlcv_1m", "ohlcv_1d"):
            assert commits(tmp_path / table).count("WRITE") == 1, commits(tmp_path / table)
            assert set(stored_slots(tmp_path / table)) == {("kraken", c, d) for c in ("BTC", "XRP") for d in days}

    def test_rerunning_an_exchange_day_replaces_it_and_leaves_other_exchanges_alone(self, io_manager, tmp_path):
        pipeline = build_pipeline("exchange", EXCHANGE_UNIVERSE)
        resources = {"market_data_io_manager": io_manager, "market_data_source": SOURCE}
        for exchange in ("binance", "kraken", "binance"):
            assert dg.materialize(pipeline.assets.all, resources=resources,
                                  partition_key=exchange_day("2024-01-02", exchange)).success
        counts = stored_slots(tmp_path / "trades")
        day = dt.date(2024, 1, 2)
        expected = {(e, c, day): len(SOURCE.fetch_trades(e, c, day))
                    for e, c in (i.split(":") for i in EXCHANGE_UNIVERSE)}
        assert counts == expected  # nothing duplicated by the second binance run

    def test_an_instrument_profile_range_run_over_a_block_writes_each_table_once(self, io_manager, tmp_path):
        pipeline = build_pipeline("instrument")
        block = ["kraken:XRP", "binance:BTC", "binance:ETH"]  # registration order, not sorted
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("instruments", ["coinbase:BTC", *block, "kraken:BTC"])
            result = dg.materialize(
                [*pipeline.assets.all, *pipeline.checks.all],
                resources={"market_data_io_manager": io_manager, "market_data_source": SOURCE},
                instance=instance,
                tags={"dagster/asset_partition_range_start": "2024-01-02|kraken:XRP",
                      "dagster/asset_partition_range_end": "2024-01-02|binance:ETH"},
            )
        assert result.success
        assert not (tmp_path / "order_book").exists()  # a daily run skips order books: no history exists
        for table in ("trades", "ohlcv_1m", "ohlcv_1d"):
            assert commits(tmp_path / table).count("WRITE") == 1, commits(tmp_path / table)
            assert set(stored_slots(tmp_path / table)) == {
                (*i.split(":"), dt.date(2024, 1, 2)) for i in block}
        assert all(e.passed for e in result.get_asset_check_evaluations())


def test_the_code_location_follows_cb_storage_partitioning(monkeypatch, tmp_path):
    import importlib

    monkeypatch.setenv("CB_STORAGE_LOCAL_ROOT_PATH", str(tmp_path))
    monkeypatch.setenv("CB_STORAGE_INSTRUMENTS", ",".join(EXCHANGE_UNIVERSE))
    monkeypatch.setenv(PARTITIONING_ENV_VAR, "exchange")
    import cb_storage_dagster.definitions as module  # reads the environment when first imported

    try:
        defs = importlib.reload(module).defs
        job = defs.resolve_job_def("market_data_job")
        assert [d.name for d in job.partitions_def.partitions_defs] == ["date", "exchange"]
        assert defs.resolve_schedule_def("daily_market_data_schedule").job_name == "market_data_job"
        assert defs.resolve_schedule_def("intraday_market_data_schedule").job_name == "intraday_market_data_job"
        assert defs.resolve_schedule_def("order_book_snapshot_schedule").job_name == "order_book_snapshot_job"
        assert not [s for s in defs.sensors or [] if s.name == "instruments_sensor"]
    finally:
        monkeypatch.delenv(PARTITIONING_ENV_VAR)
        importlib.reload(module)
