"""Apply what a sensor asked for, as the Dagster daemon would."""

from __future__ import annotations

import dagster as dg


def apply_partition_requests(instance: dg.DagsterInstance, result: object) -> None:
    """Add and delete the dynamic partitions a sensor result requests."""
    for request in getattr(result, "dynamic_partitions_requests", None) or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
