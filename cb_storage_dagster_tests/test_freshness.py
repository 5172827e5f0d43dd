"""The daily assets carry a freshness policy (yesterday's data by CB_STORAGE_FRESHNESS_DEADLINE)
in both partition profiles, next to their completeness checks; a bad deadline fails loading."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from cb_storage_dagster.domain.errors import ConfigurationError
from cb_storage_dagster.orchestration import build_pipeline
from cb_storage_dagster.orchestration.freshness import DAILY_ASSETS, daily_freshness_policy

DEADLINE_VAR = "CB_STORAGE_FRESHNESS_DEADLINE"


def policies(assets) -> dict[str, dg.FreshnessPolicy | None]:
    return {a.key.to_user_string(): a.specs_by_key[a.key].freshness_policy for a in assets.all}


@pytest.mark.parametrize("profile", ["instrument", "exchange"])
def test_the_daily_assets_expect_yesterday_by_the_default_deadline(profile, monkeypatch):
    monkeypatch.delenv(DEADLINE_VAR, raising=False)
    pipeline = build_pipeline(profile, ["binance:BTC", "kraken:ETH"])
    found = policies(pipeline.assets)
    assert found["order_book"] is None  # no history to fetch: only snapshots during the day
    for name in DAILY_ASSETS:
        policy = found[name]
        assert isinstance(policy, dg.FreshnessPolicy)
        assert (policy.deadline_cron, policy.lower_bound_delta, policy.timezone) == (
            "0 6 * * *", dt.timedelta(hours=6), "UTC"
        )
    # the completeness checks sit beside the policies, on the same assets
    checked = {c.asset_key.to_user_string() for d in pipeline.checks.all for c in d.check_specs}
    assert set(DAILY_ASSETS) <= checked


def test_the_deadline_is_configurable(monkeypatch):
    monkeypatch.setenv(DEADLINE_VAR, "07:45")
    built = build_pipeline("instrument").assets
    policy = policies(built)["ohlcv_1d"]
    assert policy.deadline_cron == "45 7 * * *"
    assert policy.lower_bound_delta == dt.timedelta(hours=7, minutes=45)  # any run since midnight UTC


def test_the_policy_is_part_of_the_definitions(monkeypatch, tmp_path):
    monkeypatch.setenv("CB_STORAGE_LOCAL_ROOT_PATH", str(tmp_path))
    monkeypatch.delenv(DEADLINE_VAR, raising=False)
    from cb_storage_dagster.definitions import build_definitions

    graph = build_definitions().resolve_asset_graph()
    assert graph.get(dg.AssetKey("ohlcv_1m")).freshness_policy == daily_freshness_policy(dt.time(6, 0))


def test_a_bad_deadline_names_the_variable(monkeypatch):
    monkeypatch.setenv(DEADLINE_VAR, "6pm")
    with pytest.raises(ConfigurationError, match=DEADLINE_VAR):
        build_pipeline("instrument")
