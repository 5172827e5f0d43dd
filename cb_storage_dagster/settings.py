"""Every ``CB_STORAGE_*`` environment variable, declared once, in three pydantic-settings models.

=======================  ==========================================================================
model                    variables
=======================  ==========================================================================
:class:`StorageConfig`   the storage backend: ``BACKEND_TYPE``, ``DEFAULT_FORMAT``, ``LOCAL_ROOT_PATH``,
                         ``MAX_COMMIT_RETRIES``, ``DELTA_LAYOUT``, ``CHECKPOINT_INTERVAL``, ``AZURE_*``
:class:`PipelineSettings`  the Dagster pipeline: ``PARTITIONING``, ``INSTRUMENTS``,
                         ``INSTRUMENTS_FILE``, ``SCHEDULE_BATCH_SIZE``
:class:`SourceSettings`  the market-data source: ``SOURCE``, ``CCXT_*``
=======================  ==========================================================================

Each is read from the environment and a ``.env`` file by its ``load()``, which raises
:class:`~cb_storage_dagster.domain.errors.ConfigurationError` naming the variable (never a
secret value). They are separate so that each consumer validates what it uses: a ccxt
setting never fails the instruments sensor. The nine Azure credential settings are declared
once, as :class:`AzureCredentials`, and become fields of :class:`StorageConfig` and of the
Dagster resource through :func:`azure_credential_fields`.

No Dagster import: this module is part of the storage core. It is longer than the ~300
lines of the other modules on purpose: it is the one place that declares every variable, and
splitting the three models up would scatter the declarations again.

Example:
    >>> PipelineSettings.load({"CB_STORAGE_SCHEDULE_BATCH_SIZE": "20"}).schedule_batch_size
    20
    >>> PipelineSettings.load({"CB_STORAGE_SCHEDULE_BATCH_SIZE": "x"})
    Traceback (most recent call last):
    ...
    cb_storage_dagster.domain.errors.ConfigurationError: Invalid pipeline configuration: CB_STORAGE_SCHEDULE_BATCH_SIZE='x' must be a positive integer (instruments per daily run).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self, TypedDict, get_args, get_type_hints

from pydantic import BaseModel, SecretStr, ValidationError, create_model, field_validator, model_validator
from pydantic_core import PydanticCustomError, PydanticUseDefault
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cb_storage_dagster.domain.errors import ConfigurationError, StorageError

if TYPE_CHECKING:
    from cb_storage_dagster.storage.interfaces import IStorageBackend
    from cb_storage_dagster.storage.manager import StorageManagerImpl

__all__ = [
    "AZURE_CREDENTIAL_SETTINGS",
    "AZURE_SECRET_SETTINGS",
    "AZURE_VARIABLES",
    "ENV_PREFIX",
    "SETTINGS_MODELS",
    "DEFAULT_CHECKPOINT_INTERVAL",
    "AzureCredentials",
    "CbStorageSettings",
    "PipelineSettings",
    "SourceSettings",
    "StorageConfig",
    "azure_credential_fields",
    "parse_pairs",
]

DEFAULT_CHECKPOINT_INTERVAL = 20
"""Commits between Delta checkpoints (``CB_STORAGE_CHECKPOINT_INTERVAL``): a new process opens
a table from its latest checkpoint plus at most this many JSON commits."""

ENV_PREFIX = "CB_STORAGE_"


# -- the Azure credential settings, declared once -------------------------------------------
class AzureCredentials(TypedDict, total=False):
    """Who an Azure backend is: give exactly one credential (see ``resolve_identity``).

    The keyword arguments of ``AzureBlobBackend`` and ``resolve_identity``; as fields,
    ``CB_STORAGE_AZURE_<NAME>`` of :class:`StorageConfig` and the config of the Dagster
    ``AzureStorageResource``. A ``SecretStr`` in the type marks a secret.
    """

    account_name: str | None
    connection_string: SecretStr | str | None
    account_key: SecretStr | str | None
    sas_token: SecretStr | str | None
    tenant_id: str | None
    client_id: str | None
    client_secret: SecretStr | str | None
    use_default_credential: bool
    endpoint: str | None


_AZURE_HINTS = get_type_hints(AzureCredentials)
AZURE_CREDENTIAL_SETTINGS: tuple[str, ...] = tuple(_AZURE_HINTS)
AZURE_SECRET_SETTINGS = frozenset(name for name, hint in _AZURE_HINTS.items() if SecretStr in get_args(hint))
AZURE_VARIABLES = {name: f"{ENV_PREFIX}AZURE_{name.upper()}" for name in AZURE_CREDENTIAL_SETTINGS}
"""The variable behind each Azure setting, for error messages."""


class _AzureCredentialFields(BaseModel):
    _credential_prefix: ClassVar[str] = ""

    def azure_credentials(self) -> AzureCredentials:
        """The nine credential settings, as :class:`AzureCredentials` keyword arguments."""
        return {name: getattr(self, self._credential_prefix + name) for name in AZURE_CREDENTIAL_SETTINGS}  # type: ignore[return-value]


def azure_credential_fields(*, prefix: str = "", secret: type = SecretStr) -> type[_AzureCredentialFields]:
    """A pydantic mixin with one field per :class:`AzureCredentials` setting, named
    ``prefix + name``: secrets typed ``secret | None``, ``use_default_credential`` a ``bool``
    (default ``False``), the others ``str | None``.

    >>> sorted(azure_credential_fields(prefix="azure_").model_fields)[:2]
    ['azure_account_key', 'azure_account_name']
    """
    fields: dict[str, Any] = {}
    for name, hint in _AZURE_HINTS.items():
        if hint is bool:
            fields[prefix + name] = (bool, False)
        else:
            fields[prefix + name] = (secret | None if name in AZURE_SECRET_SETTINGS else str | None, None)
    mixin = create_model("AzureCredentialFields", __base__=_AzureCredentialFields, **fields)
    mixin._credential_prefix = prefix
    return mixin


# -- the shared base: prefix, env file, load() and its error messages ------------------------
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


# -- the storage backend ---------------------------------------------------------------------
class StorageConfig(CbStorageSettings, azure_credential_fields(prefix="azure_", secret=SecretStr)):
    """Which backend to use and how, read from ``CB_STORAGE_*`` variables (or a ``.env`` file).

    Example:
        >>> import tempfile
        >>> config = StorageConfig(backend_type="local", local_root_path=tempfile.mkdtemp())
        >>> manager = config.build_manager()
        >>> manager.default_format
        'delta'

    Secrets are :class:`~pydantic.SecretStr`: they print as ``**********``. The Azure
    credentials are the fields ``azure_<name>`` of :class:`AzureCredentials`.
    """

    backend_type: Literal["local", "azure"] = "local"
    default_format: Literal["delta", "parquet", "json"] = "delta"
    local_root_path: Path | None = None
    max_commit_retries: int | None = None
    delta_layout: Literal["instrument", "exchange"] | None = None
    """Layout of Delta tables created from now on (``CB_STORAGE_DELTA_LAYOUT``): ``exchange``
    for thousands of instruments per exchange; existing tables keep theirs. Unset: ``instrument``
    for the storage manager; the Dagster definitions pick the partition profile's layout."""

    checkpoint_interval: int = DEFAULT_CHECKPOINT_INTERVAL
    """Delta writers checkpoint a table at least every this many commits
    (``CB_STORAGE_CHECKPOINT_INTERVAL``; see :data:`DEFAULT_CHECKPOINT_INTERVAL`)."""

    azure_container_name: str | None = None
    azure_prefix: str = ""
    azure_max_retries: int = 3

    @model_validator(mode="after")
    def _check_backend(self) -> StorageConfig:
        """Validate every setting of the chosen backend now, naming the variable, so that a
        misconfiguration fails when the configuration is read (e.g. when the Dagster
        definitions load), not at the first storage call inside a run."""
        if self.max_commit_retries is not None and self.max_commit_retries < 0:
            raise ValueError(f"{ENV_PREFIX}MAX_COMMIT_RETRIES must be >= 0 (or unset for the default).")
        if self.checkpoint_interval < 1:
            raise ValueError(f"{ENV_PREFIX}CHECKPOINT_INTERVAL must be >= 1 (commits between checkpoints).")
        if self.backend_type == "local" and self.local_root_path is None:
            raise ValueError(
                f"{ENV_PREFIX}LOCAL_ROOT_PATH is not set: the local backend needs a root folder, "
                f"e.g. export {ENV_PREFIX}LOCAL_ROOT_PATH=$PWD/data"
            )
        if self.backend_type == "local" and self.local_root_path is not None and self.local_root_path.is_file():
            raise ValueError(f"{ENV_PREFIX}LOCAL_ROOT_PATH {str(self.local_root_path)!r} is a file, not a folder.")
        if self.backend_type == "azure":
            self._check_azure()
        return self

    def _check_azure(self) -> None:
        from cb_storage_dagster.domain.identifiers import normalize_identifier
        from cb_storage_dagster.storage.backends.azure.backend import check_container_name
        from cb_storage_dagster.storage.backends.azure.resolve import resolve_identity

        if not self.azure_container_name:
            raise ValueError(f"{ENV_PREFIX}AZURE_CONTAINER_NAME is not set: the azure backend needs a container.")
        check_container_name(self.azure_container_name, f"{ENV_PREFIX}AZURE_CONTAINER_NAME")
        if self.azure_max_retries < 0:
            raise ValueError(f"{ENV_PREFIX}AZURE_MAX_RETRIES must be >= 0.")
        try:
            normalize_identifier(self.azure_prefix, allow_empty=True)
        except StorageError as error:
            raise ValueError(f"{ENV_PREFIX}AZURE_PREFIX: {error}") from None
        # the same validation the backend does, with the variables' names
        resolve_identity(self.azure_credentials(), names=AZURE_VARIABLES)

    def build_backend(self) -> IStorageBackend:
        if self.backend_type == "local":
            from cb_storage_dagster.storage.backends.local import LocalFileBackend

            return LocalFileBackend(self.local_root_path)  # type: ignore[arg-type]
        from cb_storage_dagster.storage.backends.azure.backend import AzureBlobBackend

        return AzureBlobBackend(
            self.azure_container_name,  # type: ignore[arg-type]
            **self.azure_credentials(),
            prefix=self.azure_prefix,
            max_retries=self.azure_max_retries,
        )

    def build_manager(self) -> StorageManagerImpl:
        from cb_storage_dagster.storage.manager import StorageManagerImpl

        return StorageManagerImpl(
            self.build_backend(),
            default_format=self.default_format,
            max_commit_retries=self.max_commit_retries,
            default_layout=self.delta_layout or "instrument",
            checkpoint_interval=self.checkpoint_interval,
        )


# -- the Dagster pipeline --------------------------------------------------------------------
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

    _blank = field_validator("*", mode="before")(_blank_is_unset)  # defined last: runs first


# -- the market-data source ------------------------------------------------------------------
class SourceSettings(CbStorageSettings):
    """Which market-data source the definitions use (``source``), and the ccxt source's
    settings (``ccxt_*``; unset ones keep ``CcxtMarketDataSource``'s defaults).

    Example:
        >>> settings = SourceSettings.load({"CB_STORAGE_SOURCE": "ccxt", "CB_STORAGE_CCXT_PAGE_LIMIT": "200"})
        >>> settings.source, settings.ccxt_options()
        ('ccxt', {'page_limit': 200})
    """

    _what: ClassVar[str] = "source"

    source: Literal["synthetic", "ccxt"] = "synthetic"
    ccxt_default_quote: str | None = None
    ccxt_symbols: Annotated[dict[str, str], NoDecode] = {}
    """Symbol overrides, ``kraken:BTC=BTC/USD,...``."""
    ccxt_api_urls: Annotated[dict[str, str], NoDecode] = {}
    """Base URLs per exchange, ``binance=http://host/binance,...`` (a proxy, or a test server)."""
    ccxt_timeout_ms: int | None = None
    ccxt_rate_limit_ms: float | None = None
    ccxt_page_limit: int | None = None
    ccxt_max_attempts: int | None = None
    ccxt_max_wait_seconds: float | None = None
    ccxt_order_book_depth: int | None = None

    _PAIR_HINTS: ClassVar[dict[str, str]] = {
        "ccxt_symbols": "write INSTRUMENT=SYMBOL, e.g. 'kraken:BTC=BTC/USD'",
        "ccxt_api_urls": "write EXCHANGE=URL, e.g. 'binance=http://127.0.0.1:8123/binance'",
    }

    def ccxt_options(self) -> dict[str, Any]:
        """Keyword arguments of ``CcxtMarketDataSource`` for the ccxt settings that are set."""
        options = {
            name.removeprefix("ccxt_"): value
            for name, value in self
            if name.startswith("ccxt_") and value is not None and value != {}
        }
        if "symbols" in options:
            options["symbol_overrides"] = options.pop("symbols")
        return options

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, value: Any) -> Any:
        text = str(value).lower()
        if text not in ("synthetic", "ccxt"):
            raise _invalid("is not a source: use 'synthetic' (the default) or 'ccxt'.")
        return text

    @field_validator("ccxt_timeout_ms", "ccxt_page_limit", "ccxt_max_attempts", "ccxt_order_book_depth", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        return cls._number(value, int)

    @field_validator("ccxt_rate_limit_ms", "ccxt_max_wait_seconds", mode="before")
    @classmethod
    def _real_number(cls, value: Any) -> Any:
        return cls._number(value, float)

    @staticmethod
    def _number(value: Any, kind: type) -> Any:
        if value is None or isinstance(value, (int, float)):
            return value
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise _invalid("is not a number.") from None

    @field_validator("ccxt_symbols", "ccxt_api_urls", mode="before")
    @classmethod
    def _pairs(cls, value: Any, info: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return parse_pairs(value, cls._PAIR_HINTS[info.field_name])
        except ValueError as error:
            raise _invalid(f"holds {error}") from None

    _blank = field_validator("*", mode="before")(_blank_is_unset)  # defined last: runs first


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


SETTINGS_MODELS: tuple[type[CbStorageSettings], ...] = (StorageConfig, PipelineSettings, SourceSettings)
"""Every settings model; together they declare every ``CB_STORAGE_*`` variable."""
