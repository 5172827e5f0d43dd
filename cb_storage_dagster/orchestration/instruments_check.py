"""The check that an exchange-profile run stored every instrument-day it was meant to.

An instrument whose fetch failed for good or whose rows were refused is left out of its run
(:mod:`.chunked_fetch`), with its stored rows kept; the ``trades`` materialization lists it in
``failed_instruments``. The ``instruments_stored`` check reads that list from the run's
materializations and fails naming each left-out instrument-day and the run tag that re-runs
only them (:func:`~cb_storage_dagster.orchestration.run_scope.repair_tags`).
"""

import dagster as dg

from cb_storage_dagster.orchestration.asset_metadata import FAILED_INSTRUMENTS
from cb_storage_dagster.orchestration.run_scope import repair_tags

__all__ = ["instruments_stored_check"]


def instruments_stored_check(
    asset: dg.AssetsDefinition, partitions_def: dg.PartitionsDefinition
) -> dg.AssetChecksDefinition:
    """``instruments_stored`` on ``asset`` (the exchange profile's ``trades``), partitioned like it."""
    def trades_instruments_stored(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        """Every instrument-day of the run was stored: none was left out because its fetch
        failed for good or its rows were refused (those keep their stored rows). Fails naming
        them, with the run tag that re-runs only them."""
        failures = _run_failures(context, asset.key)
        instruments = sorted({f["instrument"] for f in failures})
        repair = repair_tags(instruments) if instruments else {}
        shown = "; ".join(f"{f['instrument']} {f['date']} ({f['error_type']}: {f['message']})" for f in failures[:5])
        return dg.AssetCheckResult(
            passed=not failures,
            metadata={"failed_instrument_days": len(failures), "failed_instruments": instruments[:100],
                      "failures": dg.MetadataValue.json(failures[:100]),
                      **({"repair_run_tag": dg.MetadataValue.json(repair)} if repair else {})},
            description=(
                f"{len(failures)} instrument-day(s) not stored: {shown}. Re-run only them: launch these "
                f"partitions with the run tag {', '.join(f'{k}={v}' for k, v in repair.items())} (README)."
                if failures else "Every instrument-day of the run was stored."
            ),
        )

    return dg.asset_check(asset=asset, name="instruments_stored", partitions_def=partitions_def)(
        trades_instruments_stored)


def _run_failures(context: dg.AssetCheckExecutionContext, asset_key: dg.AssetKey) -> list[dict[str, str]]:
    """The failed instrument-days the asset's materializations of this run list (one list,
    copied onto each partition's materialization, so de-duplicated)."""
    records = context.instance.get_records_for_run(
        run_id=context.run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    found: dict[tuple[str, str], dict[str, str]] = {}
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is None or materialization.asset_key != asset_key:
            continue
        listed = materialization.metadata.get(FAILED_INSTRUMENTS)
        for failure in (listed.value if listed is not None else None) or []:
            found[(failure["instrument"], failure["date"])] = failure
    return [found[key] for key in sorted(found)]
