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
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from cb_storage_dagster.storage.backends.azure.backend import AzureBlobBackend

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


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


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
        self._process: subprocess.Popen[bytes] | None = None
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
        return self._process is not None and self._process.poll() is None

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
        with open(self.log_path, "ab") as log:
            # Own session = own process group, so stop() reaches node and any child.
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.location,
            )
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        self._wait_until_listening()
        return self

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"Azurite exited with code {self._process.returncode} before listening on "
                    f"port {self.port}. Log:\n{self._log_tail()}"
                )
            if _port_answers(self.port):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"Azurite did not listen on 127.0.0.1:{self.port} within {self.startup_timeout:.0f} s. "
            f"Log:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the emulator's process group (SIGTERM, then SIGKILL) and wait for it."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=timeout)
        # Wait until the port is really released, so that a restart can bind it again.
        deadline = time.monotonic() + timeout
        while _port_answers(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

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
