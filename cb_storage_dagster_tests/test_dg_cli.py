"""Dagster's ``dg`` CLI on this repository (issue 19): the real ``dg`` executable, run from the
repository root as a user runs it, reads the project from ``[tool.dg]`` in pyproject.toml.

``dg check defs`` loads the definitions, ``dg list defs --json`` lists exactly the product's
assets, jobs, schedules and sensors, ``dg launch --partition-range`` writes a range of
instrument-days in one run, and ``dg dev`` (what ``make run`` starts) serves the code location
without Dagster's ``dev_command is superseded`` warning.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest

from cb_storage_dagster_tests.support.dagster_dev import DG_BIN, REPO_ROOT, VENV, DagsterDev

EXPECTED_ASSETS = {"trades", "order_book", "ohlcv_1m", "ohlcv_1d"}


@pytest.fixture(scope="module")
def dg_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment like ``make run``'s: own DAGSTER_HOME (the repository's dagster.yaml) and data dir."""
    root = tmp_path_factory.mktemp("dg")
    home, data = root / "dagster_home", root / "data"
    home.mkdir()
    data.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    return {**os.environ, "DAGSTER_HOME": str(home), "CB_STORAGE_BACKEND_TYPE": "local",
            "CB_STORAGE_LOCAL_ROOT_PATH": str(data), "VIRTUAL_ENV": str(VENV),
            "CB_STORAGE_INSTRUMENTS": "binance:BTC,binance:ETH"}


def run_dg(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(DG_BIN), *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"dg {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_dg_check_defs_loads_the_project(dg_env: dict[str, str]) -> None:
    result = run_dg(dg_env, "check", "defs")
    assert "All definitions loaded successfully." in result.stdout + result.stderr


def test_dg_list_defs_lists_the_products_definitions(dg_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    listed = json.loads(run_dg(dg_env, "list", "defs", "--json").stdout)
    assets = {entry["asset_key"] for entry in listed["assets"]}
    assert assets == EXPECTED_ASSETS
    # ... which are the definitions `make run` serves, loaded here in process
    for name in ("CB_STORAGE_BACKEND_TYPE", "CB_STORAGE_LOCAL_ROOT_PATH", "CB_STORAGE_INSTRUMENTS"):
        monkeypatch.setenv(name, dg_env[name])
    from cb_storage_dagster.definitions import build_definitions  # builds `defs` on import

    graph = build_definitions().resolve_asset_graph()
    assert assets == {key.to_user_string() for key in graph.get_all_asset_keys()}
    by_key = {entry["asset_key"]: entry for entry in listed["assets"]}
    assert by_key["ohlcv_1m"]["dependency_keys"] == ["trades"]
    assert by_key["ohlcv_1d"]["dependency_keys"] == ["ohlcv_1m"]
    assert {entry["name"] for entry in listed["jobs"]} >= {"market_data_job", "delta_maintenance_job"}
    assert {entry["name"] for entry in listed["schedules"]} >= {"daily_market_data_schedule", "weekly_delta_maintenance"}
    assert {entry["name"] for entry in listed["sensors"]} >= {"instruments_sensor"}
    assert {entry["name"] for entry in listed["resources"]} >= {"market_data_io_manager", "market_data_source"}
    # Every asset check targets one of the assets listed.
    assert listed["asset_checks"] and {entry["key"].split(":")[0] for entry in listed["asset_checks"]} <= EXPECTED_ASSETS


@pytest.mark.slow
def test_dg_launch_writes_a_partition_range_in_one_run(dg_env: dict[str, str]) -> None:
    """The operator's command from the README: 2 days x 2 instruments of trades and candles."""
    import dagster as dg

    from cb_storage_dagster import StorageConfig

    # The instruments sensor registers the configured instruments while `make run` is up; here
    # the test registers them in the same instance the CLI uses.
    with dg.DagsterInstance.from_config(dg_env["DAGSTER_HOME"]) as instance:
        instance.add_dynamic_partitions("instruments", ["binance:BTC", "binance:ETH"])
    # `dg launch --partition-range` needs single-run backfill policies (the UI's are batches of 31).
    run_dg({**dg_env, "CB_STORAGE_BACKFILL_SINGLE_RUN": "true"}, "launch", "--assets", "trades,ohlcv_1m",
           "--partition-range", "2024-01-01|binance:BTC...2024-01-02|binance:ETH", timeout=300)
    with dg.DagsterInstance.from_config(dg_env["DAGSTER_HOME"]) as instance:
        runs = instance.get_run_records()
    assert len(runs) == 1 and runs[0].dagster_run.is_success

    manager = StorageConfig(backend_type="local", local_root_path=Path(dg_env["CB_STORAGE_LOCAL_ROOT_PATH"])).build_manager()
    for data_type, table in (("trades", "trades"), ("ohlcv", "ohlcv_1m")):
        for coin in ("BTC", "ETH"):
            dates = manager.list_dates("binance", coin, data_type, table=table)
            assert dates == [dt.date(2024, 1, 1), dt.date(2024, 1, 2)], (table, coin, dates)


@pytest.mark.slow
def test_dg_dev_serves_the_product_without_the_supersession_warning(tmp_path: Path) -> None:
    """``make run`` is ``dg dev -h 127.0.0.1 -p 3000`` from the repository root."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert '$(BIN)/dg dev -h 127.0.0.1 -p 3000' in makefile
    with DagsterDev(tmp_path) as dev:
        log = dev.log_path.read_text(errors="replace")
    assert "Serving dagster-webserver" in log
    assert "SupersessionWarning" not in log and "superseded" not in log


def test_backfill_single_run_setting_picks_the_assets_backfill_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    from cb_storage_dagster.domain.errors import ConfigurationError
    from cb_storage_dagster.orchestration import build_pipeline
    from cb_storage_dagster.settings import PipelineSettings

    def policies() -> set:
        return {asset.backfill_policy for asset in build_pipeline("instrument").assets.all}

    monkeypatch.delenv("CB_STORAGE_BACKFILL_SINGLE_RUN", raising=False)
    assert policies() == {dg.BackfillPolicy.multi_run(max_partitions_per_run=31)}
    monkeypatch.setenv("CB_STORAGE_BACKFILL_SINGLE_RUN", "true")
    assert policies() == {dg.BackfillPolicy.single_run()}
    with pytest.raises(ConfigurationError, match="CB_STORAGE_BACKFILL_SINGLE_RUN"):
        PipelineSettings.load({"CB_STORAGE_BACKFILL_SINGLE_RUN": "sometimes"})
