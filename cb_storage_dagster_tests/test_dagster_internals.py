"""Probes of every private Dagster / dagster-azure attribute that orchestration/dagster_internals.py
uses: each fails with a message naming the installed versions when one changes shape, so that
a Dagster upgrade says exactly what to update instead of silently taking a slow or wrong path."""

import inspect

import dagster as dg
import pytest
from dagster._core.storage.compute_log_manager import ComputeIOType

from cb_storage_dagster.orchestration import dagster_internals
from cb_storage_dagster.orchestration.dagster_internals import (
    DagsterInternalsChanged,
    add_partition_metadata,
    blob_key,
    installed_versions,
    metadata_accumulator,
    use_blob_client,
)

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01")
KEYS = ["2024-01-02", "2024-01-03", "2024-01-04"]
RANGE = {"dagster/asset_partition_range_start": KEYS[0], "dagster/asset_partition_range_end": KEYS[-1]}


def _fail(what: str) -> None:
    pytest.fail(f"{what} ({installed_versions()}): update orchestration/dagster_internals.py", pytrace=False)


class RowCountIOManager(dg.IOManager):
    """Publishes a distinct figure per partition, the way MarketDataIOManager does."""

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        metadata_accumulator(context.step_context)  # raises DagsterInternalsChanged if gone
        add_partition_metadata(
            context.step_context, context.asset_key,
            {key: {"dagster/row_count": i + 1} for i, key in enumerate(context.asset_partition_keys)},
        )

    def load_input(self, context: dg.InputContext) -> object:  # pragma: no cover - not loaded
        return None


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def counted(context: dg.AssetExecutionContext) -> int:
    return len(context.partition_keys)


def test_the_step_metadata_accumulator_publishes_one_figure_per_partition():
    with dg.instance_for_test() as instance:
        try:
            result = dg.materialize([counted], resources={"io_manager": RowCountIOManager()},
                                    instance=instance, tags=RANGE, raise_on_error=False)
        except DagsterInternalsChanged as changed:
            _fail(str(changed))
        if not result.success:
            _fail(f"a range run publishing per-partition metadata failed: {result.all_events[-1].message}")
        records = instance.fetch_materializations(dg.AssetKey("counted"), limit=10).records
        counts = {r.asset_materialization.partition: r.asset_materialization.metadata["dagster/row_count"].value
                  for r in records}
    if counts != {key: i + 1 for i, key in enumerate(KEYS)}:
        _fail(f"StepExecutionContext._metadata_accumulator no longer reaches each partition's materialization: {counts}")


def test_the_accumulator_keeps_with_additional_asset_metadata_with_its_keywords():
    from dagster._core.execution.context.system import StepExecutionContext

    source = inspect.getsource(StepExecutionContext.add_asset_metadata)
    if "self._metadata_accumulator.with_additional_asset_metadata(" not in source:
        _fail("StepExecutionContext.add_asset_metadata no longer updates _metadata_accumulator")
    for keyword in ("asset_key=", "metadata=", "partition_key="):
        if keyword not in source:
            _fail(f"with_additional_asset_metadata no longer takes {keyword!r}")


def test_the_blob_compute_log_manager_keeps_its_clients_and_blob_key():
    from azure.storage.blob import BlobServiceClient
    from dagster_azure.blob import AzureBlobComputeLogManager

    manager = AzureBlobComputeLogManager(
        storage_account="devstoreaccount1", container="logs", prefix="compute-logs",
        access_key_or_sas_token="sv=2024-01-01&sig=x",
    )
    client = BlobServiceClient(account_url="http://127.0.0.1:10000/devstoreaccount1", credential=None)
    try:
        use_blob_client(manager, client, "logs")
        key = blob_key(manager, ["run", "step"], ComputeIOType.STDERR)
    except DagsterInternalsChanged as changed:
        _fail(str(changed))
    if key != "compute-logs/storage/run/step.err":
        _fail(f"AzureBlobComputeLogManager._blob_key gives {key!r}")
    for method in ("_upload_file_obj", "download_from_cloud_storage", "cloud_storage_has_logs"):
        if "self._container_client" not in inspect.getsource(getattr(AzureBlobComputeLogManager, method)):
            _fail(f"AzureBlobComputeLogManager.{method} no longer goes through _container_client")
    if manager._container_client.url != "http://127.0.0.1:10000/devstoreaccount1/logs":
        _fail("use_blob_client did not replace AzureBlobComputeLogManager._container_client")


def test_the_module_names_the_versions_it_was_written_for():
    assert "dagster 1.13.27" in inspect.getsource(dagster_internals)
    assert installed_versions().startswith(f"dagster {dg.__version__}")
