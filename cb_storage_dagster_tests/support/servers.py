"""Start a process for a test, wait until it is healthy, and stop it for sure.

Every process the tests start (Azurite, PostgreSQL, ``dagster dev``, the Dockerfile's code
server, the writer processes) goes through :func:`spawn` and :func:`stop_group`, and the
long-running ones through :class:`ServerProcess`:

* the child's signal dispositions are reset to the default (:func:`reset_signals`): a test
  run started as a background job of a non-interactive shell inherits ignored SIGINT and
  SIGQUIT, and a server that copies its SIGINT handler onto SIGTERM (``dagster code-server``
  does) would then ignore SIGTERM too (issue 15). ``restore_signals=True`` does not cover
  SIGINT, hence the ``preexec_fn``;
* it runs in its own session, so its process group is everything it started;
* its output goes to a file (or to pipes that reader threads drain), never to an unread pipe;
* stop = a signal (SIGTERM by default) to the whole group, a grace period, then SIGKILL to the
  whole group; when SIGKILL was needed the tail of its output is logged, and after the stop
  :class:`ProcessesLeftBehind` is raised if any process of the group is still alive.

>>> server = ServerProcess(["node", "server.js"], name="demo", log_path=tmp / "demo.log")  # doctest: +SKIP
>>> server.start(healthy=lambda: port_answers(8080), timeout=30)                          # doctest: +SKIP
>>> server.stop()                                                                         # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Signals a background job of a non-interactive shell (or nohup) may inherit as ignored.
RESET_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE)

#: Process group ids of every process started through :func:`spawn` in this interpreter
#: (the session guard in ``conftest.py`` checks none of them has a live member at the end).
STARTED_GROUPS: set[int] = set()
#: Groups of servers that are running right now (legitimately alive between tests).
RUNNING_GROUPS: set[int] = set()


class ProcessesLeftBehind(AssertionError):
    """Processes of a stopped server (or of the test session) are still running."""


def reset_signals() -> None:
    """``preexec_fn``: default dispositions for the signals a background job inherits as ignored."""
    for number in RESET_SIGNALS:
        signal.signal(number, signal.SIG_DFL)


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``predicate`` until it returns something truthy (returned); ``TimeoutError`` naming
    ``what`` after ``timeout`` seconds. The predicate is always called at least once."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s (last: {value!r})")
        time.sleep(interval)


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def describe(processes: Sequence[psutil.Process]) -> list[str]:
    """``"pid name cmdline"`` for each process still readable."""
    described = []
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            described.append(f"{proc.pid} {proc.name()} {' '.join(proc.cmdline())}".strip())
    return described


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and _alive(proc):
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def spawn(command: Sequence[str | os.PathLike[str]], **popen: Any) -> subprocess.Popen[bytes]:
    """``Popen`` with default signal dispositions, its own session and stdin from /dev/null.

    ``stdout``/``stderr`` must be a file or pipes somebody drains; ``preexec_fn`` and
    ``start_new_session`` are set here and cannot be passed.
    """
    popen.setdefault("stdin", subprocess.DEVNULL)
    process = subprocess.Popen(
        [os.fspath(part) for part in command], start_new_session=True, preexec_fn=reset_signals, **popen
    )
    STARTED_GROUPS.add(process.pid)  # the leader of a new session: its pid is the group id
    return process


@dataclass
class StopReport:
    """How a process group ended: the signal that did it and what had to be killed."""

    returncode: int | None
    killed: list[str]

    @property
    def needed_sigkill(self) -> bool:
        return bool(self.killed)


def stop_group(
    process: subprocess.Popen[Any],
    *,
    name: str,
    grace: float = 10.0,
    first_signal: int = signal.SIGTERM,
    output_tail: Callable[[], str] = lambda: "",
) -> StopReport:
    """Stop the process group led by ``process`` for sure and assert nothing of it is left.

    ``first_signal`` goes to the whole group; whatever is still alive after ``grace`` seconds
    (the leader, or any member or descendant seen before the stop) gets SIGKILL, and the tail
    of the output is logged. Raises :class:`ProcessesLeftBehind` if anything survives that.
    """
    pgid = process.pid
    tracked: dict[int, psutil.Process] = {}
    if process.poll() is None:  # not reaped yet, so the pid cannot have been reused
        with contextlib.suppress(psutil.Error):
            leader = psutil.Process(pgid)
            tracked = {proc.pid: proc for proc in [leader, *leader.children(recursive=True)]}
    tracked.update({proc.pid: proc for proc in group_members(pgid)})

    def survivors() -> list[psutil.Process]:
        process.poll()  # reap the leader so that it does not count as alive
        found = {proc.pid: proc for proc in tracked.values() if _alive(proc)}
        found.update({proc.pid: proc for proc in group_members(pgid)})
        return list(found.values())

    if process.poll() is None or survivors():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, first_signal)
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not survivors(), grace, f"{name} to stop on {signal.Signals(first_signal).name}", 0.05)
    left = survivors()
    killed = describe(left)
    if left:
        log.warning("%s did not stop on %s within %g s; SIGKILL for %s. Output:\n%s", name,
                    signal.Signals(first_signal).name, grace, killed, output_tail())
        print(f"{name} needed SIGKILL ({killed}); output tail:\n{output_tail()}", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        for proc in left:  # descendants that moved to another group or session
            with contextlib.suppress(psutil.Error):
                proc.kill()
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not survivors(), 10.0, f"{name} to die of SIGKILL", 0.05)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    RUNNING_GROUPS.discard(pgid)
    still = describe(survivors())
    if still:
        raise ProcessesLeftBehind(f"{name}: processes left after SIGKILL: {still}\n{output_tail()}")
    return StopReport(process.returncode, killed)


class ServerProcess:
    """A long-running child with its output in ``log_path``, started healthy and stopped for sure.

    Args:
        command: the program and its arguments.
        name: what error messages call it.
        log_path: where stdout and stderr go (appended, so restarts keep earlier output).
        grace: seconds between ``stop_signal`` and SIGKILL.
        stop_signal: what asks the server to stop (SIGTERM; PostgreSQL's fast shutdown is SIGINT).
        popen: further ``Popen`` arguments (``cwd``, ``env``, ``user``, ``group``...).
    """

    def __init__(
        self,
        command: Sequence[str | os.PathLike[str]],
        *,
        name: str,
        log_path: Path,
        grace: float = 10.0,
        stop_signal: int = signal.SIGTERM,
        **popen: Any,
    ) -> None:
        self.command = list(command)
        self.name = name
        self.log_path = Path(log_path)
        self.grace = grace
        self.stop_signal = stop_signal
        self.popen = popen
        self.process: subprocess.Popen[bytes] | None = None
        self.last_stop: StopReport | None = None
        self._stopped: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was not started"
        return self.process.pid

    @property
    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines the server wrote."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no output file)"

    def start(self, healthy: Callable[[], object], timeout: float, interval: float = 0.2) -> ServerProcess:
        """Start the server and poll ``healthy()`` until it is truthy.

        Raises ``RuntimeError`` with the output if the server exits first, or stops it and
        raises ``TimeoutError`` with the output if it is not healthy within ``timeout`` s.
        Exceptions from ``healthy`` count as "not yet".
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as output:
            self.process = spawn(self.command, stdout=output, stderr=subprocess.STDOUT, **self.popen)
        RUNNING_GROUPS.add(self.process.pid)
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while True:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.name} exited with code {self.process.returncode} before it was "
                                   f"healthy. Output ({self.log_path}):\n{self.output_tail()}")
            try:
                if healthy():
                    return self
            except Exception as error:  # noqa: BLE001 - "not healthy yet", shown if it never is
                last_error = error
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        self.stop()
        raise TimeoutError(f"{self.name} was not healthy within {timeout:g} s (last error: {last_error!r}). "
                           f"Output ({self.log_path}):\n{self.output_tail()}")

    def stop(self, grace: float | None = None) -> StopReport | None:
        """Stop the whole process group (see :func:`stop_group`); ``None`` if never started.

        ``process`` stays set (to the stopped ``Popen``); stopping again returns the same report.
        """
        if self.process is None:
            return None
        if self._stopped is self.process:
            return self.last_stop
        self._stopped = self.process
        self.last_stop = stop_group(self.process, name=self.name, grace=self.grace if grace is None else grace,
                                    first_signal=self.stop_signal, output_tail=self.output_tail)
        return self.last_stop

    def __repr__(self) -> str:
        state = f"pid={self.process.pid}" if self.is_running else "stopped"
        return f"ServerProcess({self.name}, {state})"


def leftover_children(wait: float = 5.0, *, servers_too: bool = False) -> list[psutil.Process]:
    """Live descendants of this process, and live members of the groups started here, after
    waiting up to ``wait`` s for them to end on their own.

    Running :class:`ServerProcess` groups (a session's Azurite) are not counted unless
    ``servers_too``; at the end of a session nothing may be running at all.
    """

    def leftovers() -> list[psutil.Process]:
        excused = set() if servers_too else set(RUNNING_GROUPS)
        candidates = {proc.pid: proc for proc in psutil.Process().children(recursive=True)}
        found: list[psutil.Process] = []
        for proc in [*candidates.values(), *(p for p in psutil.process_iter() if p.pid not in candidates)]:
            with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
                pgid = os.getpgid(proc.pid)
                ours = proc.pid in candidates or pgid in STARTED_GROUPS
                if ours and pgid not in excused and _alive(proc):
                    found.append(proc)
        return found

    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not leftovers(), wait, "child processes to end", 0.2)
    return leftovers()


def kill_all(processes: Sequence[psutil.Process]) -> None:
    """SIGKILL each process (and its group, when it leads one) and wait for them."""
    for proc in processes:
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.kill()
    psutil.wait_procs(list(processes), timeout=10)
