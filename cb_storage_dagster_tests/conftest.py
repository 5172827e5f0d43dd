"""Shared fixtures: every storage test runs on local disk and on Azurite.

The ``backend`` fixture is parametrized over ``local`` (a ``tmp_path`` folder) and ``azure``
(a fresh container on one Azurite emulator the session starts on 127.0.0.1). Azure tests are
never skipped silently: if the emulator cannot start, they fail with the install hint.

No test may leave a process running: after each module and at the end of the session any
child of the pytest process (or member of a process group the tests started) still alive is
named, killed, and fails the module / the session (:func:`no_process_left_by_the_module`,
:func:`pytest_sessionfinish`).

The ``azure`` mark is applied at collection time (:func:`pytest_collection_modifyitems`) to
every test that runs on Azurite, so that ``-m azure`` and ``-m "not azure"`` select what
they say.

Every Dagster instance a test enters during its call is exited by the end of its teardown
(:func:`pytest_runtest_teardown`, :mod:`~cb_storage_dagster_tests.support.instance_guard`): one
left entered resets Dagster's current definitions-state storage when it is garbage collected,
in whichever test runs then.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl
from cb_storage_dagster.storage.interfaces import IStorageBackend
from cb_storage_dagster_tests.support.instance_guard import INSTANCES
from cb_storage_dagster_tests.support.servers import describe, kill_all, leftover_children

BACKENDS = ["local", "azure"]


@pytest.fixture(scope="session")
def azurite() -> Iterator[object]:
    from cb_storage_dagster_tests.support.azurite import AzuriteServer

    with AzuriteServer() as server:
        yield server


@pytest.fixture(scope="module", autouse=True)
def no_process_left_by_the_module(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the module's own fixtures are torn down: no process it started is still running
    (the session's Azurite excepted). Leftovers are named, killed, and fail the module's last test."""
    yield
    left = leftover_children()
    if left:
        names = describe(left)
        kill_all(left)
        pytest.fail(f"{request.module.__name__} left {len(names)} process(es) running (now killed): {names}",
                    pytrace=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """At the very end (session fixtures torn down): nothing the tests started may still run.
    Leftovers are named on the terminal, killed, and the session fails."""
    left = leftover_children(servers_too=True)
    if not left:
        return
    names = describe(left)
    kill_all(left)
    message = f"the test session left {len(names)} process(es) running (now killed): {names}"
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"ERROR: {message}", red=True, bold=True)
    else:
        print(f"ERROR: {message}", file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    INSTANCES.watching = True
    try:
        return (yield)
    finally:
        INSTANCES.watching = False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After the test's fixtures are torn down: no Dagster instance its call entered is still open
    (e.g. ``build_schedule_context`` used without ``with``). Fails the test, naming where."""
    result = yield
    left = INSTANCES.left_open()
    if left:
        pytest.fail(f"{item.nodeid} left {len(left)} Dagster instance(s) entered and never exited; "
                    "use the context (build_schedule_context, ...) as `with ... as context:`. Entered at:\n"
                    + "\n".join(left), pytrace=False)
    return result


def needs_azurite(item: pytest.Item) -> bool:
    """True for a test that runs on the emulator: the ``azure`` case of the ``backend_kind``
    parametrization, or one that uses an ``azurite`` fixture directly."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("backend_kind") == "azure":
        return True
    return "azurite" in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Marks added inside a fixture come too late for `-m` (selection happens right after
    # collection), so the mark is decided here from the parametrization.
    for item in items:
        if needs_azurite(item):
            item.add_marker(pytest.mark.azure)
    # A Delta layout means nothing for Parquet/JSON tables: those combinations are not tests
    # at all (dropped here rather than reported as skipped).
    meaningless = [item for item in items if _layout_without_delta(item)]
    if meaningless:
        config.hook.pytest_deselected(items=meaningless)
        items[:] = [item for item in items if not _layout_without_delta(item)]


def _layout_without_delta(item: pytest.Item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return params.get("layout", "instrument") != "instrument" and params.get("fmt", "delta") != "delta"


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def backend(backend_kind: str, tmp_path, request: pytest.FixtureRequest) -> IStorageBackend:
    if backend_kind == "local":
        return LocalFileBackend(tmp_path / "store")
    from cb_storage_dagster_tests.support.azurite import new_container_backend

    server = request.getfixturevalue("azurite")
    return new_container_backend(server)


@pytest.fixture
def layout() -> str:
    """Delta layout of the tables a test creates; modules that prove behaviour on both
    layouts parametrize it: ``pytestmark = pytest.mark.parametrize("layout", LAYOUTS)``."""
    return "instrument"


@pytest.fixture
def manager(backend: IStorageBackend, layout: str) -> StorageManagerImpl:
    return StorageManagerImpl(backend, default_layout=layout)


@pytest.fixture(params=["delta", "parquet", "json"])
def fmt(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def storage(backend_kind: str, tmp_path, request: pytest.FixtureRequest):
    """The Dagster storage resource on each backend: a ``tmp_path`` folder, or a fresh Azurite container."""
    from cb_storage_dagster.orchestration.resources import AzureStorageResource, LocalStorageResource

    if backend_kind == "local":
        return LocalStorageResource(root_path=str(tmp_path / "store"))
    import uuid

    server = request.getfixturevalue("azurite")
    resource = AzureStorageResource(
        container_name=f"io-{uuid.uuid4().hex[:20]}", account_name=server.account_name,
        account_key=server.account_key, endpoint=server.blob_endpoint,
    )
    resource.get_backend().ensure_container()
    return resource


@pytest.fixture
def fake() -> Iterator[object]:
    """A local fake exchange speaking the ccxt REST protocol on 127.0.0.1."""
    from cb_storage_dagster_tests.support.fake_exchange import FakeExchange

    with FakeExchange() as server:
        yield server


@pytest.fixture(scope="session")
def instrument_pipeline():
    """The ``instrument`` profile's pipeline as ``build_pipeline`` makes it (assets, checks,
    jobs, schedules, sensor), built once for the session: its definitions are immutable."""
    from cb_storage_dagster.orchestration import build_pipeline

    return build_pipeline("instrument")
