"""Every use of a private Dagster or dagster-azure attribute, in one place.

Written against dagster 1.13.27 and dagster-azure 0.29.27 (pinned together). Each function
names what it relies on; ``cb_storage_dagster_tests/test_dagster_internals.py`` probes every
one of them and fails naming the installed versions when one changes shape. Nothing else in
the package may touch a private attribute of a Dagster object.

* :func:`add_partition_metadata`: per-partition asset metadata from an IO manager. The
  public ``add_asset_metadata(..., partition_key=...)`` re-reads the run's partitions (for a
  dynamic dimension, from the instance) on every call: measured ~10 ms per partition for a
  31-day range run (315 ms against 1 ms) and ~29 ms for 365 days (10.5 s against 53 ms).
* :func:`use_blob_client` and :func:`blob_key`: the compute log manager on an explicit blob
  endpoint (dagster-azure builds its client for the public cloud only).
* :data:`AssetJob`: the type ``dg.define_asset_job`` returns (Dagster exports no name for it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition as AssetJob,  # noqa: F401 (for type hints elsewhere: what dg.define_asset_job returns)
    )
    from dagster._core.execution.context.system import StepExecutionContext
    from dagster_azure.blob import AzureBlobComputeLogManager

__all__ = [
    "DagsterInternalsChanged",
    "add_partition_metadata",
    "blob_key",
    "installed_versions",
    "metadata_accumulator",
    "use_blob_client",
]

_ACCUMULATOR = "_metadata_accumulator"


class DagsterInternalsChanged(RuntimeError):
    """A private Dagster attribute this module relies on is gone or changed shape."""


def installed_versions() -> str:
    """``dagster X, dagster-azure Y`` as installed (for the messages of this module)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        azure = version("dagster-azure")
    except PackageNotFoundError:  # pragma: no cover - a dependency
        azure = "not installed"
    return f"dagster {dg.__version__}, dagster-azure {azure}"


def _changed(what: str) -> DagsterInternalsChanged:
    return DagsterInternalsChanged(
        f"{what} ({installed_versions()}; written for dagster 1.13.27, dagster-azure 0.29.27): "
        "update cb_storage_dagster/orchestration/dagster_internals.py."
    )


def metadata_accumulator(step_context: StepExecutionContext) -> Any:
    """The step's ``_metadata_accumulator`` (what ``add_asset_metadata`` updates), or
    :class:`DagsterInternalsChanged` when it is missing or has no ``with_additional_asset_metadata``."""
    accumulator = getattr(step_context, _ACCUMULATOR, None)
    if accumulator is None or not hasattr(accumulator, "with_additional_asset_metadata"):
        raise _changed("StepExecutionContext._metadata_accumulator.with_additional_asset_metadata is gone")
    return accumulator


def add_partition_metadata(
    step_context: StepExecutionContext,
    asset_key: dg.AssetKey,
    metadata_by_partition: Mapping[str, Mapping[str, Any]],
) -> None:
    """Add ``metadata_by_partition[key]`` to the materialization of partition ``key``.

    Dagster 1.13 builds one materialization per partition from the output metadata plus the
    step's partition-scoped asset metadata (which wins on equal keys). This stores what
    ``add_asset_metadata(metadata, asset_key=..., partition_key=...)`` stores once it has
    checked the key is one of the run's; the keys given here are the run's own
    (``asset_partition_keys``), so that check is skipped. Should the accumulator change
    shape, the public (slow) path is taken instead, and the probe test fails.
    """
    try:
        accumulator = metadata_accumulator(step_context)
    except DagsterInternalsChanged:
        for partition_key, metadata in metadata_by_partition.items():
            step_context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=partition_key)
        return
    for partition_key, metadata in metadata_by_partition.items():
        accumulator = accumulator.with_additional_asset_metadata(
            asset_key=asset_key, partition_key=partition_key, metadata=metadata
        )
    setattr(step_context, _ACCUMULATOR, accumulator)


def use_blob_client(manager: AzureBlobComputeLogManager, client: BlobServiceClient, container: str) -> None:
    """Make ``manager`` upload and read through ``client`` (its ``_blob_client`` and
    ``_container_client``, which dagster-azure built for the public-cloud URL)."""
    for name in ("_blob_client", "_container_client"):
        if not hasattr(manager, name):
            raise _changed(f"AzureBlobComputeLogManager.{name} is gone")
    manager._blob_client = client
    manager._container_client = client.get_container_client(container)


def blob_key(manager: AzureBlobComputeLogManager, log_key: Sequence[str], io_type: Any) -> str:
    """The blob name dagster-azure stores the ``io_type`` log of ``log_key`` under (``_blob_key``)."""
    key_of = getattr(manager, "_blob_key", None)
    if key_of is None:
        raise _changed("AzureBlobComputeLogManager._blob_key is gone")
    return key_of(log_key, io_type)
