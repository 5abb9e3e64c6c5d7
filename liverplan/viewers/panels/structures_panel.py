"""Structures and display: per-structure visibility and colour (2-D and 3-D), overlay opacity,
outline mode and the grey-window presets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QCheckBox, QColorDialog, QFormLayout, QGridLayout, QGroupBox,
                               QHBoxLayout, QLabel, QPushButton, QSlider, QToolButton,
                               QVBoxLayout, QWidget)

from liverplan.viewers.structures import present
from liverplan.viewers.view_state import WINDOW_PRESETS
from liverplan.viewers.panels.step import DISPLAY, Step, has_case

if TYPE_CHECKING:
    from liverplan.viewers.main_window import MainWindow


def _swatch(button: QToolButton, rgb) -> None:
    c = QColor.fromRgbF(*rgb)
    button.setStyleSheet(f"background-color: {c.name()}; border: 1px solid #444;")


class StructuresPanel(QWidget):
    def __init__(self, window: "MainWindow"):
        super().__init__()
        self.window, self.state = window, window.state
        self.checks: dict[str, QCheckBox] = {}
        self.colour_buttons: dict[str, QToolButton] = {}

        self.list_box = QGroupBox("Structures (2-D overlay and 3-D)")
        self.grid = QGridLayout(self.list_box)

        overlay_box = QGroupBox("Overlay")
        form = QFormLayout(overlay_box)
        self.overlays = QCheckBox("Show label overlays")
        self.overlays.setChecked(self.state.overlays_on)
        self.overlays.toggled.connect(self.state.set_overlays_on)
        self.outline = QCheckBox("Outlines only")
        self.outline.toggled.connect(self.state.set_outline)
        self.opacity = QSlider(Qt.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(self.state.opacity * 100))
        self.opacity.valueChanged.connect(lambda v: self.state.set_opacity(v / 100))
        form.addRow(self.overlays)
        form.addRow(self.outline)
        form.addRow("Opacity", self.opacity)

        window_box = QGroupBox("Grey window")
        row = QHBoxLayout(window_box)
        for name, (width, level) in WINDOW_PRESETS.items():
            b = QPushButton(f"{name} W{width:.0f}/L{level:.0f}")
            b.clicked.connect(lambda _=False, w=width, l=level: self.state.set_window(w, l))
            row.addWidget(b)

        layout = QVBoxLayout(self)
        layout.addWidget(self.list_box)
        layout.addWidget(overlay_box)
        layout.addWidget(window_box)
        layout.addStretch(1)
        self.state.structuresChanged.connect(self.rebuild)
        self.state.displayChanged.connect(self.sync)
        self.rebuild()

    def rebuild(self) -> None:
        while self.grid.count():
            self.grid.takeAt(0).widget().deleteLater()
        self.checks.clear()
        self.colour_buttons.clear()
        case = self.window.case
        structures = present(case.labels) if case is not None else []
        if not structures:
            self.grid.addWidget(QLabel("No segmentation in this case yet."), 0, 0)
            return
        for n, s in enumerate(structures):
            check = QCheckBox(s.title)
            check.setChecked(self.state.visible[s.key])
            check.toggled.connect(lambda on, k=s.key: self.state.set_visible(k, on))
            button = QToolButton()
            button.setFixedSize(22, 18)
            button.setToolTip(f"Colour of {s.title.lower()}")
            _swatch(button, self.state.colours[s.key])
            button.clicked.connect(lambda _=False, k=s.key: self.choose_colour(k))
            self.grid.addWidget(check, n, 0)
            self.grid.addWidget(button, n, 1)
            self.checks[s.key], self.colour_buttons[s.key] = check, button

    def sync(self) -> None:
        for key, check in self.checks.items():
            if check.isChecked() != self.state.visible[key]:
                check.setChecked(self.state.visible[key])
            _swatch(self.colour_buttons[key], self.state.colours[key])
        for widget, value in ((self.overlays, self.state.overlays_on),
                              (self.outline, self.state.outline)):
            if widget.isChecked() != value:
                widget.setChecked(value)

    def choose_colour(self, key: str) -> None:
        colour = QColorDialog.getColor(QColor.fromRgbF(*self.state.colours[key]), self)
        if colour.isValid():
            self.state.set_colour(key, (colour.redF(), colour.greenF(), colour.blueF()))


STEP = Step(DISPLAY, "display", "Structures and display", StructuresPanel, has_case)
