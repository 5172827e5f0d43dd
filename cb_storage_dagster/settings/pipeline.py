"""The Dagster pipeline's settings: :class:`PipelineSettings` (``PARTITIONING``, ``INSTRUMENTS``,
``INSTRUMENTS_FILE``, ``SCHEDULE_BATCH_SIZE``, ``CHUNK_INSTRUMENTS``, ``BACKFILL_SINGLE_RUN``, ``FRESHNESS_DEADLINE``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import ValidationInfo, field_validator

from cb_storage_dagster.domain.errors import ConfigurationError
from cb_storage_dagster.settings.base import CbStorageSettings, _blank_is_unset, _invalid


class PipelineSettings(CbStorageSettings):
    """How the Dagster pipeline is cut: partition profile, instrument universe, run sizes.

    A blank value means unset (the default), never "no instruments".

    Example:
        >>> settings = PipelineSettings.load({"CB_STORAGE_PARTITIONING": " Exchange ", "CB_STORAGE_INSTRUMENTS": " "})
        >>> settings.partitioning, settings.instruments
        ('exchange', 'binance:BTC,binance:ETH,binance:SOL,coinbase:BTC,coinbase:ETH')
    """

    _what: ClassVar[str] = "pipeline"

    partitioning: Literal["instrument", "exchange"] = "instrument"
    """Partition profile: date x instrument, or date x exchange (``orchestration.partitions``)."""
    instruments: str = "binance:BTC,binance:ETH,binance:SOL,coinbase:BTC,coinbase:ETH"
    """The instrument universe: comma-separated ``<exchange>:<coin>`` keys."""
    instruments_file: Path | None = None
    """A file listing the universe (wins over ``instruments``)."""
    schedule_batch_size: int = 50
    """Instruments per daily range run: 5 instruments -> 1 run, 2,000 -> 40 runs. A bigger block
    pays Dagster's run start-up less often; a smaller one redoes less when a run fails."""
    backfill_single_run: bool = False
    """``True``: the assets' backfill policy is one run per range (``BackfillPolicy.single_run``),
    which ``dg launch --partition-range`` requires; set it for that command only. ``False``
    (``dg dev``, the UI): a backfill runs in batches of at most 31 partitions."""
    freshness_deadline: dt.time = dt.time(6, 0)
    """UTC time of day (``HH:MM``) by which yesterday's data is expected: the daily assets'
    freshness policy fails when they were not materialized since midnight UTC by then."""
    chunk_instruments: int = 250
    """Instruments per chunk of the exchange profile (``CB_STORAGE_CHUNK_INSTRUMENTS``): its runs
    fetch, transform, check and write market data in blocks of this many instruments x one
    day, so a run's memory follows this number, not instruments x days (README, docs/SCALE.md)."""

    @field_validator("partitioning", mode="before")
    @classmethod
    def _profile(cls, value: Any) -> Any:
        text = str(value).lower()
        if text not in ("instrument", "exchange"):
            raise _invalid(
                "is not a partition profile: use 'instrument' (date x instrument, the default) or "
                "'exchange' (date x exchange)."
            )
        return text

    def instrument_keys(self) -> list[str]:
        """The instrument universe: the keys of ``instruments_file`` if set, else of
        ``instruments``, validated and de-duplicated in their order.

        The file holds ``<exchange>:<coin>`` keys separated by commas or newlines, ``#``
        starting a comment. An invalid key raises ``InvalidKeyError`` naming it; a file that
        cannot be read or lists nothing raises :class:`ConfigurationError` naming the variable.

        >>> PipelineSettings.load({"CB_STORAGE_INSTRUMENTS": "kraken:SOL, binance:BTC"}).instrument_keys()
        ['kraken:SOL', 'binance:BTC']
        """
        from cb_storage_dagster.domain.keys import parse_instruments

        if self.instruments_file is None:
            return parse_instruments(self.instruments)
        variable, path = self.variable("instruments_file"), self.instruments_file
        try:
            text = path.read_text()
        except OSError as error:
            raise ConfigurationError(
                f"{variable} points at {str(path)!r}, which cannot be read "
                f"({error.strerror}): fix the path or unset the variable."
            ) from None
        keys = parse_instruments(",".join(line.split("#", 1)[0] for line in text.splitlines()))
        if not keys:
            raise ConfigurationError(
                f"{variable} file {str(path)!r} lists no instrument: add "
                "'<exchange>:<coin>' lines, or unset the variable."
            )
        return keys

    @field_validator("freshness_deadline", mode="before")
    @classmethod
    def _time_of_day(cls, value: Any) -> Any:
        if isinstance(value, dt.time):
            text = value.strftime("%H:%M")
        else:
            text = str(value)
        try:
            deadline = dt.datetime.strptime(text, "%H:%M").time()
        except ValueError:
            deadline = None
        if deadline is None or deadline < dt.time(0, 1):
            raise _invalid("must be a UTC time of day HH:MM from 00:01 to 23:59, e.g. '06:00'.")
        return deadline

    @field_validator("schedule_batch_size", "chunk_instruments", mode="before")
    @classmethod
    def _positive(cls, value: Any, info: ValidationInfo) -> int:
        try:
            size = int(value)
        except (TypeError, ValueError):
            size = 0
        if size < 1:
            what = "instruments per daily run" if info.field_name == "schedule_batch_size" else "instruments per chunk of a run"
            raise _invalid(f"must be a positive integer ({what}).")
        return size

    _blank = field_validator("*", mode="before")(_blank_is_unset)  # defined last: runs first
