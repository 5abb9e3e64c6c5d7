"""Load step: open a DICOM folder, an image file or a saved case; recent cases; series facts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QFormLayout, QGroupBox, QLabel, QListWidget,
                               QListWidgetItem, QPushButton, QVBoxLayout, QWidget)

from liverplan.viewers import settings as app_settings
from liverplan.viewers.panels.step import LOAD, Step

if TYPE_CHECKING:
    from liverplan.viewers.main_window import MainWindow


def dicom_date(value: str) -> str:
    """YYYYMMDD as YYYY-MM-DD (other forms unchanged)."""
    return f"{value[:4]}-{value[4:6]}-{value[6:]}" if len(value) == 8 and value.isdigit() else value


def series_facts(info, image) -> list[tuple[str, str]]:
    """(field, value) rows describing the loaded series for a person."""
    rows = []
    if info is not None:
        rows += [("Patient", f"{info.patient_name or '—'} ({info.patient_id or 'no ID'})"),
                 ("Study date", dicom_date(info.study_date) or "—"), ("Modality", info.modality or "—"),
                 ("Description", info.description or "—")]
        if info.phase_hint:
            rows.append(("Phase", info.phase_hint))
    if image is not None:
        sx, sy, sz = image.GetSpacing()
        nx, ny, nz = image.GetSize()
        rows += [("Size", f"{nx} × {ny} × {nz} voxels"),
                 ("Spacing", f"{sx:.2f} × {sy:.2f} × {sz:.2f} mm")]
    return rows


class LoadPanel(QWidget):
    def __init__(self, window: "MainWindow"):
        super().__init__()
        self.window = window
        buttons = QVBoxLayout()
        for text, slot in (("Open DICOM folder…", window.open_folder_dialog),
                           ("Open image file…", window.open_file_dialog),
                           ("Open saved case…", window.open_case_dialog)):
            b = QPushButton(text)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        self.facts = QFormLayout()
        facts_box = QGroupBox("Loaded series")
        facts_box.setLayout(self.facts)
        self.recent = QListWidget()
        self.recent.itemActivated.connect(lambda item: window.open_path(item.data(Qt.UserRole)))
        recent_box = QGroupBox("Recent (double-click to open)")
        QVBoxLayout(recent_box).addWidget(self.recent)
        layout = QVBoxLayout(self)
        hint = QLabel("Open a DICOM folder, a NIfTI/NRRD/MHA file or a saved case; you can "
                      "also drop it on the window.")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        layout.addLayout(buttons)
        layout.addWidget(facts_box)
        layout.addWidget(recent_box, 1)
        self._shown = None
        window.caseChanged.connect(self.refresh)
        window.recentChanged.connect(self.refresh_recent)
        self.refresh(window.case)
        self.refresh_recent()

    def refresh(self, case) -> None:
        if case is self._shown and self.facts.rowCount():
            return                  # a label changed; the series facts did not
        self._shown = case
        while self.facts.rowCount():
            self.facts.removeRow(0)
        if case is None:
            self.facts.addRow(QLabel("Nothing loaded yet."))
            return
        for name, value in series_facts(case.info, case.image):
            label = QLabel(value)
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            label.setWordWrap(True)
            self.facts.addRow(name, label)

    def refresh_recent(self) -> None:
        self.recent.clear()
        for path in app_settings.recent(self.window.settings):
            item = QListWidgetItem(Path(path).name or path)
            item.setToolTip(path)
            item.setData(Qt.UserRole, path)
            self.recent.addItem(item)


STEP = Step(LOAD, "load", "Load", LoadPanel, lambda case: True)
