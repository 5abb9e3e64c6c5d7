"""ICG step: what the near-infrared laparoscope is expected to show ~24 h after 10 mg ICG.

Every parameter of the optics model (liverplan.planner.icg.IcgParameters) is a spin box with its
unit, range and source; the pattern (rim / whole lesion) is chosen per lesion in the table. Predict
runs the core maps off the UI thread: the liver surface, and with a plan the transection; the 3-D
view then shows them as a green overlay on a white-light liver colour (icg_view.overlay_colors),
the table the per-lesion prediction, and the result is stored in the plan (saved with the case).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyvista as pv
import SimpleITK as sitk
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QColor, QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QDoubleSpinBox,
                               QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QPushButton, QTableWidget, QTableWidgetItem, QToolButton,
                               QVBoxLayout, QWidget)

from liverplan import evidence
from liverplan.case import LIVER, TUMORS
from liverplan.errors import PlanningError
from liverplan.planner import icg
from liverplan.planner.flr import PlanningContext, resected_image
from liverplan.planner.icg import IcgParameters, IcgResult, SurfaceMap, TransectionMap
from liverplan.planner.icg_view import (default_view, overlay_colors, remnant_surface,
                                        render_nir_view)
from liverplan.progress import Steps
from liverplan.viewers.panels.step import ICG, Step
from liverplan.viewers.widgets import WrappedLabel
from liverplan.viewers.workers import Task

if TYPE_CHECKING:
    from liverplan.viewers.main_window import MainWindow

SURFACE_KEY, REMNANT_KEY, CUT_KEY = "icg_surface", "icg_remnant", "icg_cut"
NO_PLAN = "No resection (liver surface only)"
COLUMNS = ("Lesion", "Pattern", "Depth\n(mm)", "Seen on\nsurface", "Peak\n(× liver)",
           "Margin\n(mm)", "Trans-\nection", "Note")
COLUMN_TIPS = (
    "Lesion id (as in the lesion mask and the Volumetry step)",
    "Fluorescence pattern: a rim of liver around the lesion (colorectal metastases) or the "
    "whole lesion (as with hepatocellular tumours)",
    "Shortest distance from the lesion surface to the liver capsule, mm",
    "Whether the lesion's fluorescence is expected to be visible on the liver surface",
    "Peak expected intensity on the liver surface, in multiples of normal liver "
    "(visible from the detection threshold shown below the table)",
    "The planner's margin between the lesion and the planned transection, mm",
    "NIR+ / NIR-: fluorescence expected on the transection (specimen face or remnant cavity)",
    "Where the prediction and the margin disagree (full text below the table)")
_GREEN, _GREY, _AMBER = QColor("#2e7d32"), QColor("#616161"), QColor("#b26a00")


@dataclass(frozen=True)
class Spin:
    """One model parameter in the UI: its IcgParameters field, label, unit, range and source."""
    field: str
    label: str
    unit: str
    low: float
    high: float
    step: float
    decimals: int
    source: str


def _spins() -> tuple[Spin, ...]:
    lo, hi = icg.RIM_THICKNESS_RANGE_MM
    e = evidence
    return (
        Spin("rim_thickness_mm", "Rim thickness", "mm", lo, hi, 0.5, 1, e.ICG_RIM_THICKNESS_MM.source),
        Spin("tbr", "Tumour-to-background ratio", "", 1.1, 100.0, 0.5, 1, e.ICG_TBR.source),
        Spin("background", "Background (normal liver)", "", 0.0, 10.0, 0.1, 2,
             "Model convention, not a measurement: 1 = the emission of normal liver, the "
             "reference the tumour-to-background ratio is measured against."),
        Spin("mu_eff_per_mm", "Effective attenuation", "/mm", 0.01, 5.0, 0.05, 2,
             e.ICG_MU_EFF_PER_MM.source),
        Spin("detection_depth_mm", "Detection depth", "mm", e.ICG_RIM_THICKNESS_MM.value + 0.5,
             30.0, 0.5, 1, e.ICG_DETECTION_DEPTH_MM.source),
    )


SPINS = _spins()


@dataclass(frozen=True)
class IcgPrediction:
    """What Predict computed: the painted meshes for the 3-D view and the maps for the table."""
    surface_mesh: pv.PolyData
    surface: SurfaceMap
    remnant_mesh: pv.PolyData | None = None
    cut_mesh: pv.PolyData | None = None
    transection: TransectionMap | None = None

    def result(self) -> IcgResult:
        return IcgResult(self.surface, self.transection, (), default_view(self.surface_mesh))


def predict(case, params: IcgParameters, planfile=None, *, progress=None,
            cancel=None) -> IcgPrediction:
    """The surface map, and with a plan the transection map, as `liverplan plan --icg` does."""
    steps = Steps(progress, cancel)
    liver, tumors = case.label(LIVER), case.label(TUMORS)
    painted, surface = icg.surface_fluorescence(liver, tumors, params,
                                                progress=steps.sub(0.0, 0.4).report, cancel=cancel)
    if planfile is None:
        return IcgPrediction(painted, surface)
    ctx = PlanningContext.from_case(case, progress=steps.sub(0.4, 0.7).report, cancel=cancel)
    resected = resected_image(ctx, planfile.plan.resections)
    cut, transection = icg.transection_fluorescence(
        liver, tumors, resected, params, outcomes=planfile.plan.result.lesions,
        progress=steps.sub(0.7, 0.95).report, cancel=cancel)
    steps.report(0.95, "ICG: remnant surface")
    return IcgPrediction(painted, surface, remnant_surface(painted, resected), cut, transection)


def nir_image(prediction: IcgPrediction, *, progress=None, cancel=None) -> np.ndarray:
    """The simulated laparoscope NIR picture of the liver surface (H, W, 3 uint8)."""
    Steps(progress, cancel).report(0.0, "Rendering the simulated NIR view")
    return render_nir_view(prediction.surface_mesh, prediction.surface,
                           prediction.result().view)


def short_flag(row) -> str:
    """A few words for the table from the core's flag (the full text goes below the table)."""
    if not row.flag:
        return ""
    if row.margin_mm is None:
        return "left in place"
    return "likely false positive" if row.nir_positive else "close margin not visible"


def _cut_intensity(mesh: pv.PolyData) -> np.ndarray:
    """The transection seen from either side: the brighter of specimen face and cavity."""
    return np.maximum(np.asarray(mesh[icg.SPECIMEN_ARRAY]), np.asarray(mesh[icg.CAVITY_ARRAY]))


class NirDialog(QDialog):
    """The simulated NIR laparoscope picture, with a button to save it for the OR."""

    def __init__(self, window: "MainWindow", image: np.ndarray):
        super().__init__(window)
        self.window_ = window
        self.image = image
        self.setWindowTitle("Simulated NIR laparoscope view (expected ICG fluorescence)")
        h, w = image.shape[:2]
        qimage = QImage(image.tobytes(), w, h, 3 * w, QImage.Format_RGB888)
        self.picture = QLabel()
        self.picture.setPixmap(QPixmap.fromImage(qimage).scaledToWidth(
            min(w, 800), Qt.SmoothTransformation))
        self.save_button = QPushButton("Save for the OR…")
        self.save_button.setToolTip("Write this picture as a PNG file, e.g. for the OR screen")
        self.save_button.clicked.connect(self.save_dialog)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.picture)
        layout.addLayout(buttons)

    def save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the simulated NIR view",
                                              "icg_nir_view.png", "PNG images (*.png)")
        if path:
            self.save(Path(path))

    def save(self, path: Path) -> Path | None:
        def write(tmp: Path) -> None:
            Image.fromarray(self.image).save(tmp, format="PNG")
        return self.window_.save_picture(path, "simulated NIR view", write)


class IcgPanel(QWidget):
    def __init__(self, window: "MainWindow"):
        super().__init__()
        self.window = window
        self.task: Task | None = None
        self.nir_task: Task | None = None
        self.prediction: IcgPrediction | None = None
        self.dialog: NirDialog | None = None
        self._asked: tuple = (None, {}, None)    # case, its label images, plan name predicted
        self._liver_was_visible: bool | None = None   # while the ICG surface replaces the liver
        self.lesion_ids: list[int] = []
        self._nir_for: IcgPrediction | None = None

        self.status = WrappedLabel("Needs the liver and lesion masks.")
        self.plan_box = QComboBox()
        self.plan_box.setToolTip("The planned resection whose transection is predicted too; "
                                 "without one only the liver surface is predicted")
        self.plan_box.activated.connect(self._on_plan_chosen)
        self.spins: dict[str, QDoubleSpinBox] = {}
        form = QFormLayout()
        form.addRow("Plan", self.plan_box)
        for s in SPINS:
            spin = QDoubleSpinBox()
            spin.setRange(s.low, s.high)
            spin.setSingleStep(s.step)
            spin.setDecimals(s.decimals)
            spin.setSuffix(f" {s.unit}" if s.unit else "")
            spin.setValue(getattr(IcgParameters(), s.field))
            spin.setToolTip(f"{s.label}: {s.low:g}-{s.high:g} {s.unit}. Source: {s.source}")
            self.spins[s.field] = spin
            form.addRow(f"{s.label}" + (f" ({s.unit})" if s.unit else ""), spin)
        params_box = QGroupBox("Model parameters (hover for the source)")
        params_box.setLayout(form)
        defaults = QPushButton("Defaults")
        defaults.setToolTip("Reset every parameter to its published value or stated assumption")
        defaults.clicked.connect(self.reset_parameters)
        self.predict_button = QPushButton("Predict (Ctrl+I)")
        self.predict_button.setToolTip("Compute the expected fluorescence on the liver surface "
                                       "and, with a plan, on its transection")
        self.predict_button.clicked.connect(self.predict)
        self.show_action = QAction("Show ICG fluorescence in 3-D", window, checkable=True,
                                   iconText="Show ICG (G)")
        self.show_action.setShortcut(QKeySequence("G"))
        self.show_action.setToolTip("Show the expected fluorescence on the 3-D liver instead of "
                                    "the plain liver (G, for green)")
        self.show_action.toggled.connect(self.set_shown)
        self.show_action.setEnabled(False)
        window.addAction(self.show_action)
        predict_action = QAction("Predict ICG fluorescence", window)
        predict_action.setShortcut(QKeySequence("Ctrl+I"))
        predict_action.triggered.connect(self.predict)
        window.addAction(predict_action)
        show_button = QToolButton()
        show_button.setDefaultAction(self.show_action)
        buttons = QHBoxLayout()
        for b in (self.predict_button, show_button, defaults):
            buttons.addWidget(b)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for c, tip in enumerate(COLUMN_TIPS):
            self.table.horizontalHeaderItem(c).setToolTip(tip)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setMinimumHeight(150)
        self.threshold = WrappedLabel()
        self.notes = WrappedLabel()
        self.mimic = WrappedLabel("How far to trust a real NIR signal on the transection (MIMIC "
                                  "trial): " + " ".join(icg.mimic_statement()))
        self.mimic.setStyleSheet("color: #555; font-size: 11px;")
        self.nir_button = QPushButton("Simulated NIR view…")
        self.nir_button.setToolTip("The liver as the NIR laparoscope is expected to show it "
                                   "from the umbilical port, to save for the OR")
        self.nir_button.clicked.connect(self.show_nir_view)
        self.nir_button.setEnabled(False)

        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(params_box)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.threshold)
        layout.addWidget(self.notes)
        layout.addWidget(self.mimic)
        layout.addWidget(self.nir_button)
        window.caseChanged.connect(self._on_case_changed)
        window.caseEdited.connect(self._on_case_edited)
        self._case = None

    # --- inputs --------------------------------------------------------------------------------
    def parameters(self) -> IcgParameters:
        """The parameters set in the UI (PlanningError if a combination is invalid)."""
        patterns = tuple((lesion_id, box.currentText())
                         for lesion_id, box in zip(self.lesion_ids, self._pattern_boxes())
                         if box.currentText() != "rim")
        return IcgParameters(**{name: spin.value() for name, spin in self.spins.items()},
                             lesion_patterns=patterns)

    def set_parameters(self, params: IcgParameters) -> None:
        for name, spin in self.spins.items():
            spin.setValue(getattr(params, name))
        for lesion_id, box in zip(self.lesion_ids, self._pattern_boxes()):
            box.setCurrentText(params.pattern(lesion_id))

    def reset_parameters(self) -> None:
        self.set_parameters(IcgParameters())

    def _pattern_boxes(self) -> list[QComboBox]:
        return [self.table.cellWidget(r, 1) for r in range(self.table.rowCount())]

    def selected_plan(self):
        name = self.plan_box.currentData()
        case = self.window.case
        if name is None or case is None:
            return None
        return next((p for p in case.plans if p.plan.name == name), None)

    # --- case events ---------------------------------------------------------------------------
    def _on_case_changed(self, case) -> None:
        if case is not self._case:
            self._case = case
            self.clear_prediction("Press Predict to compute the expected fluorescence.")
            self._fill_lesions()
        self._fill_plans()

    def _on_case_edited(self, what: str) -> None:
        if what in (LIVER, TUMORS) and self.prediction is not None:
            self.clear_prediction("The masks changed: press Predict again.")
        if what == TUMORS:
            self._fill_lesions()

    def _fill_plans(self) -> None:
        current = self.plan_box.currentData()
        self.plan_box.blockSignals(True)
        self.plan_box.clear()
        self.plan_box.addItem(NO_PLAN, None)
        for pf in (self.window.case.plans if self.window.case is not None else []):
            self.plan_box.addItem(pf.plan.name, pf.plan.name)
        index = self.plan_box.findData(current)
        self.plan_box.setCurrentIndex(max(index, 0))
        self.plan_box.blockSignals(False)

    def _on_plan_chosen(self) -> None:
        """A plan with a stored prediction brings back the parameters it was made with."""
        planfile = self.selected_plan()
        if planfile is not None and planfile.icg is not None:
            self.set_parameters(planfile.icg.surface.parameters)
            self.status.setText(f"Parameters of the prediction stored in '{planfile.plan.name}'"
                                "; press Predict to show it.")

    def _fill_lesions(self) -> None:
        """One row per lesion of the lesion mask, with its pattern chooser."""
        case = self.window.case
        tumors = case.label(TUMORS) if case is not None else None
        ids = [] if tumors is None else [int(i) for i in np.unique(
            sitk.GetArrayViewFromImage(tumors)) if i]
        kept = {i: box.currentText() for i, box in zip(self.lesion_ids, self._pattern_boxes())}
        self.lesion_ids = ids
        self.table.setRowCount(len(ids))
        for r, lesion_id in enumerate(ids):
            self.table.setItem(r, 0, QTableWidgetItem(str(lesion_id)))
            box = QComboBox()
            box.addItems(icg.PATTERNS)
            box.setCurrentText(kept.get(lesion_id, "rim"))
            box.setToolTip(COLUMN_TIPS[1])
            self.table.setCellWidget(r, 1, box)
            for c in range(2, len(COLUMNS)):
                self.table.setItem(r, c, QTableWidgetItem(""))
        self.table.resizeColumnsToContents()

    # --- prediction ----------------------------------------------------------------------------
    def predict(self) -> Task | None:
        case = self.window.case
        if case is None or case.label(LIVER) is None or case.label(TUMORS) is None:
            self.window.show_error("The ICG prediction needs the liver and lesion masks; "
                                   "segment them first (Segment step).")
            return None
        try:
            params = self.parameters()
        except PlanningError as exc:
            self.window.show_error(str(exc))
            return None
        if self.task is not None and self.task.running:
            self.task.cancel()
        planfile = self.selected_plan()
        self._asked = (case, dict(case.labels), planfile.plan.name if planfile else None)
        self.task = Task("ICG prediction", predict, case, params, planfile)
        self.status.setText("Predicting…")
        return self.window.run_task(self.task, self._on_predicted)

    def _on_predicted(self, prediction: IcgPrediction) -> None:
        case, labels, plan_name = self._asked
        if case is not self.window.case or any(case.labels.get(k) is not v
                                               for k, v in labels.items()):
            return                      # another case or other masks by now: stale
        self.prediction = prediction
        self._show_table(prediction)
        self.show_action.setEnabled(True)
        self.nir_button.setEnabled(True)
        if self.show_action.isChecked():
            self._show_meshes()
        else:
            self.show_action.setChecked(True)
        where = f"the liver surface and the transection of '{plan_name}'" if plan_name else \
            "the liver surface"
        self.status.setText(f"Expected fluorescence on {where} (a model prediction, not a "
                            "measurement).")
        for warning in prediction.surface.warnings:
            self.window.log("warning", warning)
        if plan_name is not None:
            self._store(case, plan_name, prediction.result())

    def _store(self, case, plan_name: str, result: IcgResult) -> None:
        """Keep the prediction in its plan, so it is saved with the case and exported."""
        planfile = next((p for p in case.plans if p.plan.name == plan_name), None)
        if planfile is None:
            return
        case.put_plan(replace(planfile, icg=result))
        self.window.log("info", f"ICG prediction stored in plan '{plan_name}'.")

    def _show_table(self, prediction: IcgPrediction) -> None:
        surface = {r.lesion_id: r for r in prediction.surface.lesions}
        cut = {r.lesion_id: r for r in (prediction.transection.lesions
                                        if prediction.transection else ())}
        notes = []
        for r, lesion_id in enumerate(self.lesion_ids):
            s, t = surface.get(lesion_id), cut.get(lesion_id)
            cells = [f"{s.depth_mm:.1f}" if s else "", ("yes" if s.visible else "no") if s else "",
                     f"{s.peak_intensity:.2f}" if s else ""]
            if t is not None:
                cells += ["—" if t.margin_mm is None else f"{t.margin_mm:.1f}",
                          "NIR+" if t.nir_positive else "NIR−", short_flag(t)]
                if t.flag:
                    notes.append(f"Lesion {lesion_id}: {t.flag}")
            else:
                cells += ["", "", ""]
            for c, text in enumerate(cells, start=2):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignCenter if c < 7 else Qt.AlignLeft | Qt.AlignVCenter)
                if text in ("yes", "NIR+"):
                    item.setForeground(_GREEN)
                elif text in ("no", "NIR−"):
                    item.setForeground(_GREY)
                elif c == 7 and text:
                    item.setForeground(_AMBER)
                    item.setToolTip(t.flag)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        p = prediction.surface.parameters
        visible = sum(r.visible for r in prediction.surface.lesions)
        self.threshold.setText(
            f"{visible} of {len(prediction.surface.lesions)} lesions expected visible on the "
            f"surface. Visible from intensity {prediction.surface.threshold:.2f} (a standard rim "
            f"{p.detection_depth_mm:g} mm deep).")
        self.notes.setText("\n".join(notes))

    # --- 3-D -----------------------------------------------------------------------------------
    def set_shown(self, on: bool) -> None:
        if on and self.prediction is not None:
            self._show_meshes()
        else:
            self._hide_meshes()

    def _style(self, intensity: np.ndarray, surface_map) -> dict:
        colors = overlay_colors(intensity, surface_map.threshold,
                                surface_map.parameters.threshold_contrast)
        return dict(scalars=colors, rgb=True, smooth_shading=True, show_scalar_bar=False)

    def _show_meshes(self) -> None:
        p, view = self.prediction, self.window.view3d
        if self._liver_was_visible is None:
            self._liver_was_visible = bool(self.window.state.visible.get("liver"))
            self.window.state.set_visible("liver", False)
        if p.transection is None:
            view.remove_mesh(REMNANT_KEY)
            view.remove_mesh(CUT_KEY)
            view.show_mesh(SURFACE_KEY, p.surface_mesh,
                           **self._style(np.asarray(p.surface_mesh[icg.SURFACE_ARRAY]), p.surface))
            return
        # With a plan: the liver after the transection, the remnant's capsule and the cut face.
        view.remove_mesh(SURFACE_KEY)
        view.show_mesh(CUT_KEY, p.cut_mesh, **self._style(_cut_intensity(p.cut_mesh),
                                                          p.transection))
        if p.remnant_mesh.n_points:
            view.show_mesh(REMNANT_KEY, p.remnant_mesh, **self._style(
                np.asarray(p.remnant_mesh[icg.SURFACE_ARRAY]), p.surface))

    def _hide_meshes(self) -> None:
        for key in (SURFACE_KEY, REMNANT_KEY, CUT_KEY):
            self.window.view3d.remove_mesh(key)
        if self._liver_was_visible is not None:
            self.window.state.set_visible("liver", self._liver_was_visible)
            self._liver_was_visible = None

    def clear_prediction(self, message: str) -> None:
        self.prediction = None
        self._hide_meshes()
        self.show_action.setChecked(False)
        self.show_action.setEnabled(False)
        self.nir_button.setEnabled(False)
        self.threshold.clear()
        self.notes.clear()
        for r in range(self.table.rowCount()):
            for c in range(2, len(COLUMNS)):
                self.table.setItem(r, c, QTableWidgetItem(""))
        self.status.setText(message)

    # --- simulated NIR view --------------------------------------------------------------------
    def show_nir_view(self) -> Task | None:
        if self.prediction is None:
            return None
        self._nir_for = self.prediction
        self.nir_task = Task("Simulated NIR view", nir_image, self.prediction)
        return self.window.run_task(self.nir_task, self._on_nir)

    def _on_nir(self, image: np.ndarray) -> None:
        if self._nir_for is not self.prediction:
            return
        if self.dialog is not None:
            self.dialog.close()
        self.dialog = NirDialog(self.window, image)
        self.dialog.show()


STEP = Step(ICG, "icg", "ICG fluorescence",
            IcgPanel, lambda case: case is not None and LIVER in case.labels
            and TUMORS in case.labels)
