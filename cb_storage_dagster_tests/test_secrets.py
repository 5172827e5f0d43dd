"""No Azure secret ever shows up where people look: a secret scan over Dagster runs.

Each scenario materializes a partition of an asset and a downstream asset that loads it,
with the credential configured the production way (``dg.EnvVar``, as
``storage_resource_from_env`` does), against Azurite; failing scenarios use a wrong key or
a service principal that cannot get a token. Then everything is scanned for the secret and
for fragments of it:

* the Dagster event log (``instance.all_logs`` and ``get_records_for_run``, serialized whole:
  messages, errors with their causes and stack traces, output metadata) and the run record;
* every file under the instance's directory (event and run databases, compute logs);
* every Python log record at DEBUG of every logger (Azure SDK, azure-identity, ours),
  and the process's stdout/stderr;
* ``repr``/``str`` of the resource, IO manager, backend and manager, and the messages and
  formatted tracebacks (with their chains) of errors raised by the storage layer directly;
* every object stored in the container (Delta commit info included).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
from cb_storage_dagster.orchestration.partitions import instruments_partitions, market_data_partitions
from cb_storage_dagster.orchestration.resources import AzureStorageResource
from cb_storage_dagster.storage import (
    AuthenticationError,
    BackendUnavailableError,
    StorageError,
    StorageManagerImpl,
)
from cb_storage_dagster_tests.support.azurite import AzuriteServer, new_container_backend
from cb_storage_dagster_tests.support.data import at
from cb_storage_dagster_tests.support.writer_process import candles

pytestmark = pytest.mark.azure

PARTITIONS = market_data_partitions("2024-01-01")
PARTITION = "2024-01-02|binance:BTC"
WRONG_KEY = base64.b64encode(b"cb-storage-wrong-key-" + uuid.uuid4().bytes + b"-padding!").decode()
CLIENT_SECRET = f"cb-client-secret-{uuid.uuid4().hex}"
ENV = "CB_TEST_AZURE_SECRET"


@dg.asset(partitions_def=PARTITIONS, metadata={"data_type": "ohlcv"}, io_manager_key="market_data_io_manager")
def candles_1m(context) -> pd.DataFrame:
    return candles(dt.date(2024, 1, 2), 60, 1.0)


@dg.asset(partitions_def=PARTITIONS, metadata={"data_type": "ohlcv"}, io_manager_key="market_data_io_manager")
def candles_copy(context, candles_1m: pd.DataFrame) -> pd.DataFrame:
    context.log.info(f"copying {len(candles_1m)} candles")
    return candles_1m


@dataclasses.dataclass(frozen=True)
class Scenario:
    """``resource(server, container, credential)``: ``credential`` is ``dg.EnvVar(ENV)`` for the
    Dagster run (production style) and the secret itself for the storage layer used directly."""

    name: str
    secret: Callable[[AzuriteServer, str], str]
    resource: Callable[[AzuriteServer, str, str], AzureStorageResource]
    succeeds: bool
    error: type[StorageError] | None = None


def _container_sas(server: AzuriteServer, container: str) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        server.account_name, container, account_key=server.account_key,
        permission=ContainerSasPermissions.from_string("racwdl"),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )


def _emulator(server: AzuriteServer, container: str, **credential: object) -> AzureStorageResource:
    return AzureStorageResource(container_name=container, account_name=server.account_name,
                                endpoint=server.blob_endpoint, max_retries=1, **credential)


SCENARIOS = [
    Scenario("account key", lambda s, c: s.account_key, lambda s, c, v: _emulator(s, c, account_key=v), True),
    # A literal instead of dg.EnvVar: still nowhere (repr masks it; Dagster stores no resource config).
    Scenario("account key given literally", lambda s, c: s.account_key,
             lambda s, c, v: _emulator(s, c, account_key=s.account_key), True),
    Scenario("SAS token", _container_sas, lambda s, c, v: _emulator(s, c, sas_token=v), True),
    Scenario("connection string", lambda s, c: s.connection_string,
             lambda s, c, v: AzureStorageResource(container_name=c, connection_string=v, max_retries=1), True),
    Scenario("wrong account key", lambda s, c: WRONG_KEY, lambda s, c, v: _emulator(s, c, account_key=v),
             False, AuthenticationError),
    # No token authority is reachable from the test machine: the run fails before any request.
    Scenario("service principal", lambda s, c: CLIENT_SECRET,
             lambda s, c, v: AzureStorageResource(
                 container_name=c, account_name=s.account_name, endpoint="https://127.0.0.1:9/devstoreaccount1",
                 tenant_id="11111111-2222-3333-4444-555555555555", client_id="cb-test-client",
                 client_secret=v, max_retries=1),
             False, BackendUnavailableError),
]


def fragments(secret: str) -> list[str]:
    """The secret, and pieces long enough to be unmistakable (a truncated or split leak)."""
    pieces = {secret}
    for part in secret.replace("&", ";").split(";"):  # SAS fields / connection-string fields
        key, _, value = part.partition("=")
        if key.lower() in ("sig", "accountkey") and len(value) >= 16:
            pieces |= {value, value[:16], value[-16:]}
    if len(secret) >= 32 and ";" not in secret and "&" not in secret:
        pieces |= {secret[:16], secret[-16:]}
    return sorted(pieces)


def leaks(haystacks: dict[str, str | bytes], secret: str) -> list[str]:
    found = []
    for where, text in haystacks.items():
        blob = text if isinstance(text, bytes) else text.encode(errors="replace")
        for piece in fragments(secret):
            if piece.encode() in blob:
                found.append(f"{where} contains {piece[:6]}...")
    return found


def error_texts(error: BaseException) -> str:
    return str(error) + repr(error) + "".join(traceback.format_exception(error, chain=True))


@pytest.fixture
def server() -> Iterator[AzuriteServer]:
    with AzuriteServer() as own:
        yield own


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_no_secret_in_logs_event_log_metadata_errors_or_repr(
    scenario: Scenario, server, tmp_path: Path, monkeypatch, caplog, capfd
):
    container = f"sec-{uuid.uuid4().hex[:16]}"
    setup = new_container_backend(server, container_name=container)
    secret = scenario.secret(server, container)
    monkeypatch.setenv(ENV, secret)
    io_manager = MarketDataIOManager(storage=scenario.resource(server, container, dg.EnvVar(ENV)))
    caplog.set_level(logging.DEBUG)  # every logger, the Azure SDK's HTTP logging included

    haystacks: dict[str, str | bytes] = {}
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        instance.add_dynamic_partitions(instruments_partitions.name, ["binance:BTC"])
        result = dg.materialize([candles_1m, candles_copy], partition_key=PARTITION, instance=instance,
                                resources={"market_data_io_manager": io_manager}, raise_on_error=False)
        assert result.success is scenario.succeeds
        run_id = result.run_id
        haystacks["event log"] = "\n".join(dg.serialize_value(e) for e in instance.all_logs(run_id))
        records = instance.get_records_for_run(run_id, limit=10_000).records
        haystacks["event records"] = "\n".join(dg.serialize_value(r.event_log_entry) for r in records)
        haystacks["run record"] = dg.serialize_value(instance.get_run_by_id(run_id))
        if scenario.succeeds:
            metadata = result.asset_materializations_for_node("candles_copy")[0].metadata
            haystacks["output metadata"] = repr(metadata)
            assert metadata["dagster/row_count"].value == 60
        else:
            failure = result.get_step_failure_events()[0].event_specific_data.error
            assert scenario.error is not None and (failure.cause or failure).cls_name == scenario.error.__name__
            print(f"{scenario.name}: {(failure.cause or failure).message}")
    for path in home.rglob("*"):
        if path.is_file():
            haystacks[f"instance file {path.name}"] = path.read_bytes()

    # The storage layer used directly: objects' repr and the errors it raises.
    resource = scenario.resource(server, container, secret)
    backend = resource.get_backend()
    manager = StorageManagerImpl(backend)
    haystacks["repr"] = " ".join([
        repr(resource), str(resource), repr(io_manager), repr(MarketDataIOManager(storage=resource)),
        repr(backend), backend.describe(), repr(manager), str(vars(backend)),
    ])
    key = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}
    if scenario.succeeds:
        assert len(manager.get_range(key, at(2024, 1, 2), at(2024, 1, 3), table="candles_1m")) == 60
    else:
        for operation in (lambda: manager.get_range(key, at(2024, 1, 2), at(2024, 1, 3), table="candles_1m"),
                          lambda: manager.save_entry(key, candles(dt.date(2024, 1, 3), 5, 1.0))):
            with pytest.raises(StorageError) as raised:
                operation()
            assert isinstance(raised.value, scenario.error), raised.value
            haystacks[f"error {type(raised.value).__name__}"] = error_texts(raised.value)

    for identifier in setup.list_items():
        haystacks[f"stored object {identifier}"] = setup.load_bytes(identifier)
    captured = capfd.readouterr()
    haystacks["stdout"], haystacks["stderr"] = captured.out, captured.err
    haystacks["python logs"] = "\n".join(
        f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''} {vars(r)}" for r in caplog.records)

    assert len(caplog.records) > 0 and haystacks["event log"]
    assert leaks(haystacks, secret) == []
    if secret != server.account_key:  # nor the account's real key, which the test setup used
        assert leaks(haystacks, server.account_key) == []
