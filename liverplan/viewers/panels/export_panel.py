"""Export step: a kept plan's PDF report, the 3-D models, the DICOM SEG (with the report as an
encapsulated PDF), the plan JSON; optionally de-identified and sent to a PACS.

The work is liverplan.io.export_all.export_case, the function `liverplan export` calls, run off
the UI thread. It refuses a plan made on other masks and writes each file atomically, so a
refused or failed export leaves the files of an earlier export as they were.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QFormLayout, QGridLayout,
                               QHBoxLayout, QLineEdit, QListWidget, QPushButton,
                               QSizePolicy, QVBoxLayout, QWidget)

from liverplan.case import LIVER
from liverplan.io import pacs
from liverplan.io.export_all import ExportResult, export_case
from liverplan.viewers.panels.step import EXPORT, Step, has_label
from liverplan.viewers.widgets import WrappedLabel, narrow_combo
from liverplan.viewers.workers import Task

if TYPE_CHECKING:
    from liverplan.viewers.main_window import MainWindow

FOLDER_KEY, PACS_KEY = "export/folder", "export/pacs"
NO_PLAN = "No kept plan: keep a plan in the Plan step first (needed for the PDF report and " \
          "the plan JSON)."


def echo(text: str, *, progress=None, cancel=None) -> str:
    """C-ECHO the PACS named AE@HOST:PORT; its normalised address when it answers."""
    target = pacs.PacsTarget.parse(text)
    pacs.echo(target)
    return str(target)


class ExportPanel(QWidget):
    def __init__(self, window: "MainWindow"):
        super().__init__()
        self.window = window
        self.task: Task | None = None
        self.echo_task: Task | None = None
        self.result: ExportResult | None = None
        self._case = None
        self._plans: dict = {}                       # plan name -> PlanFile last listed

        self.status = WrappedLabel("Exports the case and a kept plan for the OR and the PACS.")
        self.plan_box = narrow_combo()
        self.plan_box.setToolTip("The kept plan (Plan step) the report, models and plan JSON "
                                 "describe")
        self.no_plan = WrappedLabel(NO_PLAN)
        self.no_plan.setStyleSheet("color: #b26a00;")
        self.folder = QLineEdit(str(window.settings.value(FOLDER_KEY, "") or ""))
        self.folder.setPlaceholderText("export folder")
        choose = QPushButton("Choose…")
        choose.clicked.connect(self.choose_folder)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(choose)
        self.pacs = QLineEdit(str(window.settings.value(PACS_KEY, "") or ""))
        self.pacs.setPlaceholderText("AE@host:port (optional)")
        self.pacs.setToolTip("Send the SEG and the encapsulated report to this PACS after "
                             "writing them; leave empty to write files only")
        self.echo_button = QPushButton("Test")
        self.echo_button.setToolTip("Check the connection to the PACS (DICOM C-ECHO)")
        self.echo_button.clicked.connect(self.test_pacs)
        send = QHBoxLayout()
        send.addWidget(self.pacs, 1)
        send.addWidget(self.echo_button)
        form = QFormLayout()
        form.addRow("Plan", self.plan_box)
        form.addRow(self.no_plan)
        form.addRow("Folder", row)
        form.addRow("PACS", send)

        self.checks = {"pdf": QCheckBox("PDF report"), "meshes": QCheckBox("3-D models"),
                       "seg": QCheckBox("DICOM SEG"), "plan_json": QCheckBox("Plan JSON"),
                       "deidentify": QCheckBox("De-identify")}
        tips = {"pdf": "report.pdf, and report.dcm (the PDF encapsulated in the CT's study)",
                "meshes": "STL and PLY per structure, remnant, resected part and cut surface; "
                          "scene.glb (LPS mm)",
                "seg": "segmentation.dcm: a DICOM SEG referencing the CT series",
                "plan_json": "plan.liverplan.json: the plan's inputs and results",
                "deidentify": "DICOM PS3.15 basic profile: pseudonym, shifted dates, new UIDs, "
                              "for exports that leave the hospital"}
        grid = QGridLayout()
        for n, (key, check) in enumerate(self.checks.items()):
            check.setChecked(key != "deidentify")
            check.setToolTip(tips[key])
            grid.addWidget(check, n // 2, n % 2)

        self.export_button = QPushButton("Export")
        self.export_button.clicked.connect(self.export)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button, 1)
        buttons.addWidget(self.cancel_button)
        self.files = QListWidget()
        self.files.setToolTip("Files written by the last export; double-click to open the folder")
        self.files.itemActivated.connect(self.open_folder)
        # Only what is left over: the side panel's scroll area sizes pages by their size hints.
        self.files.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Ignored)
        self.files.setMinimumHeight(60)
        self.warnings = WrappedLabel()
        self.warnings.setStyleSheet("color: #b26a00;")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.status)
        layout.addLayout(form)
        layout.addLayout(grid)
        layout.addLayout(buttons)
        layout.addWidget(self.files, 1)
        layout.addWidget(self.warnings)
        # caseChanged follows every case event, "plans" included.
        window.caseChanged.connect(self._on_case_changed)
        self._on_case_changed(window.case)

    # --- inputs --------------------------------------------------------------------------------
    def _on_case_changed(self, case) -> None:
        if case is not self._case:
            self._case, self._plans = case, {}
            self._show_files(None)
        plans = {p.plan.name: p for p in (case.plans if case is not None else [])}
        # The newest plan is the one just kept (or changed, e.g. by an ICG prediction).
        fresh = [name for name, p in plans.items() if self._plans.get(name) is not p]
        chosen = fresh[-1] if fresh else self.plan_box.currentData()
        if chosen not in plans:
            chosen = next(reversed(plans), None)
        self._plans = plans
        self.plan_box.clear()
        for name, pf in plans.items():
            self.plan_box.addItem(f"{name}: {pf.plan.result.verdict}", name)
        self.plan_box.setCurrentIndex(self.plan_box.findData(chosen))
        self.no_plan.setVisible(not plans)

    def selected_plan(self):
        return self._plans.get(self.plan_box.currentData())

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export to folder", self.folder.text())
        if path:
            self.folder.setText(path)
            self.window.settings.setValue(FOLDER_KEY, path)

    def open_folder(self, _item=None) -> None:
        if self.result is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.result.folder)))

    # --- export --------------------------------------------------------------------------------
    def export(self) -> Task | None:
        case, planfile = self.window.case, self.selected_plan()
        options = {key: check.isChecked() for key, check in self.checks.items()}
        folder, target = self.folder.text().strip(), self.pacs.text().strip()
        problem = ("Open a case first." if case is None else
                   "Choose the export folder." if not folder else
                   NO_PLAN if planfile is None and (options["pdf"] or options["plan_json"]) else
                   "Choose at least one file to write." if not any(
                       options[k] for k in ("pdf", "meshes", "seg", "plan_json")) else "")
        if problem:
            self.window.show_error(problem)
            return None
        if self.task is not None and self.task.running:
            return None
        # A snapshot: edits made while the export runs neither mix into it nor are lost.
        snapshot = replace(case, labels=dict(case.labels), plans=list(case.plans),
                           warnings=list(case.warnings))
        self.task = Task("Export", export_case, snapshot, folder, planfile=planfile,
                         send=target or None, **options)
        self.task.progress.connect(self._on_progress)
        self.task.failed.connect(self._on_failed)
        self.task.cancelled.connect(self._on_cancelled)
        self.task.done.connect(self._on_done)
        self.export_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"Exporting to {Path(folder).name}/…")
        return self.window.run_task(self.task, self._on_exported)

    def cancel(self) -> None:
        if self.task is not None and self.task.running:
            self.task.cancel()

    def _on_progress(self, _fraction: float, message: str) -> None:
        self.status.setText(message)

    def _on_exported(self, result: ExportResult) -> None:
        self.window.settings.setValue(FOLDER_KEY, str(result.folder))
        if self.pacs.text().strip():
            self.window.settings.setValue(PACS_KEY, self.pacs.text().strip())
        self._show_files(result)
        sent = f", {len(result.sent)} object(s) sent to the PACS" if result.sent else ""
        done = f"Exported {len(result.files)} file(s){sent}"
        self.status.setText(f"{done} to {result.folder.name}/ (double-click a file to open the "
                            "folder).")
        self.status.setToolTip(str(result.folder))
        self.window.log("info", f"{done} to {result.folder}.")
        for warning in result.warnings:
            self.window.log("warning", f"Export: {warning}")

    def _show_files(self, result: ExportResult | None) -> None:
        self.result = result
        self.files.clear()
        if result is not None:
            self.files.addItems([str(p.relative_to(result.folder)) for p in result.files])
        self.warnings.setText("\n".join(result.warnings) if result is not None else "")

    def _on_failed(self, message: str, _details: str) -> None:
        # The dialog and the log come from window.run_task; the panel says what happened too.
        self.status.setText(f"Export failed: {message}\nFiles already in the folder were left "
                            "as they were.")

    def _on_cancelled(self) -> None:
        self.status.setText("Export cancelled; files already in the folder were left as they "
                            "were.")

    def _on_done(self) -> None:
        self.export_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    # --- PACS ----------------------------------------------------------------------------------
    def test_pacs(self) -> Task | None:
        if self.echo_task is not None and self.echo_task.running:
            return None
        self.echo_task = Task("PACS connection test", echo, self.pacs.text())
        self.echo_task.failed.connect(self._on_echo_failed)
        self.status.setText(f"Testing the connection to {self.pacs.text().strip()}…")
        return self.window.run_task(self.echo_task, self._on_echo)

    def _on_echo(self, target: str) -> None:
        self.window.settings.setValue(PACS_KEY, target)
        self.status.setText(f"The PACS {target} answered the connection test.")
        self.window.log("info", self.status.text())

    def _on_echo_failed(self, message: str, _details: str) -> None:
        self.status.setText(f"PACS connection test failed: {message}")


STEP = Step(EXPORT, "export", "Export", ExportPanel, has_label(LIVER))
