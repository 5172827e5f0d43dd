"""Shared fixtures: every storage test runs on local disk and on Azurite.

The ``backend`` fixture is parametrized over ``local`` (a ``tmp_path`` folder) and ``azure``
(a fresh container on one Azurite emulator the session starts on 127.0.0.1). Azure tests are
never skipped silently: if the emulator cannot start, they fail with the install hint.

The ``azure`` mark is applied at collection time (:func:`pytest_collection_modifyitems`) to
every test that runs on Azurite, so that ``-m azure`` and ``-m "not azure"`` select what
they say.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl
from cb_storage_dagster.storage.interfaces import IStorageBackend

BACKENDS = ["local", "azure"]


@pytest.fixture(scope="session")
def azurite() -> Iterator[object]:
    from cb_storage_dagster_tests.support.azurite import AzuriteServer

    with AzuriteServer() as server:
        yield server


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
