"""Long work off the UI thread, with progress, Cancel and readable errors.

A Task runs `fn(*args, progress=..., cancel=..., **kwargs)` in the global QThreadPool; its
signals arrive on the UI thread (queued). `cancel` is a threading.Event, the project's cancel
token, so the core functions stop at their next `Steps.report`.
"""

from __future__ import annotations

import threading
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from liverplan.errors import Cancelled, LiverPlanError


class Task(QObject):
    progress = Signal(float, str)
    finished = Signal(object)     # the function's result
    failed = Signal(str, str)     # message for a person, technical details
    cancelled = Signal()
    done = Signal()               # after any of the three outcomes

    def __init__(self, title: str, fn: Callable[..., Any], *args, **kwargs):
        super().__init__()
        self.title, self._fn, self._args, self._kwargs = title, fn, args, kwargs
        self.cancel_flag = threading.Event()
        self.running = False

    def cancel(self) -> None:
        self.cancel_flag.set()

    def start(self, pool: QThreadPool | None = None) -> "Task":
        self.running = True
        _ALIVE.add(self)   # keep the QObject alive until its signals are delivered
        self.done.connect(self._finish)
        (pool or QThreadPool.globalInstance()).start(QRunnable.create(self._run))
        return self

    def _report(self, fraction: float, message: str) -> None:
        self.progress.emit(float(fraction), str(message))

    def _run(self) -> None:   # worker thread
        try:
            result = self._fn(*self._args, progress=self._report, cancel=self.cancel_flag,
                              **self._kwargs)
            if self.cancel_flag.is_set():
                raise Cancelled()
        except Cancelled:
            self.cancelled.emit()
        except LiverPlanError as exc:
            self.failed.emit(str(exc), traceback.format_exc())
        except Exception as exc:  # noqa: BLE001 - an unexpected bug must not kill the window
            self.failed.emit(f"{self.title} failed unexpectedly: {type(exc).__name__}: {exc}",
                             traceback.format_exc())
        else:
            self.finished.emit(result)
        self.done.emit()

    def _finish(self) -> None:
        self.running = False
        _ALIVE.discard(self)


_ALIVE: set[Task] = set()


class ProgressPanel(QWidget):
    """Status-bar widget: the running task's message, a progress bar and a Cancel button."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._tasks: list[Task] = []
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setMaximumWidth(220)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_current)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for w in (self.label, self.bar, self.cancel_button):
            layout.addWidget(w)
        self.setVisible(False)

    def track(self, task: Task) -> None:
        self._tasks.append(task)
        # Bound methods (not lambdas): Qt drops the connection if this panel is deleted first.
        task.progress.connect(self._on_progress)
        task.done.connect(self._on_done)
        self._show(task, 0.0, task.title)

    def current(self) -> Task | None:
        return self._tasks[-1] if self._tasks else None

    def cancel_current(self) -> None:
        task = self.current()
        if task is not None:
            task.cancel()
            self.label.setText(f"{task.title}: cancelling…")
            self.cancel_button.setEnabled(False)

    def _show(self, task: Task, fraction: float, message: str) -> None:
        self.label.setText(f"{task.title}: {message}" if message != task.title else message)
        self.bar.setValue(int(fraction * 1000))
        self.cancel_button.setEnabled(not task.cancel_flag.is_set())
        self.setVisible(True)

    def _on_progress(self, fraction: float, message: str) -> None:
        task = self.sender()
        if task is self.current():
            self._show(task, fraction, message)

    def _on_done(self) -> None:
        task = self.sender()
        if task in self._tasks:
            self._tasks.remove(task)
        current = self.current()
        if current is None:
            self.setVisible(False)
        else:
            self._show(current, 0.0, current.title)
