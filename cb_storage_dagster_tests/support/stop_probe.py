"""Does a server stop on SIGTERM? ``python -m cb_storage_dagster_tests.support.stop_probe STARTER DIR``.

Run by ``test_test_servers.py`` under a parent that ignores SIGINT and SIGQUIT (what a background
job of a non-interactive shell inherits, issue 15). It starts a stand-in server (``serve PORT``:
Dagster's own ``setup_interrupt_handlers``, which gives SIGTERM the SIGINT handler, as
``dagster code-server start`` does, then accepts connections forever) with one of two starters:

* ``helper``: :class:`~cb_storage_dagster_tests.support.servers.ServerProcess`;
* ``plain``: the old code path, ``subprocess.Popen(..., start_new_session=True)``.

Then it sends SIGTERM to the server's group, waits a grace period and prints one JSON line:
``pid``, ``ignored`` (the server's ignored signals, from ``/proc/PID/status``),
``stopped_on_sigterm``, ``left_after_stop`` (live processes of its group). Whatever still runs
after that is SIGKILLed, so the probe itself never leaks a server.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from .servers import ServerProcess, describe, group_members, port_answers, wait_until

GRACE = 5.0
MODULE = "cb_storage_dagster_tests.support.stop_probe"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ignored_signals(pid: int) -> list[str]:
    """Names of the signals ``pid`` ignores (``SigIgn`` of ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            mask = int(line.split()[1], 16)
            return [signal.Signals(n).name for n in range(1, 32) if mask & (1 << (n - 1)) and n in signal.valid_signals()]
    return []


def serve(port: int) -> None:
    """The stand-in: Dagster's interrupt handling, then a server that never ends by itself."""
    from dagster._utils.interrupts import setup_interrupt_handlers

    setup_interrupt_handlers()
    with socket.create_server(("127.0.0.1", port)) as server:
        while True:
            connection, _ = server.accept()
            connection.close()


def probe(starter: str, folder: Path) -> dict[str, object]:
    """Start the stand-in with ``starter``, SIGTERM its group, report what happened."""
    port = free_port()
    command = [sys.executable, "-m", MODULE, "serve", str(port)]
    log_path = folder / f"{starter}.log"
    if starter == "helper":
        server = ServerProcess(command, name="stand-in server", log_path=log_path, grace=GRACE)
        server.start(healthy=lambda: port_answers(port), timeout=60)
        pid = server.pid
        ignored = ignored_signals(pid)
        report = server.stop()
        assert report is not None
        stopped_on_sigterm = not report.needed_sigkill
        left = describe(group_members(pid))
    else:
        with open(log_path, "ab") as output:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        pid = process.pid
        wait_until(lambda: port_answers(port) or process.poll() is not None, 60, "the stand-in to listen")
        if process.poll() is not None:
            raise RuntimeError(f"the stand-in exited with {process.returncode}:\n{log_path.read_text()}")
        ignored = ignored_signals(pid)
        os.killpg(pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=GRACE)
        stopped_on_sigterm = process.poll() is not None
        left = describe(group_members(pid))
        with contextlib.suppress(ProcessLookupError):  # clean up: the probe must not leak
            os.killpg(pid, signal.SIGKILL)
        process.wait(timeout=10)
    return {"starter": starter, "pid": pid, "ignored": ignored, "stopped_on_sigterm": stopped_on_sigterm,
            "left_after_stop": left}


def main(argv: list[str]) -> None:
    if argv[0] == "serve":
        serve(int(argv[1]))
    else:
        print(json.dumps(probe(argv[0], Path(argv[1]))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
