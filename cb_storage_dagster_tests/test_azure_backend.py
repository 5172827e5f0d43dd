"""AzureBlobBackend against a real Azurite emulator (bytes through the SDK, tables through delta-rs).

Azurite runs on a random port, never 10000, so the Delta tests also prove that delta-rs
reaches an emulator on any port (see STACK-NOTES: ``AZURITE_BLOB_STORAGE_URL``).
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import pickle
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from pydantic import SecretStr

from cb_storage_dagster.domain.errors import (
    AuthenticationError,
    BackendUnavailableError,
    ConfigurationError,
    InvalidKeyError,
    NotFoundError,
    StorageError,
)
from cb_storage_dagster.storage.backends.azure.backend import AzureBlobBackend
from cb_storage_dagster.storage.backends.azure.endpoint import AZURITE_URL_ENV
from cb_storage_dagster_tests.support.azurite import AzuriteServer, new_container_backend

# A syntactically valid account key that Azurite does not know.
WRONG_KEY = base64.b64encode(b"not-the-azurite-key-" * 3 + b"0123").decode()
SP_SECRET = "sp-secret-value-1234567890"


@pytest.fixture(scope="module")
def azurite() -> Iterator[AzuriteServer]:
    with AzuriteServer() as server:
        yield server


@pytest.fixture
def backend(azurite: AzuriteServer) -> AzureBlobBackend:
    return new_container_backend(azurite, prefix="root")


def _candles(day: dt.date, rows: int = 3) -> pa.Table:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return pa.table(
        {
            "timestamp": pa.array(
                [start + dt.timedelta(minutes=i) for i in range(rows)], pa.timestamp("us", "UTC")
            ),
            "date": pa.array([day] * rows, pa.date32()),
            "close": pa.array([100.0 + i for i in range(rows)], pa.float64()),
        }
    )


def _read_rows(uri: str, options: dict[str, str]) -> int:
    table = DeltaTable(uri, storage_options=options)
    return table.to_pyarrow_dataset().to_table(use_threads=False).num_rows


def _secret_free(text: str, *secrets: str) -> bool:
    return all(secret not in text for secret in secrets)


# -- bytes ------------------------------------------------------------------------------------
def test_save_and_load_bytes_round_trip(backend: AzureBlobBackend) -> None:
    payload = bytes(range(256)) * 100
    backend.save_bytes("ohlcv/exchange=binance/data.bin", payload)
    assert backend.load_bytes("ohlcv/exchange=binance/data.bin") == payload
    backend.save_bytes("empty.bin", b"")
    assert backend.load_bytes("empty.bin") == b""


def test_save_bytes_overwrites(backend: AzureBlobBackend) -> None:
    backend.save_bytes("a/manifest.json", b'{"v": 1}')
    backend.save_bytes("a/manifest.json", b'{"v": 2}')
    assert backend.load_bytes("a/manifest.json") == b'{"v": 2}'
    assert backend.list_items("a") == ["a/manifest.json"]


def test_load_missing_raises_not_found(backend: AzureBlobBackend, azurite: AzuriteServer) -> None:
    with pytest.raises(NotFoundError, match="nope/x.bin"):
        backend.load_bytes("nope/x.bin")
    never_created = new_container_backend(azurite, create_container=False)
    with pytest.raises(NotFoundError):
        never_created.load_bytes("x.bin")


def test_list_items_is_recursive_sorted_and_relative(
    backend: AzureBlobBackend, azurite: AzuriteServer
) -> None:
    for name in ["c/b", "a/y/z", "ab/q", "a/x", "top"]:
        backend.save_bytes(name, name.encode())
    assert backend.list_items() == ["a/x", "a/y/z", "ab/q", "c/b", "top"]
    assert backend.list_items("a") == ["a/x", "a/y/z"]  # a folder: "ab/q" is not under "a"
    assert backend.list_items("a/") == ["a/x", "a/y/z"]
    assert backend.list_items("a/y") == ["a/y/z"]
    assert backend.list_items("missing") == []
    # The same container without a prefix sees the backend's root folder.
    whole = new_container_backend(azurite, container_name=backend.container_name)
    whole.save_bytes("outside.txt", b"x")
    assert whole.list_items() == ["outside.txt"] + [f"root/{n}" for n in backend.list_items()]
    assert "outside.txt" not in backend.list_items()


def test_list_items_on_missing_container_is_empty(azurite: AzuriteServer) -> None:
    assert new_container_backend(azurite, create_container=False).list_items() == []


@pytest.mark.slow
def test_list_items_pages_through_more_than_5000_blobs(backend: AzureBlobBackend) -> None:
    names = [f"many/{i // 1000:02d}/blob-{i:05d}" for i in range(5_100)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda name: backend.save_bytes(name, b"x"), names))
    backend.save_bytes("other/one", b"x")
    listed = backend.list_items("many")
    assert len(listed) == 5_100
    assert listed == sorted(names)
    assert len(backend.list_items()) == 5_101


def test_exists_for_blob_and_directory_prefix(backend: AzureBlobBackend) -> None:
    backend.save_bytes("dir/sub/file.txt", b"x")
    assert backend.exists("dir/sub/file.txt")
    assert backend.exists("dir/sub")
    assert backend.exists("dir/")
    assert backend.exists("dir")
    assert not backend.exists("di")  # a name prefix is not a folder
    assert not backend.exists("dir/sub/file.tx")
    assert not backend.exists("missing")


def test_delete_is_idempotent(backend: AzureBlobBackend) -> None:
    backend.save_bytes("d/x", b"1")
    backend.save_bytes("d/y", b"2")
    backend.delete("d/x")
    backend.delete("d/x")
    backend.delete("never/existed")
    assert backend.list_items("d") == ["d/y"]
    assert not backend.exists("d/x")


@pytest.mark.parametrize("identifier", ["../escape", "/absolute", "a/../../b", "a\\b", "a//b", ""])
def test_traversal_identifiers_are_rejected(backend: AzureBlobBackend, identifier: str) -> None:
    with pytest.raises(InvalidKeyError):
        backend.save_bytes(identifier, b"x")
    with pytest.raises(InvalidKeyError):
        backend.load_bytes(identifier)
    with pytest.raises(InvalidKeyError):
        backend.delete(identifier)
    if identifier:  # "" means the backend's root for list/exists/URI
        with pytest.raises(InvalidKeyError):
            backend.exists(identifier)
        with pytest.raises(InvalidKeyError):
            backend.list_items(identifier)
        with pytest.raises(InvalidKeyError):
            backend.get_uri_for_identifier(identifier)


def test_container_is_created_lazily_on_first_write(azurite: AzuriteServer) -> None:
    name = f"lazy-{uuid.uuid4().hex[:12]}"
    lazy = AzureBlobBackend(
        name,
        account_name=azurite.account_name,
        account_key=azurite.account_key,
        endpoint=azurite.blob_endpoint,
    )
    assert not lazy.exists("x")  # reading does not create the container
    assert lazy.list_items() == []
    lazy.save_bytes("x", b"1")
    assert lazy.load_bytes("x") == b"1"

    strict = AzureBlobBackend(
        f"strict-{uuid.uuid4().hex[:12]}",
        account_name=azurite.account_name,
        account_key=azurite.account_key,
        endpoint=azurite.blob_endpoint,
        create_container=False,
    )
    with pytest.raises(NotFoundError, match="ContainerNotFound"):
        strict.save_bytes("x", b"1")
    # delta-rs does not create containers either: the error says what to do.
    with pytest.raises(OSError) as raw:
        write_deltalake(
            strict.get_uri_for_identifier("t"), _candles(dt.date(2024, 1, 1)),
            storage_options=strict.get_storage_options(),
        )  # fmt: skip
    translated = strict.translate_error(raw.value)
    assert isinstance(translated, NotFoundError)
    assert "ensure_container()" in str(translated)
    strict.ensure_container()
    strict.ensure_container()  # idempotent
    strict.save_bytes("x", b"1")
    assert strict.list_items() == ["x"]


def test_backend_survives_pickling(backend: AzureBlobBackend) -> None:
    backend.save_bytes("p.bin", b"pickled")
    copy = pickle.loads(pickle.dumps(backend))
    assert repr(copy) == repr(backend)
    assert copy.load_bytes("p.bin") == b"pickled"


# -- authentication ---------------------------------------------------------------------------
def test_wrong_account_key_raises_authentication_error_without_the_key(
    backend: AzureBlobBackend, azurite: AzuriteServer
) -> None:
    backend.save_bytes("t/table.bin", b"x")
    wrong = new_container_backend(
        azurite, container_name=backend.container_name, account_key=WRONG_KEY,
        create_container=False,
    )  # fmt: skip
    operations = [
        lambda: wrong.save_bytes("t/x", b"x"),
        lambda: wrong.load_bytes("t/table.bin"),
        lambda: wrong.list_items(),
        lambda: wrong.exists("t/table.bin"),
        lambda: wrong.delete("t/table.bin"),
    ]
    for operation in operations:
        with pytest.raises(AuthenticationError) as info:
            operation()
        message = str(info.value)
        assert "account key" in message and "devstoreaccount1" in message
        assert _secret_free(message, WRONG_KEY, azurite.account_key)
        assert info.value.__suppress_context__  # the SDK's text is not chained into tracebacks
    assert _secret_free(repr(wrong) + wrong.describe(), WRONG_KEY)
    assert backend.load_bytes("t/table.bin") == b"x"  # nothing was deleted

    # delta-rs with the wrong key: translate_error gives the same kind of error.
    with pytest.raises(OSError) as raw:
        write_deltalake(
            wrong.get_uri_for_identifier("t/delta"),
            _candles(dt.date(2024, 1, 1)),
            storage_options=wrong.get_storage_options(),
        )
    translated = wrong.translate_error(raw.value)
    assert isinstance(translated, AuthenticationError)
    assert "HTTP 403" in str(translated)
    assert _secret_free(str(translated), WRONG_KEY)


def _container_sas(azurite: AzuriteServer, container: str, permission: str = "racwdl") -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        azurite.account_name,
        container,
        account_key=azurite.account_key,
        permission=ContainerSasPermissions.from_string(permission),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )


def test_sas_token_auth_for_bytes_and_delta(backend: AzureBlobBackend, azurite: AzuriteServer) -> None:
    sas = _container_sas(azurite, backend.container_name)
    via_sas = new_container_backend(
        azurite, container_name=backend.container_name, sas_token=SecretStr("?" + sas),
        prefix="sas", create_container=False,
    )  # fmt: skip
    via_sas.save_bytes("a.bin", b"sas")
    assert via_sas.load_bytes("a.bin") == b"sas"
    assert via_sas.list_items() == ["a.bin"]
    options = via_sas.get_storage_options()
    assert options["azure_storage_sas_token"] == sas
    uri = via_sas.get_uri_for_identifier("candles")
    for day in (1, 2, 3):
        write_deltalake(uri, _candles(dt.date(2024, 1, day)), mode="append", storage_options=options)
    assert _read_rows(uri, options) == 9
    assert _secret_free(repr(via_sas) + via_sas.describe(), sas)

    # A SAS with a tampered signature: refused, and neither SAS shows up in the message.
    tampered = sas.replace("sig=", "sig=AAAA")
    refused = new_container_backend(
        azurite, container_name=backend.container_name, sas_token=tampered,
        create_container=False,
    )  # fmt: skip
    with pytest.raises(AuthenticationError, match="SAS token") as info:
        refused.load_bytes("sas/a.bin")
    assert _secret_free(str(info.value), sas, tampered, "sig=")


def test_connection_string_auth(azurite: AzuriteServer) -> None:
    from_conn = new_container_backend(azurite, connection_string=azurite.connection_string)
    assert from_conn.auth_kind == "connection_string"
    assert from_conn.account_name == azurite.account_name
    assert from_conn.endpoint == azurite.blob_endpoint
    from_conn.save_bytes("c.bin", b"conn")
    assert from_conn.load_bytes("c.bin") == b"conn"
    options = from_conn.get_storage_options()
    assert options["azure_storage_account_key"] == azurite.account_key
    assert "connection_string" not in options  # delta-rs does not understand one
    uri = from_conn.get_uri_for_identifier("t")
    write_deltalake(uri, _candles(dt.date(2024, 1, 1)), storage_options=options)
    assert _read_rows(uri, options) == 3
    text = repr(from_conn) + from_conn.describe()
    assert _secret_free(text, azurite.account_key, azurite.connection_string)


# -- unavailability ---------------------------------------------------------------------------
@pytest.mark.slow
def test_stopped_azurite_raises_unavailable_quickly_and_restart_keeps_data(
    azurite: AzuriteServer,
) -> None:
    with AzuriteServer() as server:  # its own emulator: the module one keeps running
        own = new_container_backend(server, max_retries=2, retry_backoff_seconds=0.2)
        own.save_bytes("kept.bin", b"still here")
        uri = own.get_uri_for_identifier("candles")
        for day in (1, 2, 3):
            write_deltalake(
                uri, _candles(dt.date(2024, 1, day)), mode="append",
                storage_options=own.get_storage_options(),
            )  # fmt: skip

        server.stop()
        for operation in (
            lambda: own.load_bytes("kept.bin"),
            lambda: own.save_bytes("new.bin", b"x"),
            lambda: own.list_items(),
            lambda: own.exists("kept.bin"),
        ):
            started = time.monotonic()
            with pytest.raises(BackendUnavailableError) as info:
                operation()
            assert time.monotonic() - started < 10
            assert server.blob_endpoint in str(info.value)
            assert "unreachable after 2 retries" in str(info.value)

        started = time.monotonic()
        with pytest.raises(OSError) as raw:
            DeltaTable(uri, storage_options=own.get_storage_options())
        assert time.monotonic() - started < 10  # object_store's default would retry for minutes
        translated = own.translate_error(raw.value)
        assert isinstance(translated, BackendUnavailableError)
        assert "connection refused" in str(translated)

        server.start()  # same port, same data directory
        assert own.load_bytes("kept.bin") == b"still here"
        assert _read_rows(uri, own.get_storage_options()) == 9

    # The module emulator still works for delta-rs after the other one changed the env var.
    other = new_container_backend(azurite)
    other_uri = other.get_uri_for_identifier("t")
    write_deltalake(other_uri, _candles(dt.date(2024, 2, 1)), storage_options=other.get_storage_options())
    assert os.environ[AZURITE_URL_ENV] == f"http://127.0.0.1:{azurite.port}"
    assert _read_rows(other_uri, other.get_storage_options()) == 3


@pytest.mark.slow
def test_unresponsive_endpoint_times_out_quickly() -> None:
    """A port whose accept queue is full never completes a TCP handshake (a black hole)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        hanging = AzureBlobBackend(
            "c-hang",
            account_name="devstoreaccount1",
            account_key=AzuriteServer.account_key,
            endpoint=f"http://127.0.0.1:{port}/devstoreaccount1",
            max_retries=1,
            retry_backoff_seconds=0.1,
            timeout_seconds=1.0,
        )
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError, match="unreachable after 1 retries"):
            hanging.load_bytes("x")
        assert time.monotonic() - started < 8

        started = time.monotonic()
        with pytest.raises(OSError) as raw:
            DeltaTable(hanging.get_uri_for_identifier("t"), storage_options=hanging.get_storage_options())
        assert time.monotonic() - started < 8
        translated = hanging.translate_error(raw.value)
        assert isinstance(translated, BackendUnavailableError)
        assert "timed out" in str(translated)
    finally:
        for sock in [*fillers, listener]:
            sock.close()


# -- delta-rs ---------------------------------------------------------------------------------
def test_delta_table_through_uri_and_storage_options(
    backend: AzureBlobBackend, azurite: AzuriteServer
) -> None:
    assert azurite.port != 10000
    uri = backend.get_uri_for_identifier("ohlcv/1m")
    assert uri == (f"abfss://{backend.container_name}@devstoreaccount1.dfs.core.windows.net/root/ohlcv/1m")
    options = backend.get_storage_options()
    assert options["azure_storage_use_emulator"] == "true"
    assert os.environ[AZURITE_URL_ENV] == f"http://127.0.0.1:{azurite.port}"
    for day in (1, 2, 3, 4):  # 4 commits: the third failed with the endpoint-only options
        write_deltalake(
            uri, _candles(dt.date(2024, 1, day)), mode="append",
            partition_by=["date"], storage_options=options,
        )  # fmt: skip
    write_deltalake(
        uri, _candles(dt.date(2024, 1, 2), rows=5), mode="overwrite",
        predicate="date = '2024-01-02'", storage_options=options,
    )  # fmt: skip
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 4
    assert table.to_pyarrow_dataset().to_table(use_threads=False).num_rows == 3 * 3 + 5
    # The same objects are visible through the byte API.
    items = backend.list_items("ohlcv/1m")
    assert "ohlcv/1m/_delta_log/00000000000000000004.json" in items
    assert any(item.startswith("ohlcv/1m/date=2024-01-03/") for item in items)
    assert backend.exists("ohlcv/1m/_delta_log")


class TestOneEmulatorPerProcess:
    """delta-rs finds an emulator only through the process-wide ``AZURITE_BLOB_STORAGE_URL``.

    It is set when an emulator backend is built, never when options are asked for; backends
    on the same emulator share it, and a backend whose emulator is no longer the one in the
    variable is refused instead of silently writing to the other emulator.
    """

    def test_two_backends_on_one_emulator_both_read_and_write_tables(self, azurite: AzuriteServer) -> None:
        first, second = new_container_backend(azurite), new_container_backend(azurite)
        for backend, rows in ((first, 3), (second, 5)):
            uri = backend.get_uri_for_identifier("t")
            write_deltalake(uri, _candles(dt.date(2024, 1, 1), rows), storage_options=backend.get_storage_options())
        assert _read_rows(first.get_uri_for_identifier("t"), first.get_storage_options()) == 3
        assert _read_rows(second.get_uri_for_identifier("t"), second.get_storage_options()) == 5

    def test_asking_for_options_writes_no_environment_variable(
        self, azurite: AzuriteServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        backend = new_container_backend(azurite)
        monkeypatch.setenv(AZURITE_URL_ENV, "http://127.0.0.1:1")  # as if another emulator claimed it
        with pytest.raises(ConfigurationError, match="one Azurite emulator per process"):
            backend.get_storage_options()
        assert os.environ[AZURITE_URL_ENV] == "http://127.0.0.1:1"

    def test_a_backend_on_a_second_emulator_takes_over_and_the_first_is_refused_not_misrouted(
        self, azurite: AzuriteServer
    ) -> None:
        first = new_container_backend(azurite)
        with AzuriteServer() as other_server:
            other = new_container_backend(other_server)
            uri = other.get_uri_for_identifier("t")
            write_deltalake(uri, _candles(dt.date(2024, 1, 1)), storage_options=other.get_storage_options())
            assert _read_rows(uri, other.get_storage_options()) == 3
            with pytest.raises(ConfigurationError, match="one Azurite emulator per process"):
                first.get_storage_options()
            first.save_bytes("bytes/still.bin", b"ok")  # the SDK side has no such limit
            assert first.load_bytes("bytes/still.bin") == b"ok"
        again = new_container_backend(azurite)  # building a backend switches back
        assert again.get_storage_options()["azure_storage_use_emulator"] == "true"
        assert first.get_storage_options()["azure_storage_use_emulator"] == "true"


# -- configuration, secrets, options (no emulator needed) --------------------------------------
def _offline(**kwargs: object) -> AzureBlobBackend:
    return AzureBlobBackend("market-data", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"account_name": "acct"}, "0 Azure authentication methods"),
        ({"account_name": "acct", "account_key": WRONG_KEY, "sas_token": "sv=1&sig=x"}, "2 Azure auth"),
        ({"account_name": "acct", "account_key": ""}, "0 Azure authentication methods"),
        ({"account_name": "acct", "client_id": "id", "tenant_id": "t"}, "client_secret"),
        ({"account_name": "acct", "account_key": "not base64!"}, "not valid base64"),
        ({"account_key": WRONG_KEY}, "account_name is required"),
        ({"account_name": "Bad_Name", "account_key": WRONG_KEY}, "storage account name"),
        ({"connection_string": "AccountName=acct;BlobEndpoint=https://x"}, "neither AccountKey"),
        (
            {"account_name": "acct", "account_key": WRONG_KEY,
             "endpoint": "https://acct.blob.core.windows.net/?sv=1&sig=abc"},
            "query string",
        ),
        ({"account_name": "acct", "account_key": WRONG_KEY, "endpoint": "ftp://x"}, "http"),
    ],
)  # fmt: skip
def test_configuration_errors_name_the_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        _offline(**kwargs)
    for value in kwargs.values():
        if isinstance(value, str) and ("sig=" in value or value == WRONG_KEY):
            assert value not in str(info.value)


def test_auth_options_message_lists_every_method() -> None:
    with pytest.raises(ConfigurationError) as info:
        _offline(account_name="acct")
    for option in ("connection_string", "account_key", "sas_token", "client_secret",
                   "use_default_credential"):  # fmt: skip
        assert option in str(info.value)


def test_invalid_container_name_and_prefix() -> None:
    with pytest.raises(ConfigurationError, match="container name"):
        AzureBlobBackend("Bad_Container", account_name="acct", account_key=WRONG_KEY)
    with pytest.raises(InvalidKeyError):
        _offline(account_name="acct", account_key=WRONG_KEY, prefix="../up")


@pytest.mark.parametrize(
    ("kwargs", "secrets", "auth"),
    [
        ({"account_key": SecretStr(WRONG_KEY)}, [WRONG_KEY], "account_key"),
        ({"sas_token": "sv=2024&sig=SASSIGNATURE123"}, ["SASSIGNATURE123"], "sas_token"),
        (
            {"connection_string": f"AccountName=acct;AccountKey={WRONG_KEY};EndpointSuffix=core.windows.net"},
            [WRONG_KEY],
            "connection_string",
        ),
        (
            {"tenant_id": "tenant", "client_id": "client", "client_secret": SP_SECRET},
            [SP_SECRET],
            "service_principal",
        ),
        ({"use_default_credential": True}, [], "default_credential"),
    ],
)  # fmt: skip
def test_repr_and_describe_contain_no_secret(
    kwargs: dict[str, object], secrets: list[str], auth: str
) -> None:
    backend = _offline(account_name="acct", **kwargs)
    assert repr(backend) == (
        "AzureBlobBackend(account_name='acct', container_name='market-data', "
        f"endpoint='https://acct.blob.core.windows.net', auth='{auth}')"
    )
    assert backend.describe() == (
        f"azure://acct/market-data (endpoint https://acct.blob.core.windows.net, auth {auth})"
    )
    for secret in secrets:
        assert secret not in repr(backend) + backend.describe() + str(vars(backend))


def test_storage_options_for_real_accounts(monkeypatch: pytest.MonkeyPatch) -> None:
    key = _offline(account_name="acct", account_key=WRONG_KEY, max_retries=5, timeout_seconds=10)
    assert key.get_storage_options() == {
        "azure_storage_account_name": "acct",
        "azure_storage_account_key": WRONG_KEY,
        "max_retries": "5",
        "retry_timeout": "60000ms",
        "backoff_config.init_backoff": "500ms",
        "timeout": "10000ms",
        "connect_timeout": "5000ms",
    }
    assert key.get_uri_for_identifier("ohlcv/1m") == (
        "abfss://market-data@acct.dfs.core.windows.net/ohlcv/1m"
    )
    private = _offline(
        account_name="acct", sas_token="sv=1&sig=x",
        endpoint="https://acct.privatelink.blob.core.usgovcloudapi.net/",
    )  # fmt: skip
    options = private.get_storage_options()
    assert options["azure_storage_endpoint"] == "https://acct.privatelink.blob.core.usgovcloudapi.net"
    assert options["azure_storage_sas_token"] == "sv=1&sig=x"
    assert "azure_storage_use_emulator" not in options

    principal = _offline(
        account_name="acct", tenant_id="t", client_id="c", client_secret=SecretStr(SP_SECRET)
    )
    assert {k: v for k, v in principal.get_storage_options().items() if k.startswith("azure_c")} == {
        "azure_client_id": "c",
        "azure_client_secret": SP_SECRET,
    }
    assert principal.get_storage_options()["azure_tenant_id"] == "t"



class TestDefaultCredentialIsOneIdentity:
    """``use_default_credential`` resolves once; the SDK and delta-rs get the same identity."""

    @pytest.fixture(autouse=True)
    def clean_azure_environment(self, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
        for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
                     "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT", "MSI_ENDPOINT"):
            monkeypatch.delenv(name, raising=False)
        az = tmp_path / "bin" / "az"  # an Azure CLI on the PATH must not change the identity
        az.parent.mkdir()
        az.write_text("#!/bin/sh\nexit 1\n")
        az.chmod(0o755)
        monkeypatch.setenv("PATH", f"{az.parent}:{os.environ['PATH']}")

    def test_an_environment_service_principal(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from azure.identity import ClientSecretCredential

        monkeypatch.setenv("AZURE_CLIENT_ID", "env-client")
        monkeypatch.setenv("AZURE_TENANT_ID", "env-tenant")
        monkeypatch.setenv("AZURE_CLIENT_SECRET", "env-secret")
        default = _offline(account_name="acct", use_default_credential=True)
        options = default.get_storage_options()
        assert (options["azure_client_id"], options["azure_tenant_id"], options["azure_client_secret"]) == (
            "env-client", "env-tenant", "env-secret")
        credential = default._credential()
        assert isinstance(credential, ClientSecretCredential)
        assert credential._client_id == "env-client"
        assert "env-secret" not in repr(default) + default.describe()

    def test_a_workload_identity(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from azure.identity import WorkloadIdentityCredential

        monkeypatch.setenv("AZURE_CLIENT_ID", "env-client")
        monkeypatch.setenv("AZURE_TENANT_ID", "env-tenant")
        monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token")
        default = _offline(account_name="acct", use_default_credential=True)
        assert default.get_storage_options()["azure_federated_token_file"] == "/var/run/token"
        assert isinstance(default._credential(), WorkloadIdentityCredential)

    @pytest.mark.parametrize("client_id", [None, "user-assigned-id"])
    def test_otherwise_the_managed_identity_never_the_cli(self, monkeypatch, client_id) -> None:
        from azure.identity import ManagedIdentityCredential

        if client_id:
            monkeypatch.setenv("AZURE_CLIENT_ID", client_id)
        default = _offline(account_name="acct", use_default_credential=True)
        options = default.get_storage_options()
        assert "azure_use_azure_cli" not in options
        assert {k for k in options if k.startswith("azure_") and k != "azure_storage_account_name"} == (
            {"azure_client_id"} if client_id else set())
        assert options.get("azure_client_id") == client_id
        assert isinstance(default._credential(), ManagedIdentityCredential)
        assert default.identity.credential.source == "managed_identity"

    def test_the_identity_is_fixed_when_the_backend_is_built(self, monkeypatch) -> None:
        default = _offline(account_name="acct", use_default_credential=True)
        monkeypatch.setenv("AZURE_CLIENT_ID", "later")
        monkeypatch.setenv("AZURE_TENANT_ID", "later")
        monkeypatch.setenv("AZURE_CLIENT_SECRET", "later")
        assert "azure_client_secret" not in default.get_storage_options()


def test_translate_error_scrubs_and_ignores_unrelated_errors() -> None:
    sas = "sv=2024-01-01&sig=TOPSECRETSIG"
    backend = _offline(account_name="acct", sas_token=sas)
    raw = OSError(f"Error performing GET https://acct.blob.core.windows.net/c/x?{sas} - 403 Forbidden")
    translated = backend.translate_error(raw)
    assert isinstance(translated, AuthenticationError)
    assert "TOPSECRETSIG" not in str(translated)
    wrapped = RuntimeError("delta write failed")
    wrapped.__cause__ = OSError("tcp connect error: Connection refused (os error 111)")
    unavailable = backend.translate_error(wrapped)
    assert isinstance(unavailable, BackendUnavailableError)
    assert "https://acct.blob.core.windows.net" in str(unavailable)
    assert backend.translate_error(ValueError("Schema mismatch: column close")) is None
    assert backend.translate_error(ValueError("403 rows failed validation check")) is None
    assert backend.translate_error(ValueError("500 rows failed validation check")) is None
    assert isinstance(backend.translate_error(TimeoutError()), BackendUnavailableError)
    busy = backend.translate_error(OSError("Server returned non-2xx status code: 503 Service Unavailable"))
    assert isinstance(busy, BackendUnavailableError)
    assert backend.translate_error(NotFoundError("x")) is None
    assert isinstance(translated, StorageError)
