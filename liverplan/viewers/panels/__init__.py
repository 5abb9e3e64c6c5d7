"""The guided steps of the side panel, found in this package's modules (see step.py)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QToolBox, QWidget

from liverplan.case import Case
from liverplan.viewers.panels.step import Step

if TYPE_CHECKING:
    from liverplan.viewers.main_window import MainWindow


def find_steps() -> list[Step]:
    steps = []
    for mod in pkgutil.iter_modules(__path__):
        step = getattr(importlib.import_module(f"{__name__}.{mod.name}"), "STEP", None)
        if step is not None:
            steps.append(step)
    return sorted(steps, key=lambda s: s.order)


class StepPanel(QToolBox):
    """The steps in order; a step is greyed out until its inputs exist in the case."""

    def __init__(self, window: "MainWindow", steps=None):
        super().__init__()
        self.steps = list(steps if steps is not None else find_steps())
        self.panels: dict[str, QWidget] = {}
        for n, step in enumerate(self.steps):
            self.panels[step.key] = step.make_panel(window)
            # "&&": a single & would underline the next letter as a mnemonic
            self.addItem(self.panels[step.key], f"{n + 1}  {step.title.replace('&', '&&')}")
        window.caseChanged.connect(self.update_enabled)
        self.update_enabled(window.case)

    def show_step(self, key: str) -> QWidget:
        panel = self.panels[key]
        self.setCurrentWidget(panel)
        return panel

    def update_enabled(self, case: Case | None) -> None:
        for n, step in enumerate(self.steps):
            self.setItemEnabled(n, bool(step.enabled(case)))
