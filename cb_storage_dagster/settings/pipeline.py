"""The Dagster pipeline's settings: :class:`PipelineSettings` (``PARTITIONING``, ``INSTRUMENTS``,
``INSTRUMENTS_FILE``, ``SCHEDULE_BATCH_SIZE``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import field_validator

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

    @field_validator("schedule_batch_size", mode="before")
    @classmethod
    def _positive(cls, value: Any) -> int:
        try:
            size = int(value)
        except (TypeError, ValueError):
            size = 0
        if size < 1:
            raise _invalid("must be a positive integer (instruments per daily run).")
        return size

    @field_validator("chunk_instruments", mode="before")
    @classmethod
    def _chunk(cls, value: Any) -> int:
        try:
            size = int(value)
        except (TypeError, ValueError):
            size = 0
        if size < 1:
            raise _invalid("must be a positive integer (instruments per chunk of a run).")
        return size

    _blank = field_validator("*", mode="before")(_blank_is_unset)  # defined last: runs first
