"""Process exit for command-line entry points and scripts that read Delta tables.

delta-rs can abort a short Python process at interpreter exit ("terminate called without an
active exception", exit code 134; delta-rs issue 2184, see STACK-NOTES), after the script's
work is done and its output written. :func:`run_and_exit` ends the process with
``os._exit`` instead, after doing by hand the parts of a normal exit that matter to a
script: flushing stdout/stderr (otherwise piped output is lost) and closing the logging
handlers. Other ``atexit`` handlers do not run, so an entry point must not rely on them.

Example:
    >>> if __name__ == "__main__":          # doctest: +SKIP
    ...     run_and_exit(main)
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn


def run_and_exit(main: Callable[[], int | None]) -> NoReturn:
    """Run ``main()`` and end the process with its return code (``None`` -> 0).

    An exception is printed like Python would print it and gives exit code 1;
    ``SystemExit`` keeps its code; ``KeyboardInterrupt`` gives 130.
    """
    try:
        code = main()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if stop.code is not None and not isinstance(stop.code, int):
            print(stop.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - reported, then the process ends with 1
        traceback.print_exc()
        code = 1
    exit_now(0 if code is None else int(code))


def exit_now(code: int = 0) -> NoReturn:
    """Flush stdio and logging, then end the process with ``code`` at once."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more to save
            pass
    try:
        logging.shutdown()
    except Exception:  # noqa: BLE001 - exiting anyway
        pass
    os._exit(code)


__all__ = ["exit_now", "run_and_exit"]
