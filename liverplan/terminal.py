"""Terminal progress for the headless commands: one line, rewritten in place."""

from __future__ import annotations

import sys


class ProgressBar:
    def __init__(self, stream=None, width: int = 30):
        self._stream, self.width = stream, width

    @property
    def stream(self):
        # Resolved at call time so redirected or captured stderr is honoured.
        return self._stream if self._stream is not None else sys.stderr

    def __call__(self, fraction: float, message: str) -> None:
        done = int(round(fraction * self.width))
        self.stream.write(f"\r[{'#' * done}{'.' * (self.width - done)}] {fraction:4.0%} {message:<50.50}")
        if fraction >= 1.0:
            self.stream.write("\n")
        self.stream.flush()
