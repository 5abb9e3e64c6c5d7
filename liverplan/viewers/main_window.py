"""The main window: three slice views and the 3-D view, the guided steps, the log, the files.

The window owns one Case at a time and observes it (Case.subscribe); every long step runs as a
Task off the UI thread with the progress panel's Cancel button wired to its cancel flag.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from PySide6.QtCore import QByteArray, QPoint, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QImage, QKeySequence, QPainter
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QHBoxLayout, QLabel, QMainWindow,
                               QMessageBox, QPushButton, QSplitter, QToolBar, QVBoxLayout,
                               QWidget)

from liverplan import io
from liverplan.case import Case
from liverplan.errors import ExportError
from liverplan.io.atomic import atomic_write
from liverplan.io.casefile import CASE_SUFFIX, case_path, is_case, open_case, save_case
from liverplan.viewers import settings as app_settings
from liverplan.viewers.panels import StepPanel
from liverplan.viewers.panels.log_panel import LogPanel
from liverplan.viewers.panels.series_browser import SeriesBrowser
from liverplan.viewers.reslice import AXIAL, CORONAL, PLANES, SAGITTAL
from liverplan.viewers.slice_view import SliceView
from liverplan.viewers.view3d import STANDARD_VIEWS, View3D
from liverplan.viewers.view_state import WINDOW_PRESETS, ViewState
from liverplan.viewers.workers import ProgressPanel, Task, render_on_ui_thread

APP_TITLE = "LiverPlan"
IMAGE_FILTER = "Images (*.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd);;All files (*)"
RECOVERY_CASE = "autosave" + CASE_SUFFIX
RECOVERY_OWNER = "owner.json"


class NoticeBar(QWidget):
    """A non-blocking notice above the views (e.g. loader warnings) with a link to the log."""

    def __init__(self, show_log, parent=None):
        super().__init__(parent)
        self.setStyleSheet("background: #5a4a10; color: white;")
        self.text = QLabel()
        self.text.setWordWrap(True)
        log_button, close = QPushButton("Show log"), QPushButton("×")
        log_button.clicked.connect(show_log)
        close.setFixedWidth(28)
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 2, 4, 2)
        layout.addWidget(self.text, 1)
        layout.addWidget(log_button)
        layout.addWidget(close)
        self.hide()

    def show_notice(self, text: str) -> None:
        self.text.setText(text)
        self.show()


class MainWindow(QMainWindow):
    caseChanged = Signal(object)      # the Case (or None) after open/load/close or any edit
    caseEdited = Signal(str)          # what changed in the open case (a label name, "plans"...)
    recentChanged = Signal()

    def __init__(self, settings=None, recovery_dir: Path | None = None):
        super().__init__()
        render_on_ui_thread()       # report pictures and NIR views: not in a task's thread
        self.settings = settings or app_settings.default_settings()
        self.recovery_dir = Path(recovery_dir or app_settings.default_recovery_dir())
        self.case: Case | None = None
        self.case_file: Path | None = None     # where the case was saved / opened from
        self.source: str | None = None         # the DICOM folder or image file it came from
        self.dirty = False
        self._autosaved = True
        self._dialogs: list[QWidget] = []
        self.question: QMessageBox | None = None   # the open Save/Discard/Cancel question
        self.load_task: Task | None = None
        self._running: set[Task] = set()

        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.state = ViewState(self)
        self.views = {plane: SliceView(plane, self.state) for plane in PLANES}
        self.view3d = View3D(self.state)
        self.progress = ProgressPanel()
        self.view3d.taskStarted.connect(self.progress.track)
        self.log_panel = LogPanel()
        self.notice = NoticeBar(self.show_log)
        self._build_central()
        self._build_docks()
        self._build_status()
        self._build_actions()
        for view in self.views.values():
            view.hovered.connect(self._show_readout)
            view.measured.connect(lambda mm: self.statusBar().showMessage(
                f"Distance: {mm:.1f} mm", 10000))

        self._autosave_timer = QTimer(self, interval=app_settings.AUTOSAVE_INTERVAL_MS)
        self._autosave_timer.timeout.connect(self.autosave)
        self._autosave_timer.start()
        self._autosave_soon = QTimer(self, singleShot=True, interval=app_settings.AUTOSAVE_DELAY_MS)
        self._autosave_soon.timeout.connect(self.autosave)
        self._restore_layout()

    # --- layout --------------------------------------------------------------------------------
    def _build_central(self) -> None:
        top, bottom = QSplitter(Qt.Horizontal), QSplitter(Qt.Horizontal)
        top.addWidget(self.views[AXIAL])
        top.addWidget(self.views[CORONAL])
        bottom.addWidget(self.views[SAGITTAL])
        bottom.addWidget(self.view3d)
        self.splitter = QSplitter(Qt.Vertical)
        self.splitter.setObjectName("views")
        self.splitter.addWidget(top)
        self.splitter.addWidget(bottom)
        for splitter in (top, bottom, self.splitter):
            splitter.setStretchFactor(0, 1)
            splitter.setStretchFactor(1, 1)
            splitter.setSizes([1000, 1000])      # equal quarters until the user moves them
        # The two rows keep one column boundary, like a 2 x 2 grid.
        top.splitterMoved.connect(lambda pos, _: bottom.setSizes(top.sizes()))
        bottom.splitterMoved.connect(lambda pos, _: top.setSizes(bottom.sizes()))
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.notice)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

    def _build_docks(self) -> None:
        self.steps = StepPanel(self)
        self.steps_dock = QDockWidget("Steps", self)
        self.steps_dock.setObjectName("steps")
        self.steps_dock.setWidget(self.steps)
        self.addDockWidget(Qt.LeftDockWidgetArea, self.steps_dock)
        self.log_dock = QDockWidget("Log", self)
        self.log_dock.setObjectName("log")
        self.log_dock.setWidget(self.log_panel)
        self.addDockWidget(Qt.BottomDockWidgetArea, self.log_dock)
        self.resizeDocks([self.steps_dock], [400], Qt.Horizontal)   # the plan and ICG forms
        self.resizeDocks([self.log_dock], [120], Qt.Vertical)

    def _build_status(self) -> None:
        self.readout = QLabel()
        self.readout.setMinimumWidth(380)
        self.statusBar().addWidget(self.readout)
        self.statusBar().addPermanentWidget(self.progress)

    def _action(self, text, slot, shortcut=None, checkable=False) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.addAction(action)     # shortcuts work even when the menu is closed
        return action

    def _build_actions(self) -> None:
        a = self.actions_by_name = {
            "open_folder": self._action("Open DICOM folder…", self.open_folder_dialog,
                                        QKeySequence.Open),
            "open_file": self._action("Open image file…", self.open_file_dialog, "Ctrl+Shift+O"),
            "open_case": self._action("Open saved case…", self.open_case_dialog, "Ctrl+Alt+O"),
            "save": self._action("Save case", self.save, QKeySequence.Save),
            "save_as": self._action("Save case as…", self.save_as_dialog, "Ctrl+Shift+S"),
            "screenshot": self._action("Save screenshot…", self.screenshot_dialog, "F12"),
            "quit": self._action("Quit", self.close, QKeySequence.Quit),
            "overlays": self._action("Show overlays", self.state.set_overlays_on, "O", True),
            "outline": self._action("Outlines only", self.state.set_outline, "Shift+O", True),
            "measure": self._action("Measure distance", self.set_measure_mode, "M", True),
            "reset_views": self._action("Reset zoom and pan", self.reset_views, "R"),
        }
        a["overlays"].setChecked(True)
        self.state.displayChanged.connect(self._sync_toggles)
        for n, (name, (width, level)) in enumerate(WINDOW_PRESETS.items()):
            a[f"window_{name.lower()}"] = self._action(
                f"{name} window (W{width:.0f}/L{level:.0f})",
                lambda _=False, w=width, l=level: self.state.set_window(w, l), f"Ctrl+{n + 1}")
        for n, name in enumerate(STANDARD_VIEWS):
            a[f"view3d_{name.lower()}"] = self._action(
                f"3-D {name.lower()} view", lambda _=False, v=name: self.view3d.standard_view(v),
                f"F{5 + n}")
        a["view3d_reset"] = self._action("3-D reset camera", self.view3d.reset_camera, "F8")
        a["screenshot3d"] = self._action("Save 3-D screenshot…", self.screenshot3d_dialog,
                                         "Shift+F12")

        menu = self.menuBar().addMenu("&File")
        for name in ("open_folder", "open_file", "open_case"):
            menu.addAction(a[name])
        self.recent_menu = menu.addMenu("Open recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        menu.addSeparator()
        for name in ("save", "save_as", "screenshot", "screenshot3d"):
            menu.addAction(a[name])
        menu.addSeparator()
        menu.addAction(a["quit"])
        menu = self.menuBar().addMenu("&View")
        for name in [k for k in a if k.startswith("window_")] + ["overlays", "outline",
                                                                 "measure", "reset_views"]:
            menu.addAction(a[name])
        menu.addSeparator()
        for name in [k for k in a if k.startswith("view3d_")]:
            menu.addAction(a[name])
        menu.addSeparator()
        menu.addAction(self.steps_dock.toggleViewAction())
        menu.addAction(self.log_dock.toggleViewAction())

        toolbar = QToolBar("Main")
        toolbar.setObjectName("main_toolbar")
        for name in ("open_folder", "open_file", "save", None, "window_abdomen", "window_liver",
                     None, "overlays", "outline", "measure", "screenshot"):
            toolbar.addSeparator() if name is None else toolbar.addAction(a[name])
        self.addToolBar(toolbar)

    def _sync_toggles(self) -> None:
        self.actions_by_name["overlays"].setChecked(self.state.overlays_on)
        self.actions_by_name["outline"].setChecked(self.state.outline)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in app_settings.recent(self.settings):
            self.recent_menu.addAction(path, lambda p=path: self.open_path(p))

    # --- messages ------------------------------------------------------------------------------
    def log(self, level: str, message: str) -> None:
        self.log_panel.log(level, message)

    def show_log(self) -> None:
        self.log_dock.show()
        self.log_dock.raise_()

    def show_error(self, message: str, details: str = "") -> None:
        """A readable, non-blocking error dialog; the details go to the log."""
        self.log("error", message)
        if details:
            self.log("info", details.strip())
        box = QMessageBox(QMessageBox.Critical, APP_TITLE, message, QMessageBox.Ok, self)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.finished.connect(lambda _=0, b=box: self._dialogs.remove(b))
        self._dialogs.append(box)
        box.open()

    def _show_readout(self, point, value) -> None:
        if point is None:
            self.readout.clear()
            return
        x, y, z = point
        where = f"LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm"
        self.readout.setText(f"{value} HU   {where}" if value is not None else where)

    # --- running tasks -------------------------------------------------------------------------
    def run_task(self, task: Task, on_result, *, foreground: bool = True) -> Task:
        """Start `task`; `on_result(result)` runs on the UI thread when it succeeds."""
        task.finished.connect(on_result)
        task.failed.connect(self.show_error)
        task.cancelled.connect(lambda: self.log("info", f"{task.title}: cancelled; nothing changed."))
        self._running.add(task)
        task.done.connect(lambda: self._running.discard(task))
        if foreground:
            self.progress.track(task)
        return task.start()

    # --- opening -------------------------------------------------------------------------------
    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a DICOM folder",
                                                self.settings.value("last_folder", ""))
        if path:
            self.open_path(path)

    def open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an image file",
                                              self.settings.value("last_folder", ""), IMAGE_FILTER)
        if path:
            self.open_path(path)

    def open_case_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a saved case (a *.liverplan folder)",
                                                self.settings.value("last_folder", ""))
        if path:
            self.open_path(path)

    def open_path(self, path) -> Task | None:
        """Open a DICOM folder, an image or DICOM file, or a saved case (menu, drop, recent)."""
        path = Path(path)
        if not self.maybe_save():
            return None
        self.settings.setValue("last_folder", str(path.parent if path.is_file() else path))
        if is_case(path):
            return self._start_load(Task("Opening case", open_case, path),
                                    lambda result: self._on_case_opened(result, path))
        if path.is_dir():
            return self._start_load(Task("Scanning folder", io.scan, path),
                                    lambda result: self._on_scanned(result, path))
        return self.load_series(path)

    def load_series(self, source, series: str | None = None) -> Task:
        """Load a volume from a file, a folder or a SeriesInfo, as `io.load` accepts."""
        return self._start_load(Task("Loading images", io.load, source, series=series),
                                self._on_loaded)

    def _start_load(self, task: Task, on_result) -> Task:
        if self.load_task is not None and self.load_task.running:
            self.load_task.cancel()
        self.load_task = task
        return self.run_task(task, on_result)

    def _on_scanned(self, result, folder: Path) -> None:
        for skipped in result.skipped:
            self.log("warning", f"Skipped {skipped.path}: {skipped.reason}")
        for warning in result.warnings:
            self.log("warning", warning)
        if result.skipped:
            self.notice.show_notice(f"{len(result.skipped)} file(s) in {folder.name} were "
                                    "skipped; see the log for the reasons.")
        if not result.series:
            self.show_error(f"{folder}: no CT/MR image series found in this folder. Choose the "
                            "folder that holds the DICOM files of the scan.")
            return
        if len(result.series) == 1:
            self.load_series(result.series[0])
            return
        browser = SeriesBrowser(result.series, self)
        browser.accepted.connect(lambda: self._on_series_chosen(browser))
        self.series_browser = browser
        browser.open()

    def _on_series_chosen(self, browser: SeriesBrowser) -> None:
        info = browser.selected()
        if info is not None:
            self.load_series(info)

    def _on_loaded(self, volume) -> None:
        case = Case(image=volume.image, info=volume.info, warnings=list(volume.warnings))
        self.set_case(case, source=str(volume.source), case_file=None)
        for warning in volume.warnings:
            self.log("warning", warning)
        if volume.warnings:
            self.notice.show_notice(f"The loader reported {len(volume.warnings)} warning(s): "
                                    f"{volume.warnings[0]}")
        size = "×".join(str(n) for n in volume.image.GetSize())
        self.log("info", f"Loaded {volume.source} ({size} voxels).")
        self._remember(volume.source)

    def _on_case_opened(self, result, path: Path) -> None:
        case, manifest = result
        self.set_case(case, source=manifest.get("source"), case_file=path)
        self.apply_view_settings(manifest.get("view", {}))
        self.log("info", f"Opened case {path}.")
        self._remember(path)

    def _remember(self, path) -> None:
        app_settings.add_recent(self.settings, path)
        self.recentChanged.emit()

    # --- the case ------------------------------------------------------------------------------
    def set_case(self, case: Case | None, *, source: str | None = None,
                 case_file: Path | None = None, dirty: bool = False) -> None:
        self._unsubscribe()
        self.case, self.source, self.case_file = case, source, case_file
        self.state.set_image(case.image if case is not None else None)
        if case is not None:
            for name, image in case.labels.items():
                self.state.set_label(name, image)
            case.subscribe(self._on_case_event)
        self.view3d.set_labels(dict(case.labels) if case is not None else {})
        self.dirty, self._autosaved = dirty, not dirty
        self._update_title()
        self.caseChanged.emit(case)

    def _unsubscribe(self) -> None:
        """Stop observing the shown case: a case outlives the window (and may be shown again
        elsewhere); its edits must not reach a window that no longer shows it."""
        if self.case is not None:
            self.case.unsubscribe(self._on_case_event)

    def _on_case_event(self, what: str) -> None:
        case = self.case
        if what in case.labels or what in self.state.labels:
            self.state.set_label(what, case.label(what))
            self.view3d.set_labels(dict(case.labels))
        self.mark_dirty()
        self.caseEdited.emit(what)
        self.caseChanged.emit(case)

    def mark_dirty(self) -> None:
        self.dirty, self._autosaved = True, False
        self._update_title()
        self._autosave_soon.start()

    def _update_title(self) -> None:
        name = self.case_file.name if self.case_file else (Path(self.source).name
                                                           if self.source else "")
        self.setWindowTitle(f"{name}{' *' if self.dirty else ''} — {APP_TITLE}" if self.case
                            else APP_TITLE)

    def view_settings(self) -> dict:
        return {"window": list(self.state.window), "opacity": self.state.opacity,
                "outline": self.state.outline, "visible": dict(self.state.visible),
                "colours": {k: list(v) for k, v in self.state.colours.items()},
                "cursor_lps": [float(v) for v in self.state.cursor_lps]}

    def apply_view_settings(self, view: dict) -> None:
        if "window" in view:
            self.state.set_window(*view["window"])
        if "opacity" in view:
            self.state.set_opacity(view["opacity"])
        if "outline" in view:
            self.state.set_outline(view["outline"])
        for key, on in view.get("visible", {}).items():
            if key in self.state.visible:
                self.state.set_visible(key, on)
        for key, colour in view.get("colours", {}).items():
            if key in self.state.colours:
                self.state.set_colour(key, colour)
        if "cursor_lps" in view:
            self.state.set_cursor(np.asarray(view["cursor_lps"], dtype=float))

    # --- saving --------------------------------------------------------------------------------
    def save(self) -> Task | None:
        if self.case is None:
            return None
        if self.case_file is None:
            return self.save_as_dialog()
        return self.save_to(self.case_file)

    def save_as_dialog(self) -> Task | None:
        if self.case is None:
            return None
        path, _ = QFileDialog.getSaveFileName(self, "Save the case as", str(
            Path(self.settings.value("last_folder", "")) / f"case{CASE_SUFFIX}"))
        return self.save_to(case_path(path)) if path else None

    def save_to(self, path: Path) -> Task:
        case = self.case
        task = Task("Saving case", save_case, case, path, source=self.source,
                    view=self.view_settings())
        return self.run_task(task, lambda folder: self._on_saved(case, Path(folder)))

    def _on_saved(self, case: Case, folder: Path) -> None:
        self.log("info", f"Saved the case to {folder}.")
        if case is self.case:
            self.case_file, self.dirty = folder, False
            self._update_title()
        self._remember(folder)

    def maybe_save(self) -> bool:
        """Ask Save / Discard / Cancel if the open case has unsaved changes; False = cancel."""
        if self.case is None or not self.dirty:
            return True
        self.question = QMessageBox(QMessageBox.Question, APP_TITLE,
                                    "The case has unsaved changes. Save them?",
                                    QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel,
                                    self)
        answer = self.question.exec()
        self.question = None
        if answer == QMessageBox.Cancel:
            return False
        if answer == QMessageBox.Save:
            target = self.case_file
            if target is None:
                path, _ = QFileDialog.getSaveFileName(self, "Save the case as", f"case{CASE_SUFFIX}")
                if not path:
                    return False
                target = case_path(path)
            # Save synchronously: the window is about to close or change case.
            try:
                save_case(self.case, target, source=self.source, view=self.view_settings())
            except ExportError as exc:
                self.show_error(f"The case was not saved, so it stays open. {exc}")
                return False
            self.case_file = target
            self.log("info", f"Saved the case to {self.case_file}.")
        self.dirty = False
        return True

    # --- autosave and recovery -----------------------------------------------------------------
    def autosave(self) -> Task | None:
        """Copy the open case to the recovery folder if it changed since the last copy."""
        if self.case is None or self._autosaved:
            return None
        self._autosaved = True
        self.recovery_dir.mkdir(parents=True, exist_ok=True)
        owner = {"pid": os.getpid(), "case_file": str(self.case_file) if self.case_file else None,
                 "source": self.source}
        (self.recovery_dir / RECOVERY_OWNER).write_text(json.dumps(owner))
        task = Task("Autosave", save_case, self.case, self.recovery_dir / RECOVERY_CASE,
                    source=self.source, view=self.view_settings())
        # A bound slot, not a lambda: Qt drops it if the window is gone when the copy finishes.
        task.failed.connect(self._autosave_failed)
        return task.start()

    def _autosave_failed(self, message: str, _details=None) -> None:
        self.log("warning", f"Autosave failed: {message}")

    def recovery_available(self) -> Path | None:
        """The recovery copy left by a session that ended without closing (a crash), if any."""
        folder = self.recovery_dir / RECOVERY_CASE
        try:
            owner = json.loads((self.recovery_dir / RECOVERY_OWNER).read_text())
        except (OSError, ValueError):
            return None
        if not is_case(folder) or app_settings.pid_alive(int(owner.get("pid", 0))) \
                and owner.get("pid") != os.getpid():
            return None
        return folder

    def offer_recovery(self) -> Task | None:
        folder = self.recovery_available()
        if folder is None:
            return None
        answer = QMessageBox.question(
            self, APP_TITLE, "LiverPlan did not close properly last time. Restore the case it "
            "was working on (autosaved)?", QMessageBox.Yes | QMessageBox.No)
        if answer != QMessageBox.Yes:
            self.clear_recovery()
            return None
        owner = json.loads((self.recovery_dir / RECOVERY_OWNER).read_text())
        task = Task("Restoring autosaved case", open_case, folder)

        def restored(result):
            case, manifest = result
            case_file = Path(owner["case_file"]) if owner.get("case_file") else None
            self.set_case(case, source=manifest.get("source"), case_file=case_file, dirty=True)
            self.apply_view_settings(manifest.get("view", {}))
            self.log("info", "Restored the autosaved case; save it to keep it.")
        return self.run_task(task, restored)

    def clear_recovery(self) -> None:
        shutil.rmtree(self.recovery_dir / RECOVERY_CASE, ignore_errors=True)
        (self.recovery_dir / RECOVERY_OWNER).unlink(missing_ok=True)

    # --- views ---------------------------------------------------------------------------------
    def set_measure_mode(self, on: bool) -> None:
        for view in self.views.values():
            view.measure_mode = bool(on)
            view.measure_points = []
            view.update()

    def reset_views(self) -> None:
        for view in self.views.values():
            view.reset_view()

    def screenshot_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save a screenshot", "liverplan.png",
                                              "PNG images (*.png)")
        if path:
            self.save_picture(Path(path), "screenshot", self._write_snapshot)

    def _write_snapshot(self, path: Path) -> None:
        if not self.snapshot().save(str(path), "PNG"):       # Qt says only that it failed
            raise OSError(f"the picture could not be written to {path}")

    def save_picture(self, path: Path, what: str, write) -> Path | None:
        """`write(temporary path)` saves the picture; it then replaces `path`. A failure is shown
        and leaves what was at `path` untouched. Returns the path, None on failure."""
        try:
            with atomic_write(path) as tmp:
                write(tmp)
        except ExportError as exc:
            self.show_error(f"The {what} was not saved. {exc}")
            return None
        self.log("info", f"{what[0].upper()}{what[1:]} saved to {path}.")
        return path

    def snapshot(self) -> QImage:
        """The window as it is shown. grab() cannot read the 3-D view's OpenGL surface (it comes
        out as noise), so the view's own rendering is painted in its place (in 24-bit colour
        whatever the display's depth)."""
        image = self.grab().toImage().convertToFormat(QImage.Format_RGB32)
        widget = self.view3d.plotter.interactor
        if widget.isVisible():
            painter = QPainter(image)
            painter.drawImage(QRect(widget.mapTo(self, QPoint(0, 0)), widget.size()),
                              self.view3d.image())
            painter.end()
        return image

    def screenshot3d_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the 3-D view", "liverplan-3d.png",
                                              "PNG images (*.png)")
        if path:
            self.save_picture(Path(path), "3-D screenshot", self.view3d.screenshot)

    # --- window events -------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_path(paths[0])

    def _restore_layout(self) -> None:
        geometry, layout = self.settings.value("geometry"), self.settings.value("window_state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
        if isinstance(layout, QByteArray):
            self.restoreState(layout)
        splitter = self.settings.value("splitter")
        if isinstance(splitter, QByteArray):
            self.splitter.restoreState(splitter)

    def closeEvent(self, event) -> None:
        if not self.maybe_save():
            event.ignore()
            return
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        self.settings.setValue("splitter", self.splitter.saveState())
        self.settings.sync()
        self._autosave_timer.stop()
        self._autosave_soon.stop()
        # tasks still running are stopped, and their outcome must not reach a closed window
        # (its 3D view's plotter is released below)
        for task in list(self._running):
            task.cancel()
            for signal in (task.finished, task.failed, task.cancelled):
                signal.disconnect()
        self.clear_recovery()
        self._unsubscribe()
        self.view3d.close_plotter()
        event.accept()
