"""Sensors of the market-data pipeline.

:data:`instruments_sensor` keeps the ``instruments`` dynamic partitions equal to the
configured instruments (:func:`configured_instruments`). Removing an instrument from the
configuration removes its partitions from Dagster (no more runs for it); the data already
stored is kept.
"""

import os

import dagster as dg

from cb_storage_dagster.adapters.partitions import (
    INSTRUMENTS_PARTITIONS_NAME,
    instruments_partitions,
    parse_instruments,
)

__all__ = [
    "DEFAULT_INSTRUMENTS",
    "INSTRUMENTS_ENV_VAR",
    "SENSORS",
    "configured_instruments",
    "instrument_changes",
    "instruments_sensor",
]

INSTRUMENTS_ENV_VAR = "CB_STORAGE_INSTRUMENTS"
DEFAULT_INSTRUMENTS = "binance:BTC,binance:ETH,binance:SOL,coinbase:BTC,coinbase:ETH"


def configured_instruments() -> list[str]:
    """The instruments to keep as partitions: ``$CB_STORAGE_INSTRUMENTS`` or the default.

    The variable holds comma-separated ``<exchange>:<coin>`` keys, e.g.
    ``binance:BTC,coinbase:ETH``. Unset or blank means :data:`DEFAULT_INSTRUMENTS` (a blank
    value never wipes every instrument); an invalid entry raises ``InvalidKeyError`` /
    ``ValueError`` naming it, so a typo fails the sensor tick instead of deleting partitions.
    """
    raw = os.environ.get(INSTRUMENTS_ENV_VAR, "")
    return parse_instruments(raw if raw.strip() else DEFAULT_INSTRUMENTS)


def instrument_changes(current: list[str], wanted: list[str]) -> tuple[list[str], list[str]]:
    """``(to_add, to_delete)`` that turn ``current`` into ``wanted``, each in a stable order.

    >>> instrument_changes(["binance:BTC", "kraken:BTC"], ["binance:BTC", "binance:ETH"])
    (['binance:ETH'], ['kraken:BTC'])
    """
    to_add = [key for key in wanted if key not in current]
    to_delete = sorted(key for key in current if key not in wanted)
    return to_add, to_delete


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
        return dg.SkipReason(f"Instruments unchanged: {', '.join(wanted)}.")
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    if to_add:
        requests.append(instruments_partitions.build_add_request(to_add))
    if to_delete:
        requests.append(instruments_partitions.build_delete_request(to_delete))
    context.log.info(f"Instruments to add: {to_add or 'none'}; to delete: {to_delete or 'none'}.")
    return dg.SensorResult(dynamic_partitions_requests=requests)


SENSORS = [instruments_sensor]
