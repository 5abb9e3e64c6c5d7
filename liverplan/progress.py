"""Progress reporting and cancellation for long work (DESIGN: "Long work is cancellable").

Long functions take `progress` (callable(fraction, message)) and `cancel` (anything with
`is_set()`, e.g. threading.Event). Both are optional; `Steps` makes them cheap to honour.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

from liverplan.errors import Cancelled

ProgressFn = Callable[[float, str], None]


class CancelToken(Protocol):
    def is_set(self) -> bool: ...


def check_cancel(cancel: Optional[CancelToken]) -> None:
    """Raise Cancelled if the user asked to stop."""
    if cancel is not None and cancel.is_set():
        raise Cancelled()


class Steps:
    """Maps the progress of a sub-range [start, stop] of a larger task onto the caller's callback.

    >>> steps = Steps(progress, cancel)
    >>> steps.report(0.5, "Reading slices")     # checks cancel, then reports
    >>> sub = steps.sub(0.5, 1.0)               # hand a sub-range to a nested function
    """

    def __init__(self, progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None,
                 start: float = 0.0, stop: float = 1.0):
        self.progress, self.cancel, self.start, self.stop = progress, cancel, start, stop

    def report(self, fraction: float, message: str) -> None:
        check_cancel(self.cancel)
        if self.progress is not None:
            f = min(max(fraction, 0.0), 1.0)
            self.progress(self.start + f * (self.stop - self.start), message)

    def sub(self, start: float, stop: float) -> "Steps":
        span = self.stop - self.start
        return Steps(self.progress, self.cancel, self.start + start * span, self.start + stop * span)
