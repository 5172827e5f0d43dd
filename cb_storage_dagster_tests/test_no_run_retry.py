"""A permanent source error stops Dagster's run retry too (issue 17's run-retry defect).

``dagster.yaml`` re-launches a run that failed on a step unless the run carries
``dagster/retry_on_asset_or_op_failure=false``. A ccxt symbol the exchange refuses fails the
step with ``dg.Failure(allow_retries=False)``: the same run would fail the same way, so the
run must carry the tag as a storage error's run does.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from cb_storage_dagster.orchestration.failures import NO_RUN_RETRY_TAG
from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
from cb_storage_dagster.orchestration.resources import LocalStorageResource
from cb_storage_dagster_tests.test_ccxt_source import make_source

DAY = dt.date(2024, 3, 1)


def test_a_symbol_the_exchange_refuses_fails_the_run_with_the_no_run_retry_tag(fake, tmp_path, instrument_pipeline):
    fake.unknown_symbols.add("ETHUSDT")  # listed by the markets endpoint, refused by the trades endpoint
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("instruments", ["binance:ETH"])
        result = dg.materialize(
            [instrument_pipeline.assets.trades],
            partition_key=f"{DAY.isoformat()}|binance:ETH",
            resources={"market_data_io_manager": MarketDataIOManager(storage=LocalStorageResource(root_path=str(tmp_path))),
                       "market_data_source": make_source(fake)},
            instance=instance, raise_on_error=False,
        )
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert "binance:ETH" in failure.step_failure_data.error.message
        tags = instance.get_run_by_id(result.run_id).tags
        assert tags.get(NO_RUN_RETRY_TAG) == "false"
    assert fake.requests["aggTrades"] == 1  # refused once, not retried by the step either
