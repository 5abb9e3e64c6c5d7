"""Plan step: patient, resection (presets, segments, wedges, a cut plane dragged in 3-D), the
FLR figures, margins and verdict updated live, kept plans with their staged strategies, and the
FLR growth measured on a follow-up scan.

The planning context (liverplan.planner.flr.PlanningContext) is built once per version of the
case's masks, off the UI thread; every change of the inputs then re-evaluates the plan on the UI
thread (tens of ms). Changes are coalesced by a 0-ms timer, so a drag always shows the latest
position and never a backlog. The 3-D cut surface and resected part follow once the inputs
settle (they take longer: meshing runs as a Task).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyvista as pv
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QDoubleSpinBox,
                               QFileDialog, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QPushButton, QTableWidget, QTableWidgetItem, QTabWidget,
                               QVBoxLayout, QWidget)

from liverplan import evidence as ev
from liverplan import io
from liverplan.case import LABEL_NAMES, LIVER, SEGMENTS, TUMORS, VESSELS
from liverplan.errors import InputError, LiverPlanError
from liverplan.geometry import same_grid
from liverplan.meshes import mask_to_mesh
from liverplan.planner.flr import Plan, PlanningContext, plan, resected_image, resected_mask
from liverplan.planner.followup import FollowUp, follow_up
from liverplan.planner.patient import Patient
from liverplan.planner.planfile import PlanFile, series_inputs
from liverplan.planner.resection import (DEFAULT_WEDGE_MARGIN_MM, PRESETS, PlaneCut,
                                         SegmentResection, SurfaceCut, WedgeResection)
from liverplan.planner.staging import Strategy, rank_strategies
from liverplan.progress import Steps
from liverplan.viewers.panels.segment_panel import segment_image
from liverplan.viewers.panels.step import PLAN, Step, has_label
from liverplan.viewers.widgets import WrappedLabel, narrow_combo
from liverplan.viewers.workers import Task

if TYPE_CHECKING:
    from liverplan.viewers.main_window import MainWindow

QUALITIES = {"normal": "Normal liver", "chemo": "After chemotherapy",
             "cirrhosis": "Fibrosis / cirrhosis"}
SEXES = {None: "unknown", "M": "male", "F": "female", "O": "other"}
VERDICT_STYLE = {"feasible": "#2e7d32", "borderline": "#b26a00", "not feasible": "#c62828"}
STRATEGY_COLUMNS = ("Rank", "Strategy", "Why", "Days", "Rule", "Source")
LESION_COLUMNS = ("Lesion", "Wedge margin (mm)", "Status", "Margin (mm)", "R0")
CUT_KEY, RESECTED_KEY = "plan_cut_surface", "plan_resected"
SETTLE_MS = 300          # the 3-D meshes and the follow-up follow once the inputs rest this long


def preset_title(key: str) -> str:
    return f"{key.replace('_', ' ').capitalize()} ({','.join(map(str, PRESETS[key]))})"


def masks_key(case) -> tuple:
    """One version of the case's masks (label images are replaced, never edited in place)."""
    return (case,) + tuple(case.labels.get(name) for name in LABEL_NAMES)


def same_masks(a: tuple | None, b: tuple | None) -> bool:
    return a is not None and b is not None and all(x is y for x, y in zip(a, b))


def cut_surface_mesh(ctx: PlanningContext, resected: np.ndarray) -> pv.PolyData:
    """The cut surface exactly as the margins see it: one square per face between a resected
    and a kept liver voxel, in LPS mm."""
    faces = ctx.cut_faces(resected)
    if not len(faces):
        return pv.PolyData()
    a, b = ctx.zyx[faces[:, 0]].astype(float), ctx.zyx[faces[:, 1]].astype(float)
    mid = (a + b) / 2
    axis = np.argmax(np.abs(b - a), axis=1)
    # The two in-face axes of each face, then its four corners (half a voxel either way).
    u = np.eye(3)[(axis + 1) % 3] / 2
    v = np.eye(3)[(axis + 2) % 3] / 2
    corners = np.stack([mid - u - v, mid + u - v, mid + u + v, mid - u + v], axis=1)
    points = ctx.to_lps(corners.reshape(-1, 3))
    cells = np.hstack([np.full((len(faces), 1), 4), np.arange(4 * len(faces)).reshape(-1, 4)])
    return pv.PolyData(points, cells.ravel()).clean()


def plan_meshes(ctx: PlanningContext, resections, *, progress=None,
                cancel=None) -> tuple[pv.PolyData, pv.PolyData]:
    """(cut surface, resected part) of a plan for the 3-D view."""
    steps = Steps(progress, cancel)
    steps.report(0.0, "Cut surface")
    cut = cut_surface_mesh(ctx, resected_mask(ctx, resections))
    steps.report(0.3, "Resected part")
    resected = mask_to_mesh(resected_image(ctx, resections), target_faces=60_000)
    steps.report(1.0, "Plan surfaces ready")
    return cut, resected


@dataclass
class FollowupScan:
    """A follow-up scan ready for the FLR comparison: its planning context and what was noted."""
    source: Path
    context: PlanningContext
    warnings: list[str] = field(default_factory=list)


def prepare_followup(source, *, labels=None, series=None, progress=None,
                     cancel=None) -> FollowupScan:
    """Load a follow-up scan, segment its liver, vessels and Couinaud segments the way the
    Segment step does (unless `labels`, masks on its grid, are given) and build its context."""
    steps = Steps(progress, cancel)
    volume = io.load(source, series=series, progress=steps.sub(0.0, 0.15).report, cancel=cancel)
    warnings = list(volume.warnings)
    if labels is None:
        auto = segment_image(volume.image, path=source, progress=steps.sub(0.15, 0.85).report,
                             cancel=cancel)
        labels, warnings = auto.labels, warnings + auto.warnings
    for name, mask in labels.items():
        if not same_grid(mask, volume.image):
            raise InputError(f"the follow-up {name} mask is not on the follow-up scan's grid",
                             path=source)
    ctx = PlanningContext(labels[LIVER], labels.get(TUMORS), labels.get(SEGMENTS),
                          labels.get(VESSELS), info=volume.info,
                          progress=steps.sub(0.85, 1.0).report, cancel=cancel)
    return FollowupScan(Path(source), ctx, warnings + ctx.warnings)


def _label(text: str = "", *, bold: bool = False) -> QLabel:
    return WrappedLabel(text, bold=bold, selectable=True)


def _item(text: str, tip: str = "") -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemIsEditable)
    if tip:
        item.setToolTip(tip)
    return item


def _table(columns) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().hide()
    table.setSelectionMode(QAbstractItemView.NoSelection)
    table.setWordWrap(True)
    return table


class PlanPanel(QWidget):
    def __init__(self, window: "MainWindow"):
        super().__init__()
        self.window = window
        self.case = None
        self.ctx: PlanningContext | None = None
        self._ctx_key: tuple | None = None
        self._ctx_task: Task | None = None
        self._mesh_task: Task | None = None
        self._mesh_for: tuple | None = None           # (ctx, resections) being meshed
        self._followup_task: Task | None = None
        self.followup_scan: FollowupScan | None = None
        self.followup: FollowUp | None = None
        self.current: Plan | None = None              # the plan shown, None when nothing is cut
        self.strategies: tuple[Strategy, ...] = ()
        self.plane: tuple[tuple, tuple] | None = None  # (origin LPS mm, normal) of the cut plane
        self.last_update_ms = 0.0                     # evaluate + display of the last update
        self._changed_at: float | None = None         # when the pending change happened
        self.change_to_shown_ms = 0.0                 # that change until its figures were shown
        self._filling = False                         # widgets set by code, not by the user
        self._dragging = False

        self._update_soon = QTimer(self, singleShot=True, interval=0)
        self._update_soon.timeout.connect(self.update_results_now)
        self._settle = QTimer(self, singleShot=True, interval=SETTLE_MS)
        self._settle.timeout.connect(self._on_settled)

        self.status = _label("The plan needs the liver mask; Couinaud segments for anatomical "
                             "resections, lesions for wedges and margins, vessels for the "
                             "inflow/outflow check.")
        self.verdict = WrappedLabel("—")
        self.verdict.setAlignment(Qt.AlignCenter)
        self.verdict.setToolTip("The verdict and the rule that decided it; every rule checked "
                                "is listed under Details")
        self.figures = {key: QLabel(styleSheet="font-weight: bold;")    # short: never wrapped
                        for key in ("flr_ml", "flr_percent", "sflr", "flr_bw")}
        self.thresholds = {key: _label() for key in ("sflr", "flr_bw")}
        self.timing = QLabel()
        self.timing.setStyleSheet("color: grey;")
        tabs = QTabWidget()
        tabs.addTab(self._build_inputs(), "Resection")
        tabs.addTab(self._build_details(), "Margins")
        tabs.addTab(self._build_plans(), "Plans")
        tabs.addTab(self._build_followup(), "Follow-up")
        self.tabs = tabs
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.status)
        layout.addWidget(self.verdict)
        layout.addWidget(self._build_figures())
        layout.addWidget(tabs, 1)

        keep = QAction("Keep this plan", self)
        keep.setShortcut(QKeySequence("Ctrl+K"))
        keep.triggered.connect(self.keep_plan)
        window.addAction(keep)
        self.keep_action = keep
        window.caseChanged.connect(self._on_case_changed)
        window.caseEdited.connect(self._on_case_edited)
        self._show_result(None)

    # --- layout --------------------------------------------------------------------------------
    def _build_figures(self) -> QWidget:
        box = QGroupBox("Future liver remnant")
        grid = QGridLayout(box)
        rows = (("FLR", "flr_ml", "functional remnant: kept liver minus tumours left in it"),
                ("FLR / functional liver", "flr_percent", "of the measured liver minus tumours"),
                ("sFLR (FLR / TELV)", "sflr", "standardized FLR: TELV from weight and height"),
                ("FLR / body weight", "flr_bw", "1 mL of liver taken as 1 g"))
        for r, (name, key, tip) in enumerate(rows):
            title = QLabel(name)
            title.setToolTip(tip)
            grid.addWidget(title, r, 0)
            grid.addWidget(self.figures[key], r, 1)
            if key in self.thresholds:
                grid.addWidget(self.thresholds[key], r, 2)
        grid.addWidget(self.timing, len(rows), 0, 1, 3)
        grid.setColumnStretch(2, 1)
        return box

    def _build_inputs(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(2, 2, 2, 2)

        patient = QGroupBox("Patient")
        form = QFormLayout(patient)
        self.weight = QDoubleSpinBox(decimals=1, minimum=0.0, maximum=300.0, singleStep=1.0,
                                     suffix=" kg", keyboardTracking=False)
        self.weight.setSpecialValueText("unknown")
        self.weight.setToolTip("Body weight (from the DICOM tags when present); with the height "
                               "it gives the TELV for the sFLR, and the FLR/BW ratio")
        self.height_cm = QDoubleSpinBox(decimals=0, minimum=0.0, maximum=230.0, singleStep=1.0,
                                        suffix=" cm", keyboardTracking=False)
        self.height_cm.setSpecialValueText("unknown")
        self.height_cm.setToolTip("Height (from the DICOM tags when present)")
        self.sex = narrow_combo()
        for code, text in SEXES.items():
            self.sex.addItem(text, code)
        self.quality = narrow_combo()
        for code, text in QUALITIES.items():
            self.quality.addItem(f"{text} (sFLR ≥ {Patient(quality=code).sflr_min.value:g} %)",
                                 code)
        self.quality.setToolTip("Liver quality sets the minimum sFLR (AHPBA/SSO/SSAT consensus)")
        self.patient_note = _label()
        self.patient_note.setStyleSheet("color: #c62828;")
        form.addRow("Weight", self.weight)
        form.addRow("Height", self.height_cm)
        form.addRow("Sex", self.sex)
        form.addRow("Liver", self.quality)
        form.addRow(self.patient_note)
        for spin in (self.weight, self.height_cm):
            spin.valueChanged.connect(self._on_patient_edited)
        for combo in (self.sex, self.quality):
            combo.currentIndexChanged.connect(self._on_patient_edited)
        layout.addWidget(patient)

        anatomical = QGroupBox("Anatomical resection")
        grid = QGridLayout(anatomical)
        self.preset = narrow_combo()
        self.preset.addItem("— choose a named resection —", "")
        for key in PRESETS:
            self.preset.addItem(preset_title(key), key)
        self.preset.setToolTip("A named resection (Brisbane 2000) ticks its Couinaud segments")
        self.preset.currentIndexChanged.connect(self._on_preset)
        grid.addWidget(self.preset, 0, 0, 1, 4)
        self.segment_checks = {}
        for n in range(1, 9):
            check = QCheckBox(f"S{n}")
            check.setToolTip(f"Resect Couinaud segment {n}")
            check.toggled.connect(self._on_segments_edited)
            self.segment_checks[n] = check
            grid.addWidget(check, 1 + (n - 1) // 4, (n - 1) % 4)
        self.segments_note = _label()
        grid.addWidget(self.segments_note, 3, 0, 1, 4)
        layout.addWidget(anatomical)

        wedges = QGroupBox("Wedges around lesions")
        box = QVBoxLayout(wedges)
        self.lesion_table = _table(LESION_COLUMNS[:2])
        self.lesion_table.setToolTip("Tick a lesion to remove it with a wedge of healthy liver "
                                     "of the given margin around it")
        self.lesion_table.itemChanged.connect(self._on_wedge_ticked)
        self.lesion_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.margin_spins: dict[int, QDoubleSpinBox] = {}
        box.addWidget(self.lesion_table)
        layout.addWidget(wedges)

        cut = QGroupBox("Cut plane")
        box = QVBoxLayout(cut)
        self.use_plane = QCheckBox("Cut plane (drag it in the 3-D view)")
        self.use_plane.setToolTip("Drag the plane's centre to move it and its arrow to tilt it; "
                                  "the liver on the arrow's side is removed")
        self.use_plane.toggled.connect(self._on_plane_toggled)
        self.flip = QCheckBox("Remove the other side")
        self.flip.setToolTip("Remove the liver against the arrow instead of along it")
        self.flip.toggled.connect(self._changed)
        self.deformable = QCheckBox("As a deformable surface (5×5 control grid)")
        self.deformable.setToolTip("Plan with a smooth cut surface started from the plane "
                                   "(liverplan SurfaceCut); flat until its control points move")
        self.deformable.toggled.connect(self._changed)
        self.plane_text = _label()
        for w in (self.use_plane, self.flip, self.deformable, self.plane_text):
            box.addWidget(w)
        layout.addWidget(cut)
        layout.addStretch(1)
        return page

    def _build_details(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(2, 2, 2, 2)
        self.margin_table = _table(("Lesion", "Status", "Margin (mm)", "R0"))
        self.margin_table.setToolTip(f"Margin: shortest distance from the lesion surface to the "
                                     f"cut surface; R0 when >= {ev.R0_MARGIN_MM.value:g} mm "
                                     f"({ev.R0_MARGIN_MM.source})")
        self.margin_table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.vessels_text = _label()
        self.remnant_text = _label()
        self.reasons_text = _label()
        self.warnings_text = _label()
        self.warnings_text.setStyleSheet("color: #b26a00;")
        layout.addWidget(QLabel("Lesions and margins"))
        layout.addWidget(self.margin_table, 1)
        for title, w in (("Vessels crossed by the cut", self.vessels_text),
                         ("Remnant", self.remnant_text), ("Rules checked", self.reasons_text),
                         ("Warnings", self.warnings_text)):
            layout.addWidget(_label(title, bold=True))
            layout.addWidget(w)
        return page

    def _build_plans(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(2, 2, 2, 2)
        row = QHBoxLayout()
        self.plan_name = QLineEdit()
        self.plan_name.setPlaceholderText("name (default: the resection)")
        self.keep_button = QPushButton("Keep this plan")
        self.keep_button.setToolTip("Store this plan, its figures and its strategies in the case "
                                    "(Ctrl+K); a plan of the same name is replaced")
        self.keep_button.clicked.connect(self.keep_plan)
        row.addWidget(self.plan_name, 1)
        row.addWidget(self.keep_button)
        layout.addLayout(row)
        self.plan_list = QListWidget()
        self.plan_list.setToolTip("The case's plans: double-click one to show it again")
        self.plan_list.itemDoubleClicked.connect(self._reselect_item)
        layout.addWidget(self.plan_list)
        row = QHBoxLayout()
        self.show_button = QPushButton("Show")
        self.show_button.setToolTip("Put the selected plan's patient and resection back")
        self.show_button.clicked.connect(self.reselect_plan)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected plan from the case")
        self.remove_button.clicked.connect(self.remove_plan)
        row.addWidget(self.show_button)
        row.addWidget(self.remove_button)
        layout.addLayout(row)
        layout.addWidget(_label("Staged strategies for the current plan (decision support for "
                                "the multidisciplinary team)", bold=True))
        self.strategy_table = _table(STRATEGY_COLUMNS)
        self.strategy_table.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        layout.addWidget(self.strategy_table, 2)
        return page

    def _build_followup(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(2, 2, 2, 2)
        self.followup_button = QPushButton("Open follow-up scan…")
        self.followup_button.setToolTip("A DICOM folder of the scan after PVE (or stage 1): its "
                                        "liver and segments are segmented automatically and the "
                                        "same remnant is measured on it")
        self.followup_button.clicked.connect(self.open_followup_dialog)
        self.weeks = QDoubleSpinBox(decimals=1, minimum=0.0, maximum=52.0, singleStep=0.5,
                                    suffix=" weeks", keyboardTracking=False)
        self.weeks.setSpecialValueText("from the study dates")
        self.weeks.setToolTip("Time since PVE; by default the interval between the study dates")
        self.weeks.valueChanged.connect(self.update_followup)
        form = QFormLayout()
        form.addRow("Since PVE", self.weeks)
        self.followup_text = _label("Open the scan taken after portal vein embolization to "
                                    "measure how much the future remnant grew.")
        layout.addWidget(self.followup_button)
        layout.addLayout(form)
        layout.addWidget(self.followup_text)
        layout.addStretch(1)
        return page

    # --- the case and its planning context -----------------------------------------------------
    def _on_case_changed(self, case) -> None:
        if case is self.case:
            return
        self.case, self.ctx, self._ctx_key = case, None, None
        self.followup_scan = self.followup = None
        self.followup_text.setText("Open the scan taken after portal vein embolization to "
                                   "measure how much the future remnant grew.")
        self._filling = True
        try:
            self._fill_patient(self._case_patient())
            self.preset.setCurrentIndex(0)
            for check in self.segment_checks.values():
                check.setChecked(False)
            self.use_plane.setChecked(False)
            self.flip.setChecked(False)
            self.deformable.setChecked(False)
            self.lesion_table.setRowCount(0)
            self.margin_spins.clear()
        finally:
            self._filling = False
        self.plane = None
        self.window.view3d.remove_cut_plane()
        self._remove_meshes()
        self._fill_plans()
        self._show_result(None)
        if self.isVisible():
            self.ensure_context()

    def _on_case_edited(self, what: str) -> None:
        if what in LABEL_NAMES and self.case is not None:
            self.ctx = None                    # stale: rebuilt when the step is used
            if self.isVisible():
                self.ensure_context()
        elif what == "plans":
            self._fill_plans()
        elif what == "patient" and self.case is not None and self.case.patient is not None \
                and self.case.patient != self.patient():
            self._filling = True
            try:
                self._fill_patient(self.case.patient)
            finally:
                self._filling = False
            self._changed()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.ensure_context()

    def ensure_context(self) -> Task | None:
        """Build the planning context of the case's current masks (off the UI thread)."""
        case = self.case
        if case is None or LIVER not in case.labels:
            return None
        key = masks_key(case)
        if self.ctx is not None and same_masks(self._ctx_key, key):
            return None
        if self._ctx_task is not None and self._ctx_task.running:
            return self._ctx_task          # _on_context checks the key and rebuilds if needed
        self._ctx_key = key
        self.status.setText("Preparing the plan (liver voxels, segments, lesions, vessels)…")
        self._ctx_task = Task("Preparing the plan", PlanningContext.from_case, case)
        self.window.run_task(self._ctx_task, self._on_context)
        # Connected after start, so it runs after the task has marked itself finished.
        self._ctx_task.done.connect(self._on_context_done)
        return self._ctx_task

    def _on_context(self, ctx: PlanningContext) -> None:
        if self.case is None or not same_masks(masks_key(self.case), self._ctx_key):
            return                          # the masks changed meanwhile: _on_context_done
        self.ctx = ctx
        for warning in ctx.warnings:
            self.window.log("warning", f"Plan: {warning}")
        self._fill_lesions()
        has_segments = bool(ctx.segment.any())
        for check in self.segment_checks.values():
            check.setEnabled(has_segments)
        self.preset.setEnabled(has_segments)
        self.segments_note.setText("" if has_segments else
                                   "No Couinaud segment map: run the segmentation with vessels "
                                   "and segments for anatomical resections; wedges and the cut "
                                   "plane work without it.")
        self.status.setText(f"Liver {ctx.n * ctx.voxel_ml:.0f} mL, {len(ctx.lesions)} "
                            "lesion(s). Choose a resection: the figures follow every change.")
        if self.use_plane.isChecked():
            self._place_plane()
        self._changed()

    def _on_context_done(self) -> None:
        if self.case is not None and self.ctx is None and self.isVisible():
            self.ensure_context()           # the masks changed while it was built (or failed)

    def _case_patient(self) -> Patient:
        if self.case is None:
            return Patient()
        if self.case.patient is not None:
            return self.case.patient
        try:
            return Patient.from_series(self.case.info)
        except InputError as exc:           # implausible DICOM tags: let the user type them
            self.window.log("warning", f"Patient size from the DICOM tags ignored: {exc}")
            return Patient(sex=getattr(self.case.info, "patient_sex", None) or None)

    # --- inputs --------------------------------------------------------------------------------
    def _fill_patient(self, p: Patient) -> None:
        self.weight.setValue(p.weight_kg or 0.0)
        self.height_cm.setValue(p.height_cm or 0.0)
        self.sex.setCurrentIndex(max(self.sex.findData(p.sex), 0))
        self.quality.setCurrentIndex(self.quality.findData(p.quality))
        self.patient_note.clear()

    def patient(self) -> Patient:
        """The patient as entered; InputError for implausible values."""
        return Patient(self.weight.value() or None, self.height_cm.value() or None,
                       self.sex.currentData(), self.quality.currentData())

    def _on_patient_edited(self) -> None:
        if self._filling or self.case is None:
            return
        try:
            p = self.patient()
        except InputError as exc:
            self.patient_note.setText(str(exc))
            return
        self.patient_note.clear()
        self.case.set_patient(p)
        self._changed()

    def _on_preset(self) -> None:
        key = self.preset.currentData()
        if self._filling or not key:
            return
        self._filling = True
        try:
            for n, check in self.segment_checks.items():
                check.setChecked(n in PRESETS[key])
        finally:
            self._filling = False
        self._changed()

    def _on_segments_edited(self) -> None:
        if self._filling:
            return
        key = self.preset.currentData()
        if key and tuple(self.checked_segments()) != PRESETS[key]:
            self._filling = True
            self.preset.setCurrentIndex(0)  # the ticks no longer match the named resection
            self._filling = False
        self._changed()

    def checked_segments(self) -> list[int]:
        return [n for n, check in self.segment_checks.items() if check.isChecked()]

    def _fill_lesions(self) -> None:
        self._filling = True
        try:
            lesions = list(self.ctx.lesions.values())
            self.lesion_table.setRowCount(len(lesions))
            self.margin_spins.clear()
            for row, les in enumerate(lesions):
                item = _item(f"{les.lesion_id}: S{les.segment or '?'}, {les.diameter_mm:.0f} mm",
                             f"Lesion {les.lesion_id}: {les.volume_ml:.1f} mL")
                item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
                item.setCheckState(Qt.Unchecked)
                item.setData(Qt.UserRole, les.lesion_id)
                self.lesion_table.setItem(row, 0, item)
                spin = QDoubleSpinBox(decimals=0, minimum=0.0, maximum=50.0, singleStep=1.0,
                                      suffix=" mm", keyboardTracking=False)
                spin.setValue(DEFAULT_WEDGE_MARGIN_MM)
                spin.setToolTip("Healthy liver removed around the lesion (mm)")
                spin.valueChanged.connect(self._changed)
                self.lesion_table.setCellWidget(row, 1, spin)
                self.margin_spins[les.lesion_id] = spin
            self.lesion_table.resizeColumnToContents(1)
        finally:
            self._filling = False

    def _lesion_items(self):
        for row in range(self.lesion_table.rowCount()):
            item = self.lesion_table.item(row, 0)
            yield item.data(Qt.UserRole), item

    def _on_wedge_ticked(self, item) -> None:
        if item.column() == 0:
            self._changed()

    def set_wedge(self, lesion_id: int, on: bool, margin_mm: float | None = None) -> None:
        """Tick (or untick) a lesion's wedge, as a click on its row does."""
        if margin_mm is not None:
            self.margin_spins[lesion_id].setValue(margin_mm)
        item = dict(self._lesion_items())[lesion_id]
        item.setCheckState(Qt.Checked if on else Qt.Unchecked)

    def _on_plane_toggled(self, on: bool) -> None:
        if self._filling:
            return
        if on:
            self._place_plane()
        else:
            self.window.view3d.remove_cut_plane()
        self._changed()

    def _place_plane(self, origin=None, normal=None) -> None:
        """Show the cut plane in 3-D: through the liver's centre, removing the patient's right
        (normal towards -L), unless a position is given."""
        if self.ctx is None:
            return
        corners = self.ctx.to_lps(np.argwhere(np.ones((2, 2, 2))) * (
            np.array(self.ctx.index.shape) - 1))
        bounds = np.column_stack([corners.min(axis=0), corners.max(axis=0)]).ravel()
        if origin is None:
            origin, normal = self.ctx.to_lps(self.ctx.zyx.mean(axis=0))[0], (-1.0, 0.0, 0.0)
        self.plane = (tuple(map(float, origin)), tuple(map(float, normal)))
        self.window.view3d.add_cut_plane(self.plane[0], self.plane[1], bounds,
                                         self.on_plane_moved, self.on_plane_released)

    def on_plane_moved(self, normal, origin) -> None:
        """The 3-D plane widget's callback, at every step of a drag."""
        self._dragging = True
        self.plane = (tuple(map(float, origin)), tuple(map(float, normal)))
        self._changed()

    def on_plane_released(self) -> None:
        self._dragging = False
        self._settle.start()

    def resections(self) -> list:
        """The resections the inputs describe; they add up as the planner allows."""
        out = []
        segments = self.checked_segments()
        if segments:
            key = self.preset.currentData()
            out.append(SegmentResection(tuple(segments), key or ""))
        for lesion_id, item in self._lesion_items():
            if item.checkState() == Qt.Checked:
                out.append(WedgeResection(lesion_id, self.margin_spins[lesion_id].value()))
        if self.use_plane.isChecked() and self.plane is not None:
            origin, normal = self.plane
            side = "against_normal" if self.flip.isChecked() else "along_normal"
            out.append(SurfaceCut.from_plane(origin, normal, side=side)
                       if self.deformable.isChecked() else PlaneCut(origin, normal, side))
        return out

    # --- results -------------------------------------------------------------------------------
    def _changed(self, *_) -> None:
        """An input changed: show its result as soon as the event loop is free (coalesced)."""
        if self._filling:
            return
        if self._changed_at is None:
            self._changed_at = time.perf_counter()
        self._update_soon.start()
        if not self._dragging:
            self._settle.start()

    def update_results_now(self) -> Plan | None:
        """Evaluate the current inputs and show the figures (synchronously)."""
        start = time.perf_counter()
        changed_at, self._changed_at = self._changed_at, None
        self._update_soon.stop()
        if self.ctx is None:
            return None
        resections = self.resections()
        if self.plane is not None:
            o, n = self.plane
            self.plane_text.setText(f"through ({o[0]:.0f}, {o[1]:.0f}, {o[2]:.0f}) LPS mm, "
                                    f"normal ({n[0]:.2f}, {n[1]:.2f}, {n[2]:.2f})")
        if not resections:
            self.current, self.strategies = None, ()
            self._show_result(None)
            return None
        try:
            patient = self.patient()
        except InputError:
            patient = self.case.patient or Patient(quality=self.quality.currentData())
        try:
            self.current = plan(self.ctx, resections, patient)
        except LiverPlanError as exc:
            self.current = None
            self._show_result(None, str(exc))
            return None
        self.strategies = rank_strategies(self.current.result, resections, patient)
        self._show_result(self.current)
        self._show_strategies(self.strategies)
        self.last_update_ms = 1000 * (time.perf_counter() - start)
        if changed_at is not None:
            self.change_to_shown_ms = 1000 * (time.perf_counter() - changed_at)
        self.timing.setText(f"updated in {self.last_update_ms:.0f} ms")
        return self.current

    def _show_result(self, planned: Plan | None, message: str = "") -> None:
        if planned is None:
            self.verdict.setText(message or "Choose a resection")
            self.verdict.setStyleSheet("font-weight: bold; padding: 6px; color: white; "
                                       "background: #555;")
            for label in (*self.figures.values(), *self.thresholds.values()):
                label.setText("—")
            for w in (self.vessels_text, self.remnant_text, self.reasons_text,
                      self.warnings_text):
                w.clear()
            self.margin_table.setRowCount(0)
            self.strategy_table.setRowCount(0)
            self.keep_button.setEnabled(False)
            self.timing.clear()
            return
        r, p = planned.result, planned.patient
        lines = [r.verdict.upper(), f"{r.driving} {r.driving_percent:.1f} % (minimum "
                                    f"{r.sflr_min_percent:g} %, {p.sflr_min.note})"]
        # The rule that decided the verdict, when it is not the FLR ratio shown above.
        worst = ([x for x in r.reasons if x.status == "fail"]
                 or [x for x in r.reasons if x.status == "warn"])
        if worst and not worst[0].rule.startswith(r.driving):
            lines.append(worst[0].detail)
        self.verdict.setText(f"<div style='font-size: 16pt'>{lines[0]}</div>"
                             + "".join(f"<div>{line}</div>" for line in lines[1:]))
        self.verdict.setToolTip("\n".join(f"[{x.status}] {x.rule}: {x.detail}"
                                          + (f" (source: {x.source})" if x.source else "")
                                          for x in r.reasons))
        self.verdict.setStyleSheet("font-weight: bold; padding: 6px; color: white; "
                                   f"background: {VERDICT_STYLE[r.verdict]};")
        self.figures["flr_ml"].setText(f"{r.flr_ml:.0f} mL")
        self.figures["flr_percent"].setText(f"{r.flr_percent:.1f} %")
        self.figures["sflr"].setText("—" if r.sflr_percent is None else f"{r.sflr_percent:.1f} %")
        self.figures["flr_bw"].setText("—" if r.flr_bw_percent is None
                                       else f"{r.flr_bw_percent:.2f} %")
        self.thresholds["sflr"].setText(
            f"≥ {r.sflr_min_percent:g} % ({p.sflr_min.note})" if r.sflr_percent is not None
            else "needs weight and height")
        self.thresholds["flr_bw"].setText(f"≥ {ev.FLR_BW_MIN_PERCENT.value:g} %"
                                          if r.flr_bw_percent is not None else "needs weight")
        self.margin_table.setRowCount(len(r.lesions))
        for row, les in enumerate(r.lesions):
            margin = "—" if les.margin_mm is None else f"{les.margin_mm:.1f}"
            r0 = "—" if les.r0 is None else ("yes" if les.r0 else "NO")
            cells = (f"{les.lesion_id} (S{les.segment or '?'}, {les.diameter_mm:.0f} mm)",
                     les.status, margin, r0)
            for col, text in enumerate(cells):
                self.margin_table.setItem(row, col, _item(text))
            bad = les.status == "cut through" or les.r0 is False
            if bad:
                for col in range(4):
                    self.margin_table.item(row, col).setForeground(Qt.red)
        self.vessels_text.setText("\n".join(
            f"{c.system} vein, {c.diameter_mm:.1f} mm at "
            f"({', '.join(f'{v:.0f}' for v in c.position_lps_mm)}) LPS mm"
            for c in r.crossings) or "none")
        self.remnant_text.setText(("OK: " if r.remnant.passed else "CHECK: ")
                                  + r.remnant.detail)
        self.reasons_text.setText("\n".join(
            f"[{x.status}] {x.rule}: {x.detail}" for x in r.reasons))
        self.warnings_text.setText("\n".join(r.warnings) or "none")
        self.keep_button.setEnabled(True)

    def _show_strategies(self, strategies) -> None:
        table = self.strategy_table
        table.setRowCount(len(strategies))
        for row, s in enumerate(strategies):
            days = ("—" if not s.applicable or s.days_max is None else
                    "now" if s.days_max == 0 else f"{s.days_min:.0f}–{s.days_max:.0f}")
            steps = "\n".join(s.steps) if s.applicable else ""
            cells = (str(s.rank) if s.applicable else "—", s.name, s.summary, days, s.rule,
                     s.source)
            for col, text in enumerate(cells):
                table.setItem(row, col, _item(text, steps if col == 1 else text))
        table.resizeRowsToContents()

    # --- 3-D -----------------------------------------------------------------------------------
    def _on_settled(self) -> None:
        self.update_meshes()
        self.update_followup()

    def update_meshes(self) -> Task | None:
        """Cut surface and resected part of the current plan in the 3-D view (a Task)."""
        if self.ctx is None or self.current is None:
            self._remove_meshes()
            return None
        if self._mesh_task is not None and self._mesh_task.running:
            self._settle.start()           # mesh the newest plan after this one
            return None
        self._mesh_for = (self.ctx, self.current.resections)
        self._mesh_task = Task("Plan surfaces", plan_meshes, *self._mesh_for)
        return self.window.run_task(self._mesh_task, self._on_meshes, foreground=False)

    def _on_meshes(self, meshes) -> None:
        if self.current is None or self._mesh_for != (self.ctx, self.current.resections):
            return                          # the plan changed meanwhile; a new round follows
        cut, resected = meshes
        view = self.window.view3d
        # Colours no structure uses: the cut surface bright green, the resected part grey.
        for key, mesh, style in ((CUT_KEY, cut, dict(color="#3cff3c")),
                                 (RESECTED_KEY, resected, dict(color="#a0a0a0", opacity=0.6,
                                                                smooth_shading=True))):
            if mesh.n_points:
                view.show_mesh(key, mesh, **style)
            else:
                view.remove_mesh(key)

    def _remove_meshes(self) -> None:
        for key in (CUT_KEY, RESECTED_KEY):
            self.window.view3d.remove_mesh(key)

    # --- kept plans and strategies -------------------------------------------------------------
    def keep_plan(self) -> PlanFile | None:
        """Store the current plan (with its strategies and follow-up) in the case."""
        self.update_results_now()
        if self.case is None or self.current is None:
            return None
        name = self.plan_name.text().strip() or self.current.name
        kept = Plan(self.current.resections, self.current.patient, self.current.result, name,
                    tuple(self.case.warnings))
        followup = (self.followup if self.followup is not None and
                    self._followup_segments() == self.followup.segments else None)
        planfile = PlanFile(kept, series_inputs(self.case.info), strategies=self.strategies,
                            followup=followup)
        index = self.case.put_plan(planfile)
        self.plan_list.setCurrentRow(index)
        self.window.log("info", f"Plan '{name}' kept: {kept.result.verdict}, FLR "
                                f"{kept.result.flr_ml:.0f} mL.")
        return planfile

    def _fill_plans(self) -> None:
        self.plan_list.clear()
        for pf in (self.case.plans if self.case is not None else []):
            r = pf.plan.result
            ratio = (f"sFLR {r.sflr_percent:.1f} %" if r.sflr_percent is not None
                     else f"FLR {r.flr_percent:.1f} %")
            item = QListWidgetItem(f"{pf.plan.name}: {r.verdict}, FLR {r.flr_ml:.0f} mL, {ratio}")
            item.setData(Qt.UserRole, pf.plan.name)
            self.plan_list.addItem(item)

    def _selected_plan(self) -> PlanFile | None:
        item = self.plan_list.currentItem()
        if item is None or self.case is None:
            return None
        return next((p for p in self.case.plans if p.plan.name == item.data(Qt.UserRole)), None)

    def _reselect_item(self, _item) -> None:
        self.reselect_plan()

    def reselect_plan(self) -> None:
        """Put the selected plan's patient and resections back into the inputs."""
        pf = self._selected_plan()
        if pf is None or self.ctx is None:
            return
        self._filling = True
        try:
            self._fill_patient(pf.plan.patient)
            self.preset.setCurrentIndex(0)
            wedges = {}
            cut = None
            for r in pf.plan.resections:
                if isinstance(r, SegmentResection):
                    for n, check in self.segment_checks.items():
                        check.setChecked(n in r.segments)
                    self.preset.setCurrentIndex(max(self.preset.findData(r.name), 0))
                elif isinstance(r, WedgeResection):
                    wedges[r.lesion_id] = r.margin_mm
                elif cut is None:
                    cut = r
            if not any(isinstance(r, SegmentResection) for r in pf.plan.resections):
                for check in self.segment_checks.values():
                    check.setChecked(False)
            for lesion_id, item in self._lesion_items():
                if lesion_id in wedges:
                    self.margin_spins[lesion_id].setValue(wedges[lesion_id])
                item.setCheckState(Qt.Checked if lesion_id in wedges else Qt.Unchecked)
            self.use_plane.setChecked(cut is not None)
            if cut is not None:
                self.flip.setChecked(cut.side == "against_normal")
                self.deformable.setChecked(isinstance(cut, SurfaceCut))
                origin = cut.point_mm if isinstance(cut, PlaneCut) else cut.origin_mm
                self._place_plane(origin, tuple(cut.normal))
            else:
                self.window.view3d.remove_cut_plane()
            self.plan_name.setText(pf.plan.name)
        finally:
            self._filling = False
        if self.case.patient != pf.plan.patient:
            self.case.set_patient(pf.plan.patient)
        self._changed()

    def remove_plan(self) -> None:
        pf = self._selected_plan()
        if pf is not None:
            self.case.remove_plan(pf.plan.name)
            self.window.log("info", f"Plan '{pf.plan.name}' removed.")

    # --- follow-up -----------------------------------------------------------------------------
    def open_followup_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open the follow-up scan (a DICOM folder)",
                                                self.window.settings.value("last_folder", ""))
        if path:
            self.open_followup(path)

    def open_followup(self, source, *, labels=None) -> Task | None:
        """Load, segment and prepare a follow-up scan (a Task); `labels` skips the segmentation
        (masks already made on that scan)."""
        if self._followup_task is not None and self._followup_task.running:
            return None
        self.followup_text.setText("Loading and segmenting the follow-up scan…")
        self._followup_task = Task("Follow-up scan", prepare_followup, source, labels=labels)
        self._followup_case = self.case
        return self.window.run_task(self._followup_task, self._on_followup)

    def _on_followup(self, scan: FollowupScan) -> None:
        if self._followup_case is not self.case:
            return
        self.followup_scan = scan
        for warning in scan.warnings:
            self.window.log("warning", f"Follow-up: {warning}")
        self.window.log("info", f"Follow-up scan {scan.source} ready.")
        self.update_followup()

    def _followup_segments(self) -> tuple[int, ...]:
        return tuple(sorted({s for r in (self.current.resections if self.current else ())
                             if isinstance(r, SegmentResection) for s in r.segments}))

    def update_followup(self) -> FollowUp | None:
        """FLR growth between this scan and the follow-up for the current plan's segments."""
        self.followup = None
        if self.followup_scan is None or self.ctx is None:
            return None
        if self.current is None:
            self.followup_text.setText("Choose the planned resection (its segments define the "
                                       "remnant measured on both scans).")
            return None
        try:
            fu = follow_up(self.ctx, self.followup_scan.context, self.current.resections,
                           self.current.patient, weeks=self.weeks.value() or None)
        except LiverPlanError as exc:
            self.followup_text.setText(str(exc))
            return None
        self.followup = fu
        b, a = fu.before, fu.after
        growth = 100.0 * (a.flr_ml - b.flr_ml) / b.flr_ml if b.flr_ml else 0.0
        lines = [f"<b>Remnant without segments {', '.join(map(str, fu.segments))}</b>",
                 f"FLR {b.flr_ml:.0f} mL → {a.flr_ml:.0f} mL ({growth:+.1f} %)",
                 f"{a.driving} {b.driving_percent:.1f} % → {a.driving_percent:.1f} % "
                 f"(minimum {a.sflr_min_percent:g} %)",
                 f"Degree of hypertrophy {fu.dh_points:+.1f} points over {fu.weeks:.1f} weeks "
                 f"({fu.weeks_from})",
                 f"Kinetic growth rate <b>{fu.kgr_percent_per_week:.2f} %/week</b>: "
                 + ("low risk" if fu.kgr_low_risk else "below the low-risk rate")
                 + f" (≥ {ev.KGR_LOW_RISK_PERCENT_PER_WEEK.value:g} %/week)",
                 "<b>Stage 2 / resection: " + ("feasible" if fu.stage2_feasible
                                               else "NOT feasible") + "</b>"]
        lines += [f"[{x.status}] {x.rule}: {x.detail}" for x in fu.reasons]
        lines += [f"<i>{w}</i>" for w in fu.warnings]
        self.followup_text.setText("<br>".join(lines))
        return fu


STEP = Step(PLAN, "plan", "Plan", PlanPanel, has_label(LIVER))
