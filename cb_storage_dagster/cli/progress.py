"""A progress bar on stderr: redrawn in place on a terminal, one line per step otherwise
(a log file or a test reads every step).

Example:
    >>> import io
    >>> stream = io.StringIO()
    >>> bar = ProgressBar(2, stream=stream)
    >>> bar.step("ohlcv_1m: compact"); bar.step("ohlcv_1m: vacuum"); bar.close()
    >>> print(stream.getvalue().strip())
    [##########----------] 1/2 ohlcv_1m: compact
    [####################] 2/2 ohlcv_1m: vacuum
"""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """``total`` steps; :meth:`step` counts one and shows its label."""

    def __init__(self, total: int, *, stream: TextIO | None = None, width: int = 20) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())

    def step(self, label: str) -> None:
        self.done = min(self.done + 1, self.total)
        filled = self.width * self.done // self.total
        line = f"[{'#' * filled}{'-' * (self.width - filled)}] {self.done}/{self.total} {label}"
        if self.live:
            self.stream.write("\r\x1b[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
