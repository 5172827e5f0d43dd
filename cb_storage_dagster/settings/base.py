"""The base of the settings models: the ``CB_STORAGE_`` prefix, the ``.env`` file, ``load()``
and its :class:`~cb_storage_dagster.domain.errors.ConfigurationError` messages naming the
variable; and the helpers the models' validators share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import ValidationError
from pydantic_core import PydanticCustomError, PydanticUseDefault
from pydantic_settings import BaseSettings, SettingsConfigDict

from cb_storage_dagster.domain.errors import ConfigurationError

ENV_PREFIX = "CB_STORAGE_"


def _invalid(reason: str) -> PydanticCustomError:
    """A validation error whose message continues ``VARIABLE='value' ...`` (see ``_describe``)."""
    return PydanticCustomError("invalid_variable", "{reason}", {"reason": reason})


def _blank_is_unset(value: Any) -> Any:
    """Strip a text value; a blank one means "unset" (the default), never an empty setting."""
    if isinstance(value, str):
        value = value.strip()
        if not value:
            raise PydanticUseDefault()
    return value


class CbStorageSettings(BaseSettings):
    """Base of the settings models: ``CB_STORAGE_`` prefix, ``.env`` file, :meth:`load`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )
    _what: ClassVar[str] = "storage"

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable behind ``field``."""
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Every field and its variable."""
        return {name: cls.variable(name) for name in cls.model_fields}

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Self:
        """Read the environment (or only ``environ``, if given; no ``.env`` then); a
        misconfiguration raises :class:`ConfigurationError` naming the variable (and never
        its secret value)."""
        try:
            if environ is None:
                return cls(**overrides)  # type: ignore[arg-type]
            given = {name: environ[var] for name, var in cls.variables().items() if var in environ}
            defaults = {name: field.get_default(call_default_factory=True) for name, field in cls.model_fields.items()}
            return cls(_env_file=None, **{**defaults, **given, **overrides})  # type: ignore[arg-type]
        except ValidationError as exc:
            problems = "; ".join(cls._describe(err) for err in exc.errors())
            raise ConfigurationError(f"Invalid {cls._what} configuration: {problems}") from None

    @classmethod
    def _describe(cls, error: Mapping[str, Any]) -> str:
        location = ".".join(str(p) for p in error.get("loc", ()))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if not location:
            return message
        variable = f"{ENV_PREFIX}{location.upper()}"
        if error.get("type") == "invalid_variable":  # only raised for non-secret settings
            return f"{variable}={error.get('input')!r} {message}"
        return f"{variable}: {message}"


def parse_pairs(text: str, hint: str) -> dict[str, str]:
    """``KEY=VALUE`` items separated by commas (the environment's form of a mapping); an item
    without ``=`` raises ``ValueError`` quoting it, followed by ``hint``.

    >>> parse_pairs(" kraken:BTC=BTC/USD ,binance=http://h/b?x=1,", "write KEY=VALUE")
    {'kraken:BTC': 'BTC/USD', 'binance': 'http://h/b?x=1'}
    """
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r}, which has no '=': {hint}.")
        pairs[key.strip()] = value.strip()
    return pairs
