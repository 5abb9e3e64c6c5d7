"""Volumetry step: total, functional, segment and lesion volumes, recomputed whenever a mask
changes (off the UI thread) so the table always matches what the views show."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (QAbstractItemView, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from liverplan.case import LIVER, SEGMENTS, TUMORS
from liverplan.progress import Steps
from liverplan.viewers.widgets import WrappedLabel
from liverplan.viewers.workers import Task
from liverplan.volumetry.lesions import no_lesions
from liverplan.volumetry.measure import Volumetry, measure
from liverplan.volumetry.segments import segment_volumes_ml
from liverplan.viewers.panels.step import VOLUMETRY, Step, has_label

if TYPE_CHECKING:
    from liverplan.viewers.main_window import MainWindow

COLUMNS = ("Structure", "Volume (mL)", "Diameter (mm)", "Depth (mm)", "Segment")


def measure_labels(labels: dict[str, sitk.Image], *, progress=None,
                   cancel=None) -> tuple[Volumetry, dict[int, float]]:
    """Volumetry of a case's label images (no lesions if there is no tumour map yet)."""
    steps = Steps(progress, cancel)
    steps.report(0.0, "Measuring volumes")
    liver = labels[LIVER]
    tumors = labels.get(TUMORS)
    if tumors is None:
        tumors = no_lesions(liver)
    segments = labels.get(SEGMENTS)
    volumetry = measure(liver, tumors, segments)
    steps.report(1.0, "Volumes measured")
    return volumetry, segment_volumes_ml(segments) if segments is not None else {}


class VolumetryPanel(QWidget):
    def __init__(self, window: "MainWindow"):
        super().__init__()
        self.window = window
        self.task: Task | None = None
        self._measured: tuple = (None, {})     # the case and label images being measured
        self.lesion_rows: dict[int, tuple] = {}      # table row -> lesion centroid (LPS mm)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.verticalHeader().hide()
        self.table.cellClicked.connect(self._go_to_lesion)
        self.status = WrappedLabel("Volumes appear once the liver is segmented.")
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        self._soon = QTimer(self, singleShot=True, interval=300)   # one update per burst of edits
        self._soon.timeout.connect(self.update_volumes)
        window.caseChanged.connect(lambda case: self._soon.start())

    def update_volumes(self) -> Task | None:
        case = self.window.case
        if case is None or LIVER not in case.labels:
            self.table.setRowCount(0)
            return None
        if self.task is not None and self.task.running:
            self._soon.start()            # measure the newest masks after this one
            return None
        self._measured = (case, dict(case.labels))
        self.task = Task("Volumetry", measure_labels, self._measured[1])
        self.status.setText("Measuring…")
        # A bound slot, not a lambda: Qt drops it if the panel is gone when the task finishes.
        return self.window.run_task(self.task, self._show, foreground=False)

    def _show(self, result: tuple[Volumetry, dict[int, float]]) -> None:
        case, labels = self._measured
        if case is not self.window.case or labels.keys() != case.labels.keys() or any(
                case.labels[name] is not image for name, image in labels.items()):
            return                         # the masks changed meanwhile; a new run follows
        volumetry, segments = result
        rows = [("Total liver", volumetry.total_liver_ml, None),
                ("Tumours", volumetry.tumor_ml, None),
                ("Functional liver", volumetry.functional_liver_ml, None)]
        rows += [(f"Segment {n}", ml, None) for n, ml in sorted(segments.items())]
        rows += [(f"Lesion {x.id}", x.volume_ml, x) for x in volumetry.lesions]
        self.table.setRowCount(len(rows))
        self.lesion_rows.clear()
        for r, (name, ml, lesion) in enumerate(rows):
            cells = [name, f"{ml:.1f}"]
            if lesion is not None:
                cells += [f"{lesion.diameter_mm:.0f}", f"{lesion.depth_mm:.0f}",
                          str(lesion.segment) if lesion.segment else "—"]
                self.lesion_rows[r] = lesion.centroid_lps_mm
            for c, text in enumerate(cells):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.status.setText("Click a lesion to show it in the views.")

    def _go_to_lesion(self, row: int, _column: int) -> None:
        if row in self.lesion_rows:
            self.window.state.set_cursor(np.asarray(self.lesion_rows[row], dtype=float))


STEP = Step(VOLUMETRY, "volumetry", "Volumetry", VolumetryPanel, has_label(LIVER))
