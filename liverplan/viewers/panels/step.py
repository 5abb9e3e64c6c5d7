"""A guided step of the side panel: its place in the workflow, its panel and when it is usable.

Each panel module in this package declares `STEP = Step(...)`; the side panel finds them, so a
capability adds its step by adding its module and nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from PySide6.QtWidgets import QWidget

from liverplan.case import Case

if TYPE_CHECKING:
    from liverplan.viewers.main_window import MainWindow

# Workflow order: Load -> Segment -> Review & correct -> Volumetry -> Plan -> ICG -> Export,
# then the display settings.
LOAD, SEGMENT, REVIEW, VOLUMETRY, PLAN, ICG, EXPORT, DISPLAY = range(8)


@dataclass(frozen=True)
class Step:
    order: int
    key: str
    title: str
    make_panel: Callable[["MainWindow"], QWidget]
    enabled: Callable[[Case | None], bool]


def has_case(case: Case | None) -> bool:
    return case is not None


def has_label(name: str) -> Callable[[Case | None], bool]:
    return lambda case: case is not None and name in case.labels
