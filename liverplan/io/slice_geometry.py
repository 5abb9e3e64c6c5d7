"""Where the slices of a DICOM series lie in LPS space, and whether they form a regular grid.

Pure numpy on ImageOrientationPatient / ImagePositionPatient values, shared by the scan (to sort
files and warn early) and the loader (to build the image and decide on resampling). Spacing
comes from the position steps along the slice normal, never from SliceThickness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Positions written as decimal strings differ by rounding; steps that differ by less than this
# (absolute, or relative to the step) are the same step.
STEP_TOLERANCE_MM = 0.01
STEP_TOLERANCE_REL = 0.01
# In-plane drift of the slice origins smaller than this fraction of a pixel is rounding, not tilt.
TILT_TOLERANCE_PIXELS = 0.1


@dataclass(frozen=True)
class Gap:
    """A step between two neighbouring slices that is not the series' regular step."""
    after_mm: float      # position of the slice before the gap, along the slice normal
    size_mm: float       # distance to the next slice
    expected_mm: float   # the regular step

    def describe(self) -> str:
        kind = "gap" if self.size_mm > self.expected_mm else "short step"
        return (f"{kind} of {self.size_mm:.2f} mm (regular step {self.expected_mm:.2f} mm) "
                f"between slices at {self.after_mm:.2f} and {self.after_mm + self.size_mm:.2f} mm "
                "along the slice normal")


@dataclass(frozen=True)
class SliceGeometry:
    order: np.ndarray          # indices that sort the input slices by position along the normal
    direction: np.ndarray      # 3x3, columns = row cosine, column cosine, slice normal (LPS)
    distances_mm: np.ndarray   # sorted positions along the normal
    origin_mm: np.ndarray      # ImagePositionPatient of the first sorted slice
    step_mm: float | None      # regular step along the normal (None for a single slice)
    gaps: tuple[Gap, ...]      # irregular steps (missing slices, uneven spacing)
    duplicates: int            # slices that share a position with another slice
    tilt_deg: float            # gantry tilt: angle between the slice stack axis and the normal
    shear_mm: np.ndarray       # in-plane drift of the slice origin per regular step (LPS)
    collinear: bool            # slice origins lie on one straight line

    @property
    def regular(self) -> bool:
        return not self.gaps and self.duplicates == 0 and self.tilt_deg == 0.0


def direction_from_orientation(orientation) -> np.ndarray:
    """3x3 direction (columns: row cosine, column cosine, normal) from ImageOrientationPatient."""
    iop = np.asarray(orientation, dtype=float)
    row, col = iop[:3], iop[3:]
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    return np.column_stack([row, col, np.cross(row, col)])


def analyse(orientation, positions_mm, pixel_spacing_mm) -> SliceGeometry:
    """Sort slices along the normal and find gaps, duplicates and gantry tilt."""
    direction = direction_from_orientation(orientation)
    normal = direction[:, 2]
    positions = np.asarray(positions_mm, dtype=float).reshape(-1, 3)
    distances = positions @ normal
    order = np.argsort(distances, kind="stable")
    positions, distances = positions[order], distances[order]
    steps = np.diff(distances)
    duplicates = int(np.count_nonzero(steps < STEP_TOLERANCE_MM))
    distinct = steps[steps >= STEP_TOLERANCE_MM]
    if distinct.size == 0:
        return SliceGeometry(order, direction, distances, positions[0], None, (), duplicates,
                             0.0, np.zeros(3), True)
    step = float(np.median(distinct))
    tol = max(STEP_TOLERANCE_MM, STEP_TOLERANCE_REL * step)
    gaps = tuple(Gap(float(distances[i]), float(s), step)
                 for i, s in enumerate(steps) if s >= STEP_TOLERANCE_MM and abs(s - step) > tol)

    # In-plane offset of each slice origin from the first, against its distance along the normal:
    # a straight line through zero is a gantry tilt, anything else is not one stack.
    offsets = positions - positions[0]
    in_plane = offsets - np.outer(offsets @ normal, normal)
    rel = distances - distances[0]
    shear = (in_plane.T @ rel) / float(rel @ rel) * step       # drift per regular step
    residual = np.abs(in_plane - np.outer(rel / step, shear)).max()
    pixel = float(min(pixel_spacing_mm))
    collinear = residual <= TILT_TOLERANCE_PIXELS * pixel
    drift_total = np.linalg.norm(shear) * (rel[-1] / step)
    if drift_total <= TILT_TOLERANCE_PIXELS * pixel:
        tilt, shear = 0.0, np.zeros(3)
    else:
        tilt = float(np.degrees(np.arctan2(np.linalg.norm(shear), step)))
    return SliceGeometry(order, direction, distances, positions[0], step, gaps, duplicates, tilt,
                         shear, bool(collinear))
