"""The anatomical structures the views draw, with their usual colours (display settings only).

A structure is one label image of the Case (and optionally one value in it). The 2-D overlays and
the 3-D scene use the same list, visibility and colours, so they always agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from liverplan.case import LIVER, SEGMENTS, TUMORS, VESSELS

Colour = tuple[float, float, float]   # RGB in 0..1


@dataclass(frozen=True)
class Structure:
    key: str
    title: str
    label: str              # Case label image name
    value: int | None       # None: every non-zero voxel
    colour: Colour
    opacity_3d: float = 1.0
    visible: bool = True    # default visibility
    faces_3d: int = 12_000  # surface decimated to this: software rendering shows the liver
                            # scene (liver, lesions, two vessel trees) in < 50 ms a frame


# Couinaud segments in distinct hues, close to the colours of common planning suites.
_SEGMENT_COLOURS: tuple[Colour, ...] = (
    (0.95, 0.85, 0.25),  # 1 caudate: yellow
    (0.40, 0.75, 0.30),  # 2 green
    (0.20, 0.60, 0.55),  # 3 teal
    (0.55, 0.85, 0.55),  # 4 light green
    (0.95, 0.55, 0.20),  # 5 orange
    (0.85, 0.30, 0.55),  # 6 pink
    (0.60, 0.40, 0.80),  # 7 violet
    (0.90, 0.35, 0.30),  # 8 red
)

STRUCTURES: tuple[Structure, ...] = (
    Structure("liver", "Liver", LIVER, None, (0.80, 0.45, 0.35), opacity_3d=0.35,
              faces_3d=30_000),
    Structure("lesions", "Lesions", TUMORS, None, (0.95, 0.90, 0.15)),
    Structure("portal", "Portal veins", VESSELS, 1, (0.15, 0.35, 0.95)),
    Structure("hepatic", "Hepatic veins / IVC", VESSELS, 2, (0.45, 0.80, 0.95)),
    *(Structure(f"segment{n}", f"Segment {n}", SEGMENTS, n, _SEGMENT_COLOURS[n - 1],
                opacity_3d=0.6, visible=False, faces_3d=6_000) for n in range(1, 9)),
)
BY_KEY = {s.key: s for s in STRUCTURES}


def present(labels: dict[str, sitk.Image]) -> list[Structure]:
    """The structures that have voxels in the given label images, in display order."""
    found = set()
    for name, image in labels.items():
        array = sitk.GetArrayViewFromImage(image)
        wanted = [s for s in STRUCTURES if s.label == name]
        if all(s.value is None for s in wanted):
            nonzero = bool(array.any())
            found.update(s.key for s in wanted if nonzero)
            continue
        counts = np.bincount(array.ravel().astype(np.intp, copy=False))
        for s in wanted:
            n = counts[1:].sum() if s.value is None else (counts[s.value] if s.value < len(counts) else 0)
            if n:
                found.add(s.key)
    return [s for s in STRUCTURES if s.key in found]


def label_lut(label: str, max_value: int, visible: dict[str, bool],
              colours: dict[str, Colour]) -> np.ndarray:
    """(max_value + 1, 4) RGBA table for one label image: the visible structures' colours."""
    lut = np.zeros((max_value + 1, 4), dtype=np.float32)
    for s in STRUCTURES:
        if s.label != label or not visible.get(s.key, False):
            continue
        rgba = (*colours.get(s.key, s.colour), 1.0)
        if s.value is None:
            lut[1:] = rgba
        elif s.value <= max_value:
            lut[s.value] = rgba
    return lut


# Order in which label images are layered in 2-D: finer structures on top.
LAYER_ORDER = (SEGMENTS, LIVER, VESSELS, TUMORS)
