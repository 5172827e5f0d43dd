"""The storage core's one retry policy (``retry.py``) and errors that stay the project's.

What is transient is decided by exception type; the conflict loop redoes only lost commit
races (real delta-rs conflicts here), never a data error; every error that leaves the storage
core is a ``StorageError`` with our own words.
"""

from __future__ import annotations

import datetime as dt
import socket

import pyarrow as pa
import pytest

from cb_storage_dagster.domain.keys import decode_instrument, parse_instruments
from cb_storage_dagster.retry import (
    Attempt,
    RetryPolicy,
    conflict_reason,
    is_transient,
    run_with_conflict_retries,
)
from cb_storage_dagster.storage import (
    AuthenticationError,
    BackendUnavailableError,
    InvalidDataError,
    InvalidKeyError,
    LocalFileBackend,
    SchemaMismatchError,
    StorageError,
    UnsupportedTableFeatureError,
    WriteConflictError,
)
from cb_storage_dagster.storage.delta.errors import translate_delta_error
from cb_storage_dagster.storage.delta.table_format import DeltaFormat

FAST = RetryPolicy(attempts=3, max_attempts=3, backoff_seconds=0.001)


def rows(value: float, n: int = 4) -> pa.Table:
    return pa.table({"coin": ["BTC"] * n, "value": [value] * n})


def translate(exc: BaseException) -> StorageError:
    return translate_delta_error(exc, table="t", action="write")


# -- transient or not, by type ---------------------------------------------------------------
class TestIsTransient:
    def test_project_errors_say_it_themselves(self):
        assert is_transient(WriteConflictError("lost"))
        assert is_transient(BackendUnavailableError("down"))
        for error in (InvalidDataError("NaN"), SchemaMismatchError("x"), InvalidKeyError("k"),
                      AuthenticationError("no"), UnsupportedTableFeatureError("f")):
            assert not is_transient(error), error

    def test_delta_rs_commit_races_are_transient_other_delta_errors_are_not(self):
        from deltalake.exceptions import CommitFailedError, DeltaProtocolError, TableNotFoundError
        from deltalake.exceptions import SchemaMismatchError as DeltaSchemaMismatch

        assert is_transient(CommitFailedError("Commit failed: a concurrent transactions added new data"))
        for error in (DeltaSchemaMismatch("bad type"), DeltaProtocolError("reader v4"), TableNotFoundError("no")):
            assert not is_transient(error), error

    def test_conflict_text_counts_only_on_delta_rs_errors(self):
        assert conflict_reason(ValueError("concurrent transaction deleted the same data")) is None
        assert not is_transient(ValueError("concurrent"))

    @pytest.mark.parametrize(("status", "transient"), [
        (408, True), (429, True), (500, True), (503, True), (400, False), (403, False), (404, False), (409, False),
    ])
    def test_azure_http_errors_by_status(self, status, transient):
        from azure.core.exceptions import HttpResponseError

        error = HttpResponseError(message=f"status {status}")
        error.status_code = status
        assert is_transient(error) is transient

    def test_azure_network_errors_are_transient(self):
        from azure.core.exceptions import ServiceRequestError, ServiceResponseError

        assert is_transient(ServiceRequestError("connection refused"))
        assert is_transient(ServiceResponseError("connection reset"))


# -- the conflict loop, with real delta-rs commits ---------------------------------------------
class TestConflictLoop:
    def test_a_real_conflict_is_redone_and_the_second_attempt_wins(self, tmp_path):
        from deltalake import DeltaTable, write_deltalake

        uri = str(tmp_path / "t")
        write_deltalake(uri, rows(0.0), partition_by=["coin"])
        seen: list[Attempt] = []

        def overwrite(attempt: Attempt) -> int:
            seen.append(attempt)
            ours = DeltaTable(uri)
            attempt.started_from(ours.version())
            if attempt.number == 1:  # a rival replaces the same partition after our snapshot
                write_deltalake(uri, rows(7.0), mode="overwrite", predicate="coin = 'BTC'")
            write_deltalake(ours, rows(1.0), mode="overwrite", predicate="coin = 'BTC'")
            return ours.version()

        outcome = run_with_conflict_retries(overwrite, policy=FAST, translate=translate, what="write")

        assert [a.number for a in seen] == [1, 2]
        assert outcome.attempts == 2 and len(outcome.conflicts) == 1
        assert "concurrent writer" in outcome.conflicts[0]
        assert pa.table(DeltaTable(uri).to_pyarrow_dataset().to_table())["value"].to_pylist() == [1.0] * 4

    @pytest.mark.parametrize(("bad", "expected"), [
        (pa.table({"coin": ["BTC"], "other": [1]}), SchemaMismatchError),  # delta-rs SchemaMismatchError
        (pa.table({"coin": ["BTC"], "value": ["not a number"]}), StorageError),  # a DeltaError (cast)
    ], ids=["unknown-column", "uncastable-value"])
    def test_a_data_error_from_delta_rs_is_raised_at_once_and_changes_nothing(self, tmp_path, bad, expected):
        from deltalake import DeltaTable, write_deltalake

        uri = str(tmp_path / "t")
        write_deltalake(uri, rows(0.0), partition_by=["coin"])
        attempts: list[int] = []

        def append(attempt: Attempt) -> int:
            attempts.append(attempt.number)
            write_deltalake(uri, bad, mode="append")
            return DeltaTable(uri).version()

        with pytest.raises(expected) as raised:
            run_with_conflict_retries(append, policy=FAST, translate=translate)
        assert attempts == [1]
        assert not is_transient(raised.value)
        assert raised.value.__suppress_context__
        assert "not a number" not in str(raised.value)  # our words, not delta-rs' text
        assert DeltaTable(uri).version() == 0

    def test_our_own_data_errors_are_never_retried(self):
        attempts: list[int] = []

        def refuse(attempt: Attempt) -> None:
            attempts.append(attempt.number)
            raise InvalidDataError("negative price")

        with pytest.raises(InvalidDataError):
            run_with_conflict_retries(refuse, policy=FAST, translate=translate)
        assert attempts == [1]

    def test_conflicts_until_the_budget_is_spent_are_a_transient_write_conflict(self, tmp_path):
        from deltalake import DeltaTable, write_deltalake

        uri = str(tmp_path / "t")
        write_deltalake(uri, rows(0.0), partition_by=["coin"])

        def always_loses(attempt: Attempt) -> int:
            ours = DeltaTable(uri)
            write_deltalake(uri, rows(7.0), mode="overwrite", predicate="coin = 'BTC'")
            write_deltalake(ours, rows(1.0), mode="overwrite", predicate="coin = 'BTC'")
            return ours.version()

        with pytest.raises(WriteConflictError, match="lost against concurrent writers 3 times") as raised:
            run_with_conflict_retries(always_loses, policy=FAST, translate=translate, what="write",
                                      subject="Delta table 't'")
        assert is_transient(raised.value)
        assert set(pa.table(DeltaTable(uri).to_pyarrow_dataset().to_table())["value"].to_pylist()) == {7.0}

    def test_the_delta_format_is_configured_through_the_same_policy(self, tmp_path):
        delta = DeltaFormat(LocalFileBackend(tmp_path), conflict_attempts=2, max_conflict_attempts=5,
                            conflict_backoff_seconds=0.01, max_commit_retries=3)
        assert delta.retry_policy == RetryPolicy(
            attempts=2, max_attempts=5, rebase_retries=3, backoff_seconds=0.01,
            max_backoff_seconds=delta.retry_policy.max_backoff_seconds,
            rebase_growth_limit=delta.retry_policy.rebase_growth_limit,
        )


# -- errors stay the project's -------------------------------------------------------------------
def test_a_malformed_instrument_key_is_an_invalid_key_error():
    for key in ("binanceBTC", "", "binance:"):
        with pytest.raises(InvalidKeyError):
            decode_instrument(key)
    with pytest.raises(InvalidKeyError):
        parse_instruments("binance:BTC, krakenETH")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.azure
class TestOpenVersionReportsTheBackend:
    """``open_version`` used to call every failure "has no version". Here the Blob SDK (which
    checks that the table exists) works while delta-rs, which opens the version, is refused
    or cannot connect: the error names what happened."""

    @pytest.fixture
    def written(self, azurite):
        from cb_storage_dagster.storage import StorageManagerImpl
        from cb_storage_dagster_tests.support.azurite import new_container_backend
        from cb_storage_dagster_tests.support.data import ohlcv

        backend = new_container_backend(azurite, max_retries=1, retry_backoff_seconds=0.1, timeout_seconds=5)
        StorageManagerImpl(backend).save_entry(
            {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC", "date": dt.date(2024, 1, 2)},
            ohlcv("2024-01-02", n=3),
        )
        return backend

    def delta_with_options(self, backend, change) -> DeltaFormat:
        class DeltaRsSeesOtherOptions(type(backend)):  # the Blob SDK side stays as configured
            def get_storage_options(self) -> dict[str, str]:
                return change(super().get_storage_options())

        backend.__class__ = DeltaRsSeesOtherOptions
        return DeltaFormat(backend)

    def test_refused_credentials_are_an_authentication_error(self, written):
        import base64

        wrong_key = base64.b64encode(b"not the account key" * 3).decode()
        delta = self.delta_with_options(written, lambda o: {**o, "azure_storage_account_key": wrong_key})
        with pytest.raises(AuthenticationError) as raised:
            delta.open_version("ohlcv", 0, None)
        assert wrong_key not in str(raised.value)

    def test_an_unreachable_store_is_backend_unavailable(self, written):
        def dead_endpoint(options: dict[str, str]) -> dict[str, str]:
            options = {k: v for k, v in options.items() if k != "azure_storage_use_emulator"}
            return {**options, "azure_storage_endpoint": f"http://127.0.0.1:{_free_port()}/devstoreaccount1",
                    "allow_http": "true"}

        delta = self.delta_with_options(written, dead_endpoint)
        with pytest.raises(BackendUnavailableError):
            delta.open_version("ohlcv", 0, None)
