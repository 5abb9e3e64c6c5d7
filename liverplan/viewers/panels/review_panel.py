"""Review & correct step: hand corrections of the segmentation, made in the slice views.

One tool at a time (each with a key): include / exclude seed, brush and eraser (liver or
lesions), click to add or remove a lesion, vessel branches to the portal or hepatic system (a
click beside the segmented vessels adds the vessel under it) or removed, the segment
landmarks dragged in the views and portal branches assigned to a segment, then "Recompute
segments". Every edit calls the core API (liverplan.volumetry edit / lesions / vessels /
segments), becomes the case's label image (views, 3-D and volumetry follow) and goes into one
undo/redo history (liverplan.viewers.history).
Seeds, brush and the lesion list edits are local and fast; the others run as Tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDoubleSpinBox, QFormLayout,
                               QGridLayout, QGroupBox, QHBoxLayout, QListWidget,
                               QListWidgetItem, QPushButton, QSizePolicy, QToolButton,
                               QVBoxLayout, QWidget)

from liverplan.case import LABEL_NAMES, LIVER, SEGMENTS, TUMORS, VESSELS
from liverplan.errors import SegmentationError
from liverplan.geometry import blank_image, index_to_lps, lps_to_index, voxel_volume_ml
from liverplan.progress import Steps
from liverplan.viewers.history import History, LabelChange, ValueChange, apply_change, label_change
from liverplan.viewers.panels.step import REVIEW, Step, has_case
from liverplan.viewers.slice_view import CLICK, DRAG, STROKE, Marker
from liverplan.viewers.widgets import WrappedLabel
from liverplan.viewers.workers import Task
from liverplan.volumetry.edit import MaskEditor, Stroke
from liverplan.volumetry.lesions import (delete_lesion, merge_lesions, no_lesions,
                                         segment_lesion_at, split_lesion)
from liverplan.volumetry.segments import (LANDMARK_PLANES, LANDMARK_NAMES, Landmarks,
                                          SegmentEdits, assignments_at, automatic_landmarks,
                                          couinaud_segments, typical_landmarks)
from liverplan.volumetry.vessels import (HEPATIC, PORTAL, SYSTEM_NAMES, VesselResult,
                                         add_branch, analyse_vessels, assign_branch,
                                         remove_branch)

if TYPE_CHECKING:
    from liverplan.viewers.main_window import MainWindow


@dataclass(frozen=True)
class Tool:
    key: str
    title: str
    shortcut: str
    kind: str          # slice_view CLICK, STROKE or DRAG
    needs: str | None  # the label image it works on (None: it can start one, e.g. a liver
                       # drawn by hand when both segmentation modes fail)
    tip: str


TOOLS = (
    Tool("include", "Include seed", "I", CLICK, None, "Click liver tissue the mask misses: the "
         "similar tissue connected to the click (within 15 mm) is added."),
    Tool("exclude", "Exclude seed", "X", CLICK, LIVER, "Click tissue wrongly in the liver mask: "
         "the similar tissue connected to the click (within 15 mm) is removed."),
    Tool("brush", "Brush", "B", STROKE, None, "Paint the chosen structure (liver or lesions) "
         "in the slice; the circle shows the brush size."),
    Tool("eraser", "Eraser", "E", STROKE, LIVER, "Erase the chosen structure (liver or lesions) "
         "in the slice."),
    Tool("add_lesion", "Add lesion", "L", CLICK, LIVER, "Click the centre of a lesion that was "
         "missed, darker or brighter than the liver: it is delineated in 3-D and added."),
    Tool("remove_lesion", "Remove lesion", "Shift+L", CLICK, TUMORS, "Click a lesion that is not "
         "one (e.g. a cyst or a vessel): it is removed."),
    Tool("portal", "Vessel: portal", "P", CLICK, VESSELS, "Click a vessel: it and the branches it "
         "feeds become portal; a vessel not yet segmented is added."),
    Tool("hepatic", "Vessel: hepatic", "H", CLICK, VESSELS, "Click a vessel: it and its branches "
         "become hepatic vein / IVC; a vessel not yet segmented is added."),
    Tool("remove_vessel", "Remove vessel branch", "Shift+V", CLICK, VESSELS, "Click a wrong "
         "vessel branch (a leak): it and everything it feeds are removed."),
    Tool("landmark", "Move landmark", "K", DRAG, LIVER, "Drag a segment landmark (or click to "
         "place the selected one), then press Recompute segments."),
    Tool("branch_segment", "Branch → segment", "S", CLICK, VESSELS, "Click a portal branch: it "
         "and the branches it feeds supply the segment chosen under Couinaud segments; then "
         "press Recompute segments."),
)
BY_KEY = {t.key: t for t in TOOLS}

# Landmarks field -> (title, short marker text, colour)
LANDMARKS = {
    "portal_bifurcation_lps_mm": ("Portal bifurcation", "PV", (60, 110, 255)),
    "ivc_lps_mm": ("IVC (hepatic vein confluence)", "IVC", (120, 220, 255)),
    "right_hepatic_vein_lps_mm": ("Right hepatic vein", "RHV", (255, 150, 40)),
    "middle_hepatic_vein_lps_mm": ("Middle hepatic vein", "MHV", (255, 90, 200)),
    "left_hepatic_vein_lps_mm": ("Left hepatic vein", "LHV", (175, 120, 255)),
    "umbilical_fissure_lps_mm": ("Umbilical fissure", "UF", (90, 230, 90)),
}


def landmark_name(key: str) -> str:
    """A landmark's title within a sentence ("portal bifurcation", "IVC (...)")."""
    title = LANDMARKS[key][0]
    return title if title.split()[0].isupper() else title.lower()


METHODS = (("Automatic (portal territories)", None), ("Landmark planes", LANDMARK_PLANES))
BRUSH_RADIUS_MM = (1.0, 50.0, 5.0)      # range and default
CLICK_REACH_MM = 2.0     # a Branch → segment click this close to a portal vessel is on it (thin
                         # branches are a few pixels wide)


# --- the slow edits, run as Tasks (Qt-free) ----------------------------------------------------
def vessel_tree(vessels: sitk.Image, liver: sitk.Image, known: VesselResult | None,
                steps: Steps) -> VesselResult:
    """The branch trees of the case's vessel image (`known` if it was made from that image)."""
    if known is not None and known.vessels is vessels:
        return known
    steps.report(0.0, "Reading the vessel trees")
    return analyse_vessels(vessels, liver)


def edit_vessels(action: str, ct: sitk.Image, liver: sitk.Image, vessels: sitk.Image,
                 known: VesselResult | None, point_lps, system: int | None = None, *,
                 progress=None, cancel=None) -> VesselResult:
    """action "add" (the vessel under the click), "assign" (the clicked branch and its subtree
    to `system`) or "remove"."""
    steps = Steps(progress, cancel)
    result = vessel_tree(vessels, liver, known, steps)
    steps.report(0.5, "Correcting the vessels")
    if action == "add":
        return add_branch(result, ct, liver, point_lps, system)
    if action == "assign":
        return assign_branch(result, liver, point_lps, system)
    return remove_branch(result, liver, point_lps)


def find_landmarks(liver: sitk.Image, vessels: sitk.Image, known: VesselResult | None, *,
                   progress=None, cancel=None):
    """(vessel trees, automatic landmarks or None, warnings)."""
    steps = Steps(progress, cancel)
    result = vessel_tree(vessels, liver, known, steps)
    warnings: list[str] = []
    landmarks = automatic_landmarks(result, warnings)
    steps.report(1.0, "Landmarks found")
    return result, landmarks, warnings


def recompute_segments(liver: sitk.Image, vessels: sitk.Image | None, tumors: sitk.Image | None,
                       known: VesselResult | None, edits: SegmentEdits, method: str | None, *,
                       progress=None, cancel=None):
    """(SegmentsResult, the vessel trees used or None, the names of the landmarks used where
    they started, at their typical places), with the user's corrections: the landmarks moved by
    hand (the others are read again from the trees, which may have been corrected since) and the
    Branch → segment clicks."""
    steps = Steps(progress, cancel)
    tree = vessel_tree(vessels, liver, known, steps.sub(0.0, 0.5)) if vessels is not None \
        else None
    assignments, warnings = (assignments_at(tree, edits.branch_points) if tree is not None
                             else ({}, []))
    automatic = automatic_landmarks(tree, []) if tree is not None else None
    landmarks = edits.landmarks_over(automatic)
    result = couinaud_segments(liver, tree, tumors=tumors, landmarks=landmarks,
                               assignments=assignments, method=method,
                               progress=steps.sub(0.5, 1.0).report, cancel=cancel)
    # without landmarks from the trees they started at their typical places
    # (`typical_landmarks`): said until each is placed
    unplaced = [landmark_name(k) for k in LANDMARK_NAMES if k not in edits.moved] \
        if automatic is None and result.uses_landmarks else []
    if unplaced:
        warnings.append(f"Landmarks left at their typical places, not placed on this patient: "
                        f"{', '.join(unplaced)}; the segments follow them only roughly.")
    result.warnings[:0] = warnings
    return result, tree, unplaced


def add_lesion(ct: sitk.Image, liver: sitk.Image, tumors: sitk.Image, point_lps, *,
               progress=None, cancel=None) -> sitk.Image:
    Steps(progress, cancel).report(0.0, "Delineating the lesion")
    return segment_lesion_at(ct, liver, tumors, point_lps)


def value_at(label: sitk.Image | None, point_lps) -> int:
    """The label value at the voxel nearest to an LPS point (0 outside the image)."""
    values = values_near(label, point_lps, 0.0) if label is not None else set()
    return values.pop() if values else 0


def values_near(label: sitk.Image, point_lps, reach_mm: float) -> set[int]:
    """The label values within `reach_mm` of an LPS point along each axis (none outside the
    image)."""
    a = sitk.GetArrayViewFromImage(label)
    zyx = np.round(lps_to_index(label, point_lps)[0]).astype(int)
    reach = np.ceil(reach_mm / np.asarray(label.GetSpacing()[::-1])).astype(int)
    box = tuple(slice(max(0, c - r), max(0, c + r + 1)) for c, r in zip(zyx, reach))
    return set(np.unique(a[box]).tolist())


def lesion_table(tumors: sitk.Image) -> list[tuple[int, float, np.ndarray]]:
    """(id, volume in mL, centre in LPS mm) of each lesion of an instance map."""
    a = sitk.GetArrayViewFromImage(tumors)
    out = []
    for lesion_id, box in enumerate(ndi.find_objects(a), 1):
        if box is None:
            continue
        zyx = np.argwhere(a[box] == lesion_id)
        centre = index_to_lps(tumors, zyx.mean(axis=0) + [b.start for b in box])[0]
        out.append((lesion_id, len(zyx) * voxel_volume_ml(tumors), centre))
    return out


# --- the panel ---------------------------------------------------------------------------------
class ReviewPanel(QWidget):
    def __init__(self, window: "MainWindow"):
        super().__init__()
        self.window = window
        self.history = History()
        self.active: Tool | None = None
        self.task: Task | None = None
        self._case = None
        self._known: dict[str, sitk.Image | None] = {}   # the label images this panel last set
        self._editors: dict[str, tuple[MaskEditor, sitk.Image]] = {}
        self._vessels: VesselResult | None = None         # trees of the case's vessel image
        self._pending: tuple = (None, {}, "")             # case, inputs, description of a Task
        self._edits_before: SegmentEdits | None = None

        self.tool_group = QActionGroup(self)
        self.tool_group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        self.tool_actions: dict[str, QAction] = {}
        self.tool_buttons: dict[str, QToolButton] = {}
        tools = QGridLayout()
        for n, tool in enumerate(TOOLS):
            action = self._window_action(tool.title, None, tool.shortcut, checkable=True,
                                         tip=tool.tip)
            action.setData(tool.key)
            self.tool_group.addAction(action)
            button = QToolButton()
            button.setDefaultAction(action)
            button.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
            tools.addWidget(button, n // 2, n % 2)
            self.tool_actions[tool.key], self.tool_buttons[tool.key] = action, button
        self.tool_group.triggered.connect(self._on_tool_triggered)
        self.no_tool = self._window_action("No tool", self.clear_tool, "Esc",
                                           tip="Back to moving the crosshair with the mouse.")

        self.radius = QDoubleSpinBox()
        self.radius.setRange(*BRUSH_RADIUS_MM[:2])
        self.radius.setValue(BRUSH_RADIUS_MM[2])
        self.radius.setSuffix(" mm")
        self.radius.setToolTip("Brush and eraser radius in mm ([ smaller, ] larger)")
        self.radius.valueChanged.connect(self._on_radius)
        self._window_action("Smaller brush", self._smaller_brush, "[")
        self._window_action("Larger brush", self._larger_brush, "]")
        self.target = QComboBox()
        self.target.addItem("Liver", LIVER)
        self.target.addItem("Lesions", TUMORS)
        self.target.setToolTip("What the brush and eraser change. Lesions: the brush paints the "
                               "lesion selected in the list, or a new lesion if none is.")

        self.undo_action = self._window_action("Undo", self.undo, QKeySequence.Undo)
        self.redo_action = self._window_action("Redo", self.redo, "Ctrl+Shift+Z")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        undo_button, redo_button = QToolButton(), QToolButton()
        undo_button.setDefaultAction(self.undo_action)
        redo_button.setDefaultAction(self.redo_action)

        self.lesion_list = QListWidget()
        self.lesion_list.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.lesion_list.setToolTip("Click a lesion to show it; select one to delete or split "
                                    "it, several to merge them.")
        self.lesion_list.itemClicked.connect(self._go_to_lesion)
        self.lesion_list.itemSelectionChanged.connect(self._update_lesion_buttons)
        delete = QShortcut(QKeySequence.Delete, self.lesion_list)
        delete.setContext(Qt.WidgetShortcut)
        delete.activated.connect(self.delete_lesion)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Remove the selected lesion (Del)")
        self.delete_button.clicked.connect(self.delete_lesion)
        self.merge_button = QPushButton("Merge")
        self.merge_button.setToolTip("One lesion from the selected ones (a confluent lesion "
                                     "found in pieces)")
        self.merge_button.clicked.connect(self.merge_lesions)
        self.split_button = QPushButton("Split")
        self.split_button.setToolTip("Two lesions from the selected one, cut where it narrows")
        self.split_button.clicked.connect(self.split_lesion)

        self.landmark = QComboBox()
        for key, (title, short, _) in LANDMARKS.items():
            self.landmark.addItem(f"{title} ({short})", key)
        self.landmark.setToolTip("The landmark a click or drag places (with Move landmark)")
        self.landmark.currentIndexChanged.connect(self._show_markers)
        self.branch_segment = QComboBox()
        for n in range(1, 9):
            self.branch_segment.addItem(f"Segment {n}" + (" (caudate)" if n == 1 else ""), n)
        self.branch_segment.addItem("No segment (not a seed)", 0)
        self.branch_segment.setToolTip("The segment a portal branch clicked with Branch → "
                                       "segment supplies")
        self.method = QComboBox()
        for title, method in METHODS:
            self.method.addItem(title, method)
        self.method.setToolTip("Portal territories follow the portal branches (landmark planes "
                               "where the tree is incomplete); landmark planes use only the "
                               "landmarks. Moving a landmark selects landmark planes.")
        self.recompute_button = QPushButton("Recompute segments")
        self.recompute_button.setToolTip("Couinaud segments 1-8 again from the corrected liver, "
                                         "vessels and landmarks")
        self.recompute_button.clicked.connect(self.recompute)

        self.status = WrappedLabel("Choose a tool, then click or paint in a slice view. "
                                   "Shift+drag or the middle button pans, the right button sets "
                                   "the grey window.")
        self._build_layout(tools, undo_button, redo_button)
        window.caseChanged.connect(self._on_case_changed)
        window.caseEdited.connect(self._on_case_edited)
        for view in window.views.values():
            view.toolPressed.connect(self._on_press)
            view.toolDragged.connect(self._on_drag)
            view.toolReleased.connect(self._on_release)
            view.stroked.connect(self._on_stroke)
            view.markerPicked.connect(self._on_marker_picked)
        self._on_case_changed(window.case)

    def _window_action(self, text, slot, shortcut, *, checkable=False, tip="") -> QAction:
        """An action of the main window, so its key works wherever the focus is."""
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        action.setToolTip(f"{tip} ({action.shortcut().toString()})" if tip else
                          f"{text} ({action.shortcut().toString()})")
        if slot is not None:
            action.triggered.connect(slot)
        self.window.addAction(action)
        return action

    def _build_layout(self, tools, undo_button, redo_button) -> None:
        layout = QVBoxLayout(self)
        box = QGroupBox("Tools (Esc: none)")
        box.setLayout(tools)
        layout.addWidget(box)
        brush = QFormLayout()
        brush.addRow("Brush radius", self.radius)
        brush.addRow("Brush paints", self.target)
        row = QHBoxLayout()
        row.addWidget(undo_button)
        row.addWidget(redo_button)
        row.addStretch(1)
        brush.addRow("History", row)
        layout.addLayout(brush)
        box = QGroupBox("Lesions")
        lesions = QVBoxLayout(box)
        lesions.addWidget(self.lesion_list)
        row = QHBoxLayout()
        for button in (self.delete_button, self.merge_button, self.split_button):
            row.addWidget(button)
        lesions.addLayout(row)
        layout.addWidget(box)
        box = QGroupBox("Couinaud segments")
        segments = QFormLayout(box)
        segments.addRow("Landmark", self.landmark)
        segments.addRow("Branch feeds", self.branch_segment)
        segments.addRow("Method", self.method)
        segments.addRow(self.recompute_button)
        layout.addWidget(box)
        layout.addWidget(self.status)
        layout.addStretch(1)

    # --- the case ------------------------------------------------------------------------------
    def _on_case_changed(self, case) -> None:
        if case is not self._case:            # another case: nothing carries over
            self._case = case
            self.history.clear()
            self._editors.clear()
            self._vessels = None
            self._known = dict(case.labels) if case is not None else {}
            self._show_markers()
            self._refresh_lesions()
        for tool in TOOLS:
            self.tool_actions[tool.key].setEnabled(case is not None and (
                tool.needs is None or tool.needs in case.labels))
        if self.active is not None and not self.tool_actions[self.active.key].isEnabled():
            self.clear_tool()
        self._update_recompute()
        self._update_undo()

    def _update_recompute(self) -> None:
        case = self.window.case
        self.recompute_button.setEnabled(case is not None and LIVER in case.labels and (
            VESSELS in case.labels or self.landmarks is not None))

    def _on_case_edited(self, what: str) -> None:
        case = self.window.case
        if what not in LABEL_NAMES or case is None:
            return
        if case.labels.get(what) is not self._known.get(what):
            # replaced elsewhere (e.g. a new automatic segmentation): the history's boxes no
            # longer fit it
            self._known[what] = case.labels.get(what)
            if self.history.can_undo or self.history.can_redo:
                self.history.clear()
                self.window.log("info", f"Review: the {what} mask was replaced outside this "
                                        "step, so the undo history was cleared.")
            if what == VESSELS:
                self._set_edits(landmarks=None, branch_points=(), moved=())
        if what == TUMORS:
            self._refresh_lesions()

    def _put_label(self, name: str, image: sitk.Image | None) -> None:
        case = self.window.case
        self._known[name] = image
        if image is None:
            case.labels.pop(name, None)      # a label an edit had created goes again
            case.changed(name)
        else:
            case.set_label(name, image)

    def _commit(self, description: str, labels: dict, boxes: dict | None = None,
                values: dict | None = None) -> bool:
        """Record and apply an edit: `labels` maps label names to their new images, `values`
        keys of `_value` to their new values."""
        case = self.window.case
        changes = [label_change(name, case.labels.get(name), image, (boxes or {}).get(name))
                   for name, image in labels.items()]
        changes += [ValueChange(key, self._value(key), value)
                    for key, value in (values or {}).items() if value != self._value(key)]
        entry = self.history.record(description, changes)
        if entry is None:
            self.status.setText(f"{description}: nothing changed at this point.")
            return False
        self.status.setText(f"{description}{_volume_change(entry, case.image)}.")
        for change in entry.changes:
            if isinstance(change, LabelChange):
                self._put_label(change.name, labels[change.name])
            else:
                self._set_value(change.key, change.after)
        self._update_undo()
        return True

    def _value(self, key: str):
        """A value the history keeps: the segments' method, or a segment correction."""
        return self.window.case.segments_method if key == "segments_method" \
            else getattr(self.edits, key)

    def _set_value(self, key: str, value) -> None:
        if key == "segments_method":
            self.window.case.segments_method = value
        else:
            self._set_edits(**{key: value})

    # --- undo / redo ---------------------------------------------------------------------------
    def undo(self) -> None:
        self._step_history(undo=True)

    def redo(self) -> None:
        self._step_history(undo=False)

    def _step_history(self, *, undo: bool) -> None:
        if self._busy():
            return
        entry = self.history.undo() if undo else self.history.redo()
        if entry is None:
            return
        case = self.window.case
        for change in (reversed(entry.changes) if undo else entry.changes):
            if isinstance(change, LabelChange):
                self._put_label(change.name, apply_change(case.labels.get(change.name), change,
                                                          undo=undo, reference=case.image))
            else:
                self._set_value(change.key, change.before if undo else change.after)
        self.status.setText(f"{'Undone' if undo else 'Redone'}: {entry.description}.")
        self._update_undo()

    def _update_undo(self) -> None:
        for action, can, text, what in ((self.undo_action, self.history.can_undo, "Undo",
                                         self.history.next_undo),
                                        (self.redo_action, self.history.can_redo, "Redo",
                                         self.history.next_redo)):
            action.setEnabled(can)
            action.setToolTip(f"{text} {what.lower()} ({action.shortcut().toString()})" if can
                              else f"Nothing to {text.lower()}")

    # --- tools ---------------------------------------------------------------------------------
    def _on_tool_triggered(self, action: QAction) -> None:
        self.set_tool(action.data() if action.isChecked() else None)

    def set_tool(self, key: str | None) -> None:
        self.active = BY_KEY[key] if key else None
        if self.active is not None:
            self.tool_actions[key].setChecked(True)
            self.window.steps.show_step("review")
            self.status.setText(self.active.tip)
        else:
            checked = self.tool_group.checkedAction()
            if checked is not None:
                checked.setChecked(False)
        for view in self.window.views.values():
            view.set_tool(self.active.kind if self.active else None, self.radius.value())
        if key == "landmark" and self.landmarks is None:
            self._start_landmarks()
        self._show_markers()

    def clear_tool(self) -> None:
        self.set_tool(None)

    def hideEvent(self, event) -> None:
        # another step is shown: clicks in the views move the crosshair again
        if self.active is not None:
            self.clear_tool()
        super().hideEvent(event)

    def _on_radius(self, value: float) -> None:
        for view in self.window.views.values():
            view.brush_radius_mm = value
            view.update()

    def _smaller_brush(self) -> None:
        self.radius.setValue(self.radius.value() - 1.0)

    def _larger_brush(self) -> None:
        self.radius.setValue(self.radius.value() + 1.0)

    def _busy(self) -> bool:
        if self.task is not None and self.task.running:
            self.status.setText(f"Wait until “{self.task.title}” has finished.")
            return True
        return False

    def _on_press(self, point, plane: str) -> None:
        tool = self.active
        if tool is None or self.window.case is None:
            return
        if tool.key == "landmark":
            self._edits_before = self.edits
            self._place_landmark(point)
        elif self._busy():
            return
        elif tool.key in ("include", "exclude"):
            editor = self._editor(LIVER)
            seed = editor.include_seed if tool.key == "include" else editor.exclude_seed
            self._commit_editor(LIVER, editor, seed(point), tool.title)
        elif tool.key == "add_lesion":
            self._add_lesion(point)
        elif tool.key == "branch_segment":
            self._assign_segment(point)
        elif tool.key == "remove_lesion":
            lesion_id = value_at(self.window.case.labels.get(TUMORS), point)
            if not lesion_id:
                self.status.setText("No lesion under the click: click inside the lesion.")
                return
            self._lesion_edit(f"Remove lesion {lesion_id}", delete_lesion, lesion_id)
        else:
            self._vessel_click(tool, point)

    def _on_stroke(self, points, plane: str) -> None:
        tool = self.active
        if tool is None or tool.kind != STROKE or self.window.case is None or self._busy():
            return
        name = self.target.currentData()
        editor = self._editor(name)
        value = 0
        if tool.key == "brush":
            value = 1 if name == LIVER else self._brush_lesion_id(editor)
        stroke = Stroke(np.asarray(points, float), self.radius.value(), plane)
        what = "liver" if name == LIVER else (f"lesion {value}" if value else "lesions")
        self._commit_editor(name, editor, editor.paint(stroke, value), f"{tool.title} ({what})")

    def _editor(self, name: str) -> MaskEditor:
        """A MaskEditor on the case's current `name` image (made again if it changed)."""
        case = self.window.case
        image = case.labels.get(name)
        cached = self._editors.get(name)
        if cached is None or cached[1] is not image:
            # none yet: the first lesion, or a liver drawn from nothing
            base = image if image is not None else (
                no_lesions(case.image) if name == TUMORS else blank_image(case.image))
            cached = (MaskEditor(case.image, base, history=1), image)
            self._editors[name] = cached
        return cached[0]

    def _commit_editor(self, name: str, editor: MaskEditor, box, description: str) -> None:
        if box is None:
            self.status.setText(f"{description}: nothing changed at this point.")
            return
        image = editor.mask
        self._editors[name] = (editor, image)
        self._commit(description, {name: image}, {name: box})

    def _brush_lesion_id(self, editor: MaskEditor) -> int:
        """The lesion selected in the list, or a new lesion's id."""
        selected = self._selected_lesions()
        return selected[0] if len(selected) == 1 else int(editor.array.max()) + 1

    # --- slow edits ----------------------------------------------------------------------------
    def _start(self, task: Task, on_result, inputs: dict, description: str) -> Task:
        self.task = task
        self._pending = (self.window.case, inputs, description)
        self.status.setText(f"{description}…")
        return self.window.run_task(task, on_result)

    def _still_current(self) -> bool:
        case, inputs, description = self._pending
        if case is not self.window.case or any(case.labels.get(name) is not image
                                               for name, image in inputs.items()):
            self.window.log("info", f"{description}: not applied, the case changed meanwhile.")
            return False
        return True

    def _add_lesion(self, point) -> Task:
        case = self.window.case
        liver, tumors = case.labels[LIVER], case.labels.get(TUMORS)
        task = Task("Adding a lesion", add_lesion, case.image, liver,
                    tumors if tumors is not None else no_lesions(case.image), point)
        return self._start(task, self._on_labels_result, {LIVER: liver, TUMORS: tumors},
                           "Add lesion")

    def _on_labels_result(self, tumors: sitk.Image) -> None:
        if self._still_current():
            self._commit(self._pending[2], {TUMORS: tumors})

    def _vessel_click(self, tool: Tool, point) -> Task | None:
        case = self.window.case
        system = {"portal": PORTAL, "hepatic": HEPATIC}.get(tool.key)
        under = value_at(case.labels[VESSELS], point)
        if system is None:
            action, description = "remove", "Remove vessel branch"
        elif under == system:
            self.status.setText(f"This vessel is already in the {SYSTEM_NAMES[system]}.")
            return None
        elif under:
            action, description = "assign", f"Vessel branch to the {SYSTEM_NAMES[system]}"
        else:
            action, description = "add", f"Add a vessel to the {SYSTEM_NAMES[system]}"
        liver, vessels = case.labels[LIVER], case.labels[VESSELS]
        task = Task("Correcting the vessels", edit_vessels, action, case.image, liver, vessels,
                    self._vessels, point, system)
        return self._start(task, self._on_vessels_result, {LIVER: liver, VESSELS: vessels},
                           description)

    def _on_vessels_result(self, result: VesselResult) -> None:
        if self._still_current():
            self._vessels = result
            self._commit(self._pending[2], {VESSELS: result.vessels})

    # --- lesion list ---------------------------------------------------------------------------
    def _refresh_lesions(self) -> None:
        self.lesion_list.clear()
        case = self.window.case
        tumors = case.labels.get(TUMORS) if case is not None else None
        for lesion_id, volume_ml, centre in (lesion_table(tumors) if tumors is not None else []):
            item = QListWidgetItem(f"Lesion {lesion_id}    {volume_ml:.1f} mL")
            item.setData(Qt.UserRole, (lesion_id, centre))
            self.lesion_list.addItem(item)
        self._update_lesion_buttons()

    def _selected_lesions(self) -> list[int]:
        return sorted(item.data(Qt.UserRole)[0] for item in self.lesion_list.selectedItems())

    def _update_lesion_buttons(self) -> None:
        n = len(self.lesion_list.selectedItems())
        self.delete_button.setEnabled(n == 1)
        self.split_button.setEnabled(n == 1)
        self.merge_button.setEnabled(n >= 2)

    def _go_to_lesion(self, item: QListWidgetItem) -> None:
        self.window.state.set_cursor(np.asarray(item.data(Qt.UserRole)[1], float))

    def delete_lesion(self) -> None:
        selected = self._selected_lesions()
        if len(selected) == 1:
            self._lesion_edit(f"Delete lesion {selected[0]}", delete_lesion, selected[0])

    def merge_lesions(self) -> None:
        selected = self._selected_lesions()
        if len(selected) >= 2:
            self._lesion_edit(f"Merge lesions {', '.join(map(str, selected))}", merge_lesions,
                              selected)

    def split_lesion(self) -> None:
        selected = self._selected_lesions()
        if len(selected) == 1:
            self._lesion_edit(f"Split lesion {selected[0]}", split_lesion, selected[0])

    def _lesion_edit(self, description: str, fn, argument) -> None:
        """Delete / merge / split: whole-map operations that take a fraction of a second."""
        if self._busy():
            return
        try:
            tumors = fn(self.window.case.labels[TUMORS], argument)
        except SegmentationError as exc:
            self.window.show_error(f"{description}: {exc}")
            return
        self._commit(description, {TUMORS: tumors})

    # --- landmarks and segments ----------------------------------------------------------------
    def _start_landmarks(self) -> Task | None:
        case = self.window.case
        if case is None or self._busy():
            return None
        if VESSELS not in case.labels:
            self._typical_landmarks("There are no vessels to read the landmarks from")
            return None
        liver, vessels = case.labels[LIVER], case.labels[VESSELS]
        task = Task("Finding the landmarks", find_landmarks, liver, vessels, self._vessels)
        return self._start(task, self._on_landmarks_found, {LIVER: liver, VESSELS: vessels},
                           "Finding the segment landmarks in the vessel trees")

    def _on_landmarks_found(self, result) -> None:
        if not self._still_current():
            return
        self._vessels, landmarks, warnings = result
        for warning in warnings:
            self.window.log("warning", warning)
        if landmarks is None:
            self._typical_landmarks("The landmarks were not found in the vessel trees (correct "
                                    "the vessels, or place the landmarks)")
            return
        self._set_edits(landmarks=landmarks)
        self.status.setText("Drag a landmark in the views (filled: on this slice), then press "
                            "Recompute segments.")

    def _typical_landmarks(self, why: str) -> None:
        self._set_edits(landmarks=typical_landmarks(self.window.case.labels[LIVER]))
        self.status.setText(f"{why}: they start at their typical places in the liver. Place "
                            "each where it belongs (choose it under Couinaud segments, click in "
                            "the views), then press Recompute segments.")

    # The segment corrections live in the case (saved, autosaved, reopened with it).
    @property
    def edits(self) -> SegmentEdits:
        case = self.window.case
        return (case.segment_edits if case is not None else None) or SegmentEdits()

    @property
    def landmarks(self) -> Landmarks | None:
        return self.edits.landmarks

    @property
    def branch_points(self) -> tuple:
        """(LPS point, segment) clicks of the Branch → segment tool."""
        return self.edits.branch_points

    def _set_edits(self, **change) -> None:
        case, edits = self.window.case, replace(self.edits, **change)
        if case is not None and edits != self.edits:
            case.segment_edits = edits
            self.window.mark_dirty()
        self._show_markers()
        self._update_recompute()

    def _show_markers(self) -> None:
        markers = []
        tool = self.active.key if self.active is not None else None
        if self.landmarks is not None and tool == "landmark":
            selected = self.landmark.currentData()
            markers = [Marker(key, short, getattr(self.landmarks, key), rgb, key == selected)
                       for key, (_, short, rgb) in LANDMARKS.items()]
        elif tool == "branch_segment":
            markers = [Marker(f"branch{k}", f"S{segment}" if segment else "no seed", point,
                              self._segment_rgb(segment))
                       for k, (point, segment) in enumerate(self.branch_points)]
        for view in self.window.views.values():
            view.set_markers(markers)

    def _on_marker_picked(self, key: str) -> None:
        self.landmark.setCurrentIndex(self.landmark.findData(key))

    def _assign_segment(self, point) -> None:
        """Record a Branch → segment click (applied by Recompute segments, which finds the
        portal branch under it in the trees of the vessels as they are then)."""
        if PORTAL not in values_near(self.window.case.labels[VESSELS], point, CLICK_REACH_MM):
            self.status.setText("No portal vein at the click: click on a portal branch (blue).")
            return
        segment = self.branch_segment.currentData()
        after = self.branch_points + ((tuple(float(v) for v in point), segment),)
        what = f"segment {segment}" if segment else "no segment"
        self._commit(f"Portal branch to {what}", {}, values={"branch_points": after})
        self.method.setCurrentIndex(self.method.findData(None))    # portal territories
        self.status.setText(f"Branch to {what}; press Recompute segments to apply it.")

    def _segment_rgb(self, segment: int) -> tuple[int, int, int]:
        """A segment's colour as the views show it (grey for "no segment")."""
        colour = self.window.state.colours[f"segment{segment}"] if segment else (0.6, 0.6, 0.6)
        return tuple(int(255 * c) for c in colour)

    def _place_landmark(self, point) -> None:
        if self.landmarks is not None:
            key = self.landmark.currentData()
            self._set_edits(landmarks=replace(self.landmarks, **{
                key: tuple(float(v) for v in point)}), moved=tuple(
                    k for k in LANDMARKS if k in self.edits.moved or k == key))

    def _on_drag(self, point, plane: str) -> None:
        if self.active is not None and self.active.key == "landmark":
            self._place_landmark(point)

    def _on_release(self, point, plane: str) -> None:
        before, after = self._edits_before, self.edits
        self._edits_before = None
        if self.active is None or self.active.key != "landmark" or before is None \
                or after.landmarks == before.landmarks:
            return
        name = landmark_name(self.landmark.currentData())
        self.history.record(f"Move the {name}", [
            ValueChange(key, getattr(before, key), getattr(after, key))
            for key in ("landmarks", "moved") if getattr(before, key) != getattr(after, key)])
        self.method.setCurrentIndex(self.method.findData(LANDMARK_PLANES))
        self.status.setText(f"The {name} was moved; press Recompute segments to apply it.")
        self._update_undo()

    def recompute(self) -> Task | None:
        case = self.window.case
        if case is None or LIVER not in case.labels or self._busy():
            return None
        liver, vessels, tumors = (case.labels.get(name) for name in (LIVER, VESSELS, TUMORS))
        task = Task("Recomputing the segments", recompute_segments, liver, vessels, tumors,
                    self._vessels, self.edits, self.method.currentData())
        return self._start(task, self._on_segments_result,
                           {LIVER: liver, VESSELS: vessels, TUMORS: tumors}, "Recompute segments")

    def _on_segments_result(self, result) -> None:
        if not self._still_current():
            return
        segments, tree, unplaced = result
        if tree is not None:
            self._vessels = tree
        for warning in segments.warnings:
            self.window.log("warning", warning)
        clicks = len(self.branch_points) if segments.method != LANDMARK_PLANES else 0
        moved = [landmark_name(k) for k in self.edits.moved] \
            if segments.uses_landmarks else []
        method = segments.description + "".join(
            (f", {clicks} branch assignment(s) by hand" if clicks else "",
             f", landmarks moved by hand: {', '.join(moved)}" if moved else "",
             f", landmarks at their typical places: {', '.join(unplaced)}" if unplaced else ""))
        values = {"segments_method": method}
        if segments.landmarks is not None:      # shown as used (those not moved follow the trees)
            values["landmarks"] = segments.landmarks
        self._commit(f"Recompute segments ({method})", {SEGMENTS: segments.segments},
                     values=values)


def _volume_change(entry, reference: sitk.Image) -> str:
    """': liver +2.3 mL' for the liver and lesion maps an entry changed ('' otherwise)."""
    parts = []
    for change in entry.changes:
        if isinstance(change, LabelChange) and change.name in (LIVER, TUMORS) and change.box:
            voxels = np.count_nonzero(change.after) - np.count_nonzero(change.before)
            what = "liver" if change.name == LIVER else "lesions"
            parts.append(f"{what} {voxels * voxel_volume_ml(reference):+.1f} mL")
    return f": {', '.join(parts)}" if parts else ""


# open with the image alone: a liver neither segmentation mode finds is drawn here
STEP = Step(REVIEW, "review", "Review & correct", ReviewPanel, has_case)
