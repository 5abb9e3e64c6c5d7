"""Segment step: the automatic pipeline (liver, lesions, then vessels and Couinaud segments) on
the open image, off the UI thread; the results become the case's label images. The seeded mode
(for MR, or a CT where the automatic liver fails) grows the liver from the crosshair instead."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import SimpleITK as sitk
from PySide6.QtWidgets import QCheckBox, QPushButton, QVBoxLayout, QWidget

from liverplan.case import LIVER, SEGMENTS, TUMORS, VESSELS
from liverplan.errors import SegmentationError
from liverplan.progress import Steps
from liverplan.viewers.widgets import WrappedLabel
from liverplan.viewers.workers import Task
from liverplan.volumetry.lesions import no_lesions
from liverplan.volumetry.liver import looks_like_ct
from liverplan.volumetry.measure import Volumetry, measure
from liverplan.volumetry.segmenter import ClassicalSegmenter, Segmenter
from liverplan.volumetry.segments import couinaud_segments
from liverplan.volumetry.vessels import segment_vessels
from liverplan.viewers.panels.step import SEGMENT, Step, has_case

if TYPE_CHECKING:
    from liverplan.viewers.main_window import MainWindow


@dataclass
class AutoSegmentation:
    labels: dict[str, sitk.Image]
    volumetry: Volumetry
    warnings: list[str] = field(default_factory=list)
    segments_method: str | None = None


def segment_image(image: sitk.Image, *, with_vessels: bool = True, liver_seed_lps=None,
                  path=None, segmenter: Segmenter | None = None, progress=None,
                  cancel=None) -> AutoSegmentation:
    """Liver and lesions (required); vessels and segments when asked. A vessel failure keeps
    the liver and lesions and says why, since they are useful without it.
    liver_seed_lps: a point inside the liver: the liver is grown from it (seeded mode); on an
    image that is not CT in HU only the liver is made (lesions and vessels are found from HU)."""
    segmenter = segmenter or ClassicalSegmenter()
    steps = Steps(progress, cancel)
    split = (0.45, 0.7, 0.9) if with_vessels else (0.65, 1.0, 1.0)
    liver = segmenter.liver(image, seed_lps=liver_seed_lps, path=path,
                            progress=steps.sub(0.0, split[0]).report, cancel=cancel)
    warnings = list(liver.warnings)
    if liver_seed_lps is not None and not looks_like_ct(image):
        warnings.append("This image is not CT in Hounsfield units: only the liver was grown from "
                        "the click. Lesions, vessels and Couinaud segments are found "
                        "automatically on contrast CT only; add lesions in Review & correct: "
                        "Add lesion (a click on a lesion darker or brighter than the liver) or "
                        "the Brush.")
        steps.report(1.0, "Measuring volumes")
        return AutoSegmentation({LIVER: liver.mask}, measure(liver.mask, no_lesions(image)),
                                warnings)
    tumors = segmenter.lesions(image, liver.mask, progress=steps.sub(split[0], split[1]).report,
                               cancel=cancel)
    labels, method = {LIVER: liver.mask, TUMORS: tumors}, None
    if with_vessels:
        try:
            vessels = segment_vessels(image, liver.mask, tumors=tumors,
                                      progress=steps.sub(split[1], split[2]).report, cancel=cancel)
            segments = couinaud_segments(liver.mask, vessels, tumors=tumors,
                                         progress=steps.sub(split[2], 1.0).report, cancel=cancel)
        except SegmentationError as exc:
            warnings.append(f"Vessels and Couinaud segments were not found: {exc}")
        else:
            labels[VESSELS], labels[SEGMENTS] = vessels.vessels, segments.segments
            warnings += list(vessels.warnings) + list(segments.warnings)
            method = segments.description
    steps.report(1.0, "Measuring volumes")
    return AutoSegmentation(labels, measure(liver.mask, tumors, labels.get(SEGMENTS)), warnings,
                            method)


def summary(volumetry: Volumetry) -> str:
    return (f"Liver {volumetry.total_liver_ml:.0f} mL (functional "
            f"{volumetry.functional_liver_ml:.0f} mL); {len(volumetry.lesions)} lesion(s), "
            f"{volumetry.tumor_ml:.1f} mL")


class SegmentPanel(QWidget):
    def __init__(self, window: "MainWindow"):
        super().__init__()
        self.window = window
        self.task: Task | None = None
        self._case = None                 # the case being segmented
        self.run_button = QPushButton("Segment automatically")
        self.run_button.clicked.connect(self.run)
        self.with_vessels = QCheckBox("Also vessels and Couinaud segments")
        self.with_vessels.setChecked(True)
        self.seed_button = QPushButton("Liver from the crosshair")
        self.seed_button.clicked.connect(self.run_seeded)
        self.seed_button.setToolTip("Seeded mode, for MR or when the automatic liver fails: "
                                    "click inside the liver in a slice view, then press this.")
        self.result = WrappedLabel("Liver, lesions, portal and hepatic veins, and segments 1-8 "
                                   "from the contrast CT. Check every result before planning.")
        seeded = WrappedLabel("MR, or a CT where the automatic liver fails: click inside the "
                              "liver in a slice view (the crosshair marks it), then grow the "
                              "liver from there. If neither finds it, draw it in Review & "
                              "correct (Include seed, Brush).")
        layout = QVBoxLayout(self)
        for w in (self.with_vessels, self.run_button, self.result, seeded, self.seed_button):
            layout.addWidget(w)
        layout.addStretch(1)

    def run(self) -> Task | None:
        return self._start()

    def run_seeded(self) -> Task | None:
        """The seeded mode from the crosshair's point."""
        return self._start(tuple(self.window.state.cursor_lps))

    def _start(self, liver_seed_lps=None) -> Task | None:
        case = self.window.case
        if case is None or (self.task is not None and self.task.running):
            return None
        self.task = Task("Segmenting", segment_image, case.image,
                         with_vessels=self.with_vessels.isChecked(),
                         liver_seed_lps=liver_seed_lps, path=self.window.source)
        for button in (self.run_button, self.seed_button):
            button.setEnabled(False)
            self.task.done.connect(lambda b=button: b.setEnabled(True))
        self._case = case
        # A bound slot, not a lambda: Qt drops it if the panel is gone when the task finishes.
        return self.window.run_task(self.task, self._apply)

    def _apply(self, result: AutoSegmentation) -> None:
        case = self._case
        if case is not self.window.case:
            return                      # another case was opened meanwhile
        if result.segments_method is not None:
            case.segments_method = result.segments_method
        for name, image in result.labels.items():
            case.set_label(name, image)
        for warning in result.warnings:
            self.window.log("warning", warning)
        self.result.setText(summary(result.volumetry))
        self.window.log("info", "Automatic segmentation: " + summary(result.volumetry))


STEP = Step(SEGMENT, "segment", "Segment", SegmentPanel, has_case)
