"""The pluggable segmentation interface.

The default is `ClassicalSegmenter` (intensity models, region growing, morphology; no learned
weights). A learned model (e.g. TotalSegmentator's "liver" task, on a workstation that has its
weights) can replace it by implementing `Segmenter`: the `segment` command and the desktop app
only talk to this protocol, and results record `name` so a report says which method made them.
"""

from __future__ import annotations

from typing import Protocol

import SimpleITK as sitk

from liverplan.volumetry.lesions import LesionParameters, detect_lesions
from liverplan.volumetry.liver import (LiverParameters, LiverResult, segment_liver,
                                      segment_liver_from_seed)


class Segmenter(Protocol):
    name: str

    def liver(self, image: sitk.Image, *, seed_lps=None, path=None, progress=None,
              cancel=None) -> LiverResult:
        """Liver mask (UInt8 0/1 on the image grid) with warnings; SegmentationError on failure.
        seed_lps: a point inside the liver (LPS mm) to grow it from (seeded mode, for MR or a CT
        where the automatic mode fails); a segmenter without a seeded mode raises
        SegmentationError saying so."""

    def lesions(self, image: sitk.Image, liver: sitk.Image, *, progress=None,
                cancel=None) -> sitk.Image:
        """Lesion instance map (UInt16, ids 1..N) on the image grid."""

    def parameters(self) -> dict:
        """Settings to record with the result."""


class ClassicalSegmenter:
    """Classical image analysis; see liverplan.volumetry.liver and .lesions for the stages."""

    name = "classical"

    def liver(self, image, *, seed_lps=None, path=None, progress=None, cancel=None) -> LiverResult:
        if seed_lps is not None:
            return segment_liver_from_seed(image, seed_lps, path=path, progress=progress,
                                           cancel=cancel)
        return segment_liver(image, path=path, progress=progress, cancel=cancel)

    def lesions(self, image, liver, *, progress=None, cancel=None) -> sitk.Image:
        return detect_lesions(image, liver, progress=progress, cancel=cancel)

    def parameters(self) -> dict:
        return {"liver": LiverParameters().to_dict(), "lesions": LesionParameters().to_dict()}
