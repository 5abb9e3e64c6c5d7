"""The guided steps of the side panel.

A step is a panel widget and a predicate saying when it can be used; a capability adds its step
to STEPS when it lands (Segment, Review, Volumetry, Plan, ICG, Export), nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from PySide6.QtWidgets import QToolBox, QWidget

from liverplan.case import Case
from liverplan.viewers.panels.load_panel import LoadPanel
from liverplan.viewers.panels.segment_panel import SegmentPanel
from liverplan.viewers.panels.structures_panel import StructuresPanel

if TYPE_CHECKING:
    from liverplan.viewers.main_window import MainWindow


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    make_panel: Callable[["MainWindow"], QWidget]
    enabled: Callable[[Case | None], bool]


STEPS: tuple[Step, ...] = (
    Step("load", "Load", LoadPanel, lambda case: True),
    Step("segment", "Segment", SegmentPanel, lambda case: case is not None),
    Step("display", "Structures and display", StructuresPanel, lambda case: case is not None),
)


class StepPanel(QToolBox):
    """The steps in order; a step is greyed out until its inputs exist in the case."""

    def __init__(self, window: "MainWindow", steps=STEPS):
        super().__init__()
        self.steps = list(steps)
        self.panels: dict[str, QWidget] = {}
        for n, step in enumerate(self.steps):
            self.panels[step.key] = step.make_panel(window)
            self.addItem(self.panels[step.key], f"{n + 1}  {step.title}")
        window.caseChanged.connect(self.update_enabled)
        self.update_enabled(window.case)

    def update_enabled(self, case: Case | None) -> None:
        for n, step in enumerate(self.steps):
            self.setItemEnabled(n, bool(step.enabled(case)))
