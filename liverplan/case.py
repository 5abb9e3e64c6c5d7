"""A Case: one CT/MR volume with its segmentations, patient data and plans.

Qt-free and observable (the napari layer idea): viewers subscribe with `subscribe(callback)` and
are told which part changed; the core never knows who is listening.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import SimpleITK as sitk

from liverplan.geometry import same_grid

# Label images a case can hold, with their value conventions.
LIVER = "liver"        # 0/1 (UInt8), includes intrahepatic tumours and vessels
TUMORS = "tumors"      # 0..N lesion instance ids (UInt16)
VESSELS = "vessels"    # 1 portal venous system, 2 hepatic veins and IVC (UInt8)
SEGMENTS = "segments"  # Couinaud segments 1-8 (UInt8), 0 outside the liver
LABEL_NAMES = (LIVER, TUMORS, VESSELS, SEGMENTS)


@dataclass
class Case:
    image: sitk.Image                       # HU for CT, LPS mm
    info: Any = None                        # liverplan.io SeriesInfo of the source, if any
    labels: dict[str, sitk.Image] = field(default_factory=dict)
    patient: Any = None                     # liverplan.planner.patient.Patient
    plans: list = field(default_factory=list)   # liverplan.planner.planfile.PlanFile, by name
    segment_edits: Any = None               # liverplan.volumetry.segments.SegmentEdits
    segments_method: str | None = None      # how the segments label was made (for reports)
    warnings: list[str] = field(default_factory=list)
    _listeners: list[Callable[[str], None]] = field(default_factory=list, repr=False)

    def subscribe(self, callback: Callable[[str], None]) -> None:
        """`callback(what)` is called after `what` ("image", a label name, "patient", "plans") changes."""
        self._listeners.append(callback)

    def unsubscribe(self, callback: Callable[[str], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def changed(self, what: str) -> None:
        for callback in list(self._listeners):
            callback(what)

    def set_label(self, name: str, mask: sitk.Image) -> None:
        """Store a label image; it must lie on the case image's grid (one geometry)."""
        if name not in LABEL_NAMES:
            raise ValueError(f"unknown label image {name!r}; expected one of {LABEL_NAMES}")
        if not same_grid(mask, self.image):
            raise ValueError(f"the {name} mask does not share the image's origin, spacing, "
                             "direction and size")
        self.labels[name] = mask
        self.changed(name)

    def label(self, name: str) -> sitk.Image | None:
        return self.labels.get(name)

    def set_patient(self, patient) -> None:
        self.patient = patient
        self.changed("patient")

    def put_plan(self, planfile) -> int:
        """Store a plan (a PlanFile), replacing the one of the same name; returns its index."""
        names = [p.plan.name for p in self.plans]
        if planfile.plan.name in names:
            index = names.index(planfile.plan.name)
            self.plans[index] = planfile
        else:
            index = len(self.plans)
            self.plans.append(planfile)
        self.changed("plans")
        return index

    def remove_plan(self, name: str) -> None:
        self.plans = [p for p in self.plans if p.plan.name != name]
        self.changed("plans")
