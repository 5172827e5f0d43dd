"""Sensors of the market-data pipeline, and the configured instrument universe.

:func:`build_instruments_sensor` builds ``instruments_sensor`` (part of the ``instrument``
profile's pipeline; no sensor exists at module level), which keeps the ``instruments``
dynamic partitions equal to the configured instruments (:func:`configured_instruments`), appending new
ones at the end so the registration order of the others stays put (the daily schedule's
range runs rely on it). Removing an instrument from the configuration removes its partitions
from Dagster (no more runs for it); the data already stored is kept. A tick costs time
linear in the number of instruments (set look-ups).
"""

import dagster as dg

from cb_storage_dagster.orchestration.partitions import INSTRUMENTS_PARTITIONS_NAME, instruments_partitions
from cb_storage_dagster.settings import PipelineSettings

__all__ = [
    "DEFAULT_INSTRUMENTS",
    "INSTRUMENTS_ENV_VAR",
    "INSTRUMENTS_FILE_ENV_VAR",
    "MAX_DELETES_PER_TICK",
    "build_instruments_sensor",
    "configured_instruments",
    "instrument_changes",
]

INSTRUMENTS_ENV_VAR = PipelineSettings.variable("instruments")
INSTRUMENTS_FILE_ENV_VAR = PipelineSettings.variable("instruments_file")
DEFAULT_INSTRUMENTS: str = PipelineSettings.model_fields["instruments"].default
MAX_DELETES_PER_TICK = 250
"""Instruments one tick removes at most; additions are one batched insert and never capped."""


def configured_instruments() -> list[str]:
    """The instrument universe: ``$CB_STORAGE_INSTRUMENTS_FILE``, ``$CB_STORAGE_INSTRUMENTS``
    or the default, in that order of precedence.

    The variable holds comma-separated ``<exchange>:<coin>`` keys, e.g.
    ``binance:BTC,coinbase:ETH``; the file (for thousands of instruments) holds the same keys
    separated by commas or newlines, with ``#`` starting a comment. Unset or blank means
    :data:`DEFAULT_INSTRUMENTS` (a blank value never wipes every instrument); an invalid
    entry raises ``InvalidKeyError`` / ``ValueError`` naming it, and a missing or empty file
    ``ConfigurationError`` (a ``ValueError``), so a typo fails the sensor tick instead of
    deleting partitions.
    """
    return PipelineSettings.load().instrument_keys()  # no Dagster needed: the CLI reads it too


def instrument_changes(current: list[str], wanted: list[str]) -> tuple[list[str], list[str]]:
    """``(to_add, to_delete)`` that turn ``current`` into ``wanted``, each in a stable order.

    >>> instrument_changes(["binance:BTC", "kraken:BTC"], ["binance:BTC", "binance:ETH"])
    (['binance:ETH'], ['kraken:BTC'])
    """
    # Sets keep a tick linear: list membership made it quadratic (4 million comparisons
    # at 2,000 instruments).
    current_keys, wanted_keys = set(current), set(wanted)
    to_add = [key for key in wanted if key not in current_keys]
    to_delete = sorted(key for key in current if key not in wanted_keys)
    return to_add, to_delete


def build_instruments_sensor() -> dg.SensorDefinition:
    """``instruments_sensor``: adds configured instruments that are missing from the
    ``instruments`` dynamic partitions and deletes those no longer configured.

    Example:
        >>> build_instruments_sensor().default_status
        <DefaultSensorStatus.RUNNING: 'RUNNING'>
    """

    @dg.sensor(
        name="instruments_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60,
        description=(
            f"Keeps the '{INSTRUMENTS_PARTITIONS_NAME}' dynamic partitions in sync with "
            f"${INSTRUMENTS_ENV_VAR} (comma-separated <exchange>:<coin>)."
        ),
    )
    def instruments_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        """Adds configured instruments that are missing and deletes those no longer configured."""
        wanted = configured_instruments()
        current = list(context.instance.get_dynamic_partitions(INSTRUMENTS_PARTITIONS_NAME))
        to_add, to_delete = instrument_changes(current, wanted)
        if not to_add and not to_delete:
            return dg.SkipReason(f"Instruments unchanged: {len(wanted)} registered.")
        requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
        if to_add:
            requests.append(instruments_partitions.build_add_request(to_add))
        if to_delete:
            # The daemon deletes one key per statement (~50 ms each on SQLite under load, 25 s
            # for 500): a bounded batch keeps each tick short; the rest goes on the next ticks.
            if len(to_delete) > MAX_DELETES_PER_TICK:
                context.log.info(
                    f"{len(to_delete) - MAX_DELETES_PER_TICK} more instruments to delete on the next ticks."
                )
            requests.append(instruments_partitions.build_delete_request(to_delete[:MAX_DELETES_PER_TICK]))
        context.log.info(
            f"Instruments to add: {len(to_add)} {to_add[:10] or ''}; "
            f"to delete: {len(to_delete)} {to_delete[:10] or ''}."
        )
        return dg.SensorResult(dynamic_partitions_requests=requests)

    return instruments_sensor
