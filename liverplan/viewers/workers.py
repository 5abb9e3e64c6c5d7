"""Long work off the UI thread, with progress, Cancel and readable errors.

A Task runs `fn(*args, progress=..., cancel=..., **kwargs)` in the global QThreadPool; its
signals arrive on the UI thread (queued). `cancel` is a threading.Event, the project's cancel
token, so the core functions stop at their next `Steps.report`. Off-screen pictures a task
needs are rendered on the UI thread (`render_on_ui_thread`, see liverplan.rendering).
"""

from __future__ import annotations

import threading
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal
from PySide6.QtGui import QOpenGLContext
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from liverplan import rendering
from liverplan.errors import Cancelled, LiverPlanError

_task = threading.local()       # .cancel: the cancel flag of the task running on this thread


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
        _task.cancel = self.cancel_flag
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


class _Render:
    """One picture a worker asked the UI thread for."""

    def __init__(self, render):
        self.render, self.done, self.abandoned = render, threading.Event(), False
        self.result, self.error = None, None

    def run(self) -> None:   # UI thread
        if not self.abandoned:
            # The off-screen window makes its own OpenGL context current and releases it: Qt
            # must not go on believing that the 3-D view's context is current (it would skip
            # making it current again and draw through no context).
            context = QOpenGLContext.currentContext()
            if context is not None:
                context.doneCurrent()
            try:
                self.result = self.render()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the worker
                self.error = exc
        self.done.set()


class _UiThreadRunner(QObject):
    requested = Signal(object)

    def __init__(self):
        super().__init__()              # lives on the UI thread: `requested` is queued to it
        self.requested.connect(self._run)

    def _run(self, job: _Render) -> None:
        job.run()

    def __call__(self, render):
        job, cancel = _Render(render), getattr(_task, "cancel", None)
        if QThread.currentThread() == self.thread():
            job.run()
        else:
            self.requested.emit(job)
        # the UI thread may be waiting for this task (a closing window waits for its
        # cancelled tasks): a cancelled task stops waiting and leaves the picture undone
        while not job.done.wait(0.05):
            if cancel is not None and cancel.is_set():
                job.abandoned = True
                raise Cancelled()
        if job.error is not None:
            raise job.error
        return job.result


_ui_runner: _UiThreadRunner | None = None


def render_on_ui_thread() -> None:
    """Have every off-screen picture rendered on the UI thread (call there, once the
    application exists): OpenGL and X must not be used by a task while the 3-D view renders."""
    global _ui_runner
    if _ui_runner is None:
        _ui_runner = _UiThreadRunner()
        rendering.set_runner(_ui_runner)


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
