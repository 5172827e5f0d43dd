"""Run a real Azurite blob emulator for tests (``node_modules/.bin/azurite-blob``).

Azurite is an npm dev dependency of the repository (``package.json``); ``make test`` runs
``npm ci`` / ``npm install`` to provide it (Node 20 + npm required).

>>> with AzuriteServer() as server:                     # doctest: +SKIP
...     backend = new_container_backend(server)
...     backend.save_bytes("a/b.txt", b"hello")

The server runs in its own process group on a free port of 127.0.0.1. ``stop()`` and
``start()`` keep the same port and data directory, so a test can take the emulator away
and bring it back with the data intact.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from cb_storage_dagster.storage.backends.azure.backend import AzureBlobBackend

from .servers import ServerProcess, port_answers, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
AZURITE_BLOB_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"

# The emulator's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT_NAME = "devstoreaccount1"
AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

_AUTH_OPTIONS = (
    "connection_string",
    "account_key",
    "sas_token",
    "tenant_id",
    "client_id",
    "client_secret",
    "use_default_credential",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AzuriteServer:
    """One ``azurite-blob`` process on 127.0.0.1 with a persistent data directory.

    Args:
        port: TCP port; a free one is picked when omitted and then kept across restarts.
        location: data directory; a temporary one (removed by :meth:`close`) when omitted.
        binary: the ``azurite-blob`` executable; defaults to the repository's
            ``node_modules/.bin/azurite-blob``.
        startup_timeout: seconds to wait for the port to answer.
    """

    account_name: str = AZURITE_ACCOUNT_NAME
    account_key: str = AZURITE_ACCOUNT_KEY

    def __init__(
        self,
        *,
        port: int | None = None,
        location: str | Path | None = None,
        binary: str | Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.binary = Path(binary) if binary is not None else AZURITE_BLOB_BIN
        self.port = port if port is not None else _free_port()
        self._owns_location = location is None
        self.location = Path(tempfile.mkdtemp(prefix="azurite-")) if location is None else Path(location)
        self.startup_timeout = startup_timeout
        self._server: ServerProcess | None = None
        self._atexit_registered = False

    # -- connection details ---------------------------------------------------------------
    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={self.account_name};"
            f"AccountKey={self.account_key};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    @property
    def log_path(self) -> Path:
        return self.location / "azurite-process.log"

    @property
    def is_running(self) -> bool:
        return self._server is not None and self._server.is_running

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> AzuriteServer:
        """Start the emulator (same port and data directory as before) and wait for it."""
        if self.is_running:
            return self
        if not self.binary.exists():
            raise RuntimeError(
                f"Azurite is not installed ({self.binary} is missing). Run `make test`, which "
                "runs `npm ci` / `npm install` for the `azurite` dev dependency in package.json "
                "(Node 20 + npm required)."
            )
        self.location.mkdir(parents=True, exist_ok=True)
        command = [
            str(self.binary),
            "--blobHost", "127.0.0.1",
            "--blobPort", str(self.port),
            "--location", str(self.location),
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]  # fmt: skip
        # Own session = own process group, so stop() reaches node and any child.
        self._server = ServerProcess(command, name=f"Azurite on port {self.port}", log_path=self.log_path,
                                     cwd=self.location)
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        try:
            self._server.start(healthy=lambda: port_answers(self.port), timeout=self.startup_timeout, interval=0.1)
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(f"Azurite did not start on 127.0.0.1:{self.port}: {error}") from None
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the emulator's process group (SIGTERM, then SIGKILL) and wait for it."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stop(grace=timeout)
        # Wait until the port is really released, so that a restart can bind it again.
        wait_until(lambda: not port_answers(self.port), timeout, f"port {self.port} to be released", 0.05)

    def close(self) -> None:
        """Stop the emulator and remove its data directory if this object created it."""
        self.stop()
        if self._owns_location:
            shutil.rmtree(self.location, ignore_errors=True)

    def __enter__(self) -> AzuriteServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"AzuriteServer(port={self.port}, location={str(self.location)!r}, {state})"


def new_container_backend(server: AzuriteServer, **kwargs: Any) -> AzureBlobBackend:
    """An :class:`AzureBlobBackend` on a new, uniquely named container of ``server``.

    Authenticates with the emulator's account key unless ``kwargs`` names another auth
    option; any other ``AzureBlobBackend`` argument can be passed (``prefix``, ``max_retries``,
    ``container_name``...). The container is created (delta-rs does not create containers),
    unless ``create_container=False`` is passed.
    """
    container_name = kwargs.pop("container_name", None) or f"test-{uuid.uuid4().hex[:24]}"
    if not kwargs.get("connection_string"):
        kwargs.setdefault("endpoint", server.blob_endpoint)
        kwargs.setdefault("account_name", server.account_name)
    if not any(kwargs.get(option) for option in _AUTH_OPTIONS):
        kwargs["account_key"] = server.account_key
    backend = AzureBlobBackend(container_name, **kwargs)
    if kwargs.get("create_container", True):
        backend.ensure_container()
    return backend
