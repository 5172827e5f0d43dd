"""Dagster retries act on transient storage failures only.

The product's assets have a step ``RetryPolicy`` (2 retries) and ``dagster.yaml`` a run
retry. A deterministic error (bad data, a bad key) must fail once: neither the step nor the
run is repeated. A transient one (an outage, a commit conflict) is retried. Real
``dagster.materialize`` runs with the real IO manager on local disk; the run-retry decision is
the one the instance records on the failed run (``dagster/will_retry``), with the instance
configured from the product's ``dagster.yaml``.
"""

import datetime as dt
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pandas as pd
import pytest
import yaml

from cb_storage_dagster.domain.errors import BackendUnavailableError, InvalidKeyError
from cb_storage_dagster.orchestration import SyntheticMarketDataSource
from cb_storage_dagster.orchestration.failures import NO_RUN_RETRY_TAG, permanent_failures
from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
from cb_storage_dagster.orchestration.partitions import instruments_partitions
from cb_storage_dagster.orchestration.resources import LocalStorageResource
from cb_storage_dagster.storage import StorageManagerImpl
from cb_storage_dagster_tests.support.snapshots import snapshot

PRODUCT_DAGSTER_YAML = Path(__file__).parent.parent / "dagster.yaml"
PARTITION = "2024-01-02|binance:BTC"
WILL_RETRY = "dagster/will_retry"


@pytest.fixture
def instance():
    product_settings = yaml.safe_load(PRODUCT_DAGSTER_YAML.read_text())  # what `make run` uses
    with dg.instance_for_test(overrides=product_settings) as instance:
        assert instance.run_retries_enabled
        instance.add_dynamic_partitions(instruments_partitions.name, ["binance:BTC"])
        yield instance


@pytest.fixture
def io_manager(tmp_path) -> MarketDataIOManager:
    return MarketDataIOManager(storage=LocalStorageResource(root_path=str(tmp_path / "store")))


class CountingSource(SyntheticMarketDataSource):
    """The synthetic source, counting calls and breaking the ways a test asks for."""

    calls: ClassVar[list[dt.date]] = []
    negative_price: bool = False
    outages_before_success: int = 0

    def fetch_trades(self, exchange, coin, day):
        CountingSource.calls.append(day)
        if len(CountingSource.calls) <= self.outages_before_success:
            raise BackendUnavailableError("The exchange API is unreachable (test outage); retry later.")
        frame = super().fetch_trades(exchange, coin, day)
        if self.negative_price:
            frame.loc[3, "price"] = -1.0
        return frame


@pytest.fixture(autouse=True)
def reset_calls():
    CountingSource.calls.clear()


@pytest.fixture
def materialize_trades(instrument_pipeline):
    def materialize(instance, io_manager, source, assets=(instrument_pipeline.assets.trades,)):
        return dg.materialize(
            list(assets), partition_key=PARTITION, instance=instance, raise_on_error=False,
            resources={"market_data_io_manager": io_manager, "market_data_source": source},
        )

    return materialize


def step_failure(result: dg.ExecuteInProcessResult) -> dg.DagsterEvent:
    [failure] = result.get_step_failure_events()
    return failure


class TestDataErrorsFailOnce:
    def test_bad_rows_refused_by_the_io_manager_are_not_retried(self, instance, io_manager, materialize_trades):
        materialize_trades(instance, io_manager, CountingSource(trades_per_day=50))
        before = snapshot(io_manager.manager.backend)

        result = materialize_trades(instance, io_manager, CountingSource(trades_per_day=50, negative_price=True))

        assert not result.success
        assert len(CountingSource.calls) == 2  # one good run, then one attempt of the bad run
        error = step_failure(result).step_failure_data.error
        assert error.cls_name == "Failure"
        assert "InvalidDataError" in error.message and "price" in error.message
        assert snapshot(io_manager.manager.backend) == before  # nothing written
        assert not [e for e in instance.all_logs(result.run_id)
                    if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]

    def test_a_run_that_failed_on_bad_data_is_not_re_launched(self, instance, io_manager, materialize_trades):
        result = materialize_trades(instance, io_manager, CountingSource(trades_per_day=50, negative_price=True))
        run = instance.get_run_by_id(result.run_id)
        assert run.tags[NO_RUN_RETRY_TAG] == "false"
        assert run.tags[WILL_RETRY] == "false"

    def test_a_bad_key_raised_in_an_asset_is_not_retried(
        self, instance, io_manager, materialize_trades, instrument_pipeline
    ):
        attempts: list[int] = []

        @dg.asset(partitions_def=instrument_pipeline.assets.partitions_def, metadata={"data_type": "trades"},
                  io_manager_key="market_data_io_manager",
                  retry_policy=dg.RetryPolicy(max_retries=3, delay=0))
        def tagged_trades(context: dg.AssetExecutionContext) -> pd.DataFrame:
            attempts.append(context.retry_number)
            with permanent_failures(context.instance, context.run.run_id):
                raise InvalidKeyError("coin 'BTC/../x' is not a valid name: use letters and digits.")

        result = materialize_trades(instance, io_manager, CountingSource(), assets=[tagged_trades])
        assert not result.success and attempts == [0]
        assert instance.get_run_by_id(result.run_id).tags[WILL_RETRY] == "false"


class TestTransientErrorsAreRetried:
    def test_an_outage_in_the_source_is_retried_by_the_step_policy_and_then_succeeds(
        self, instance, io_manager, materialize_trades
    ):
        result = materialize_trades(
            instance, io_manager, CountingSource(trades_per_day=50, outages_before_success=1)
        )
        assert result.success
        assert len(CountingSource.calls) == 2  # failed once, retried once (~5 s later)
        manager = StorageManagerImpl(io_manager.manager.backend)
        assert manager.read_partitions("trades", None, table="trades").num_rows == 50

    def test_a_run_still_failing_on_an_outage_is_re_launched_by_the_run_retry(
        self, instance, io_manager, materialize_trades, instrument_pipeline
    ):
        @dg.asset(partitions_def=instrument_pipeline.assets.partitions_def, metadata={"data_type": "trades"},
                  io_manager_key="market_data_io_manager",
                  retry_policy=dg.RetryPolicy(max_retries=1, delay=0))
        def unreachable(context: dg.AssetExecutionContext) -> pd.DataFrame:
            with permanent_failures(context.instance, context.run.run_id):
                raise BackendUnavailableError("Azure Blob endpoint is unreachable (test outage); retry.")

        result = materialize_trades(instance, io_manager, CountingSource(), assets=[unreachable])
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        assert NO_RUN_RETRY_TAG not in run.tags
        assert run.tags[WILL_RETRY] == "true"
        error = step_failure(result).step_failure_data.error
        assert "BackendUnavailableError" in (error.cause or error).cls_name
