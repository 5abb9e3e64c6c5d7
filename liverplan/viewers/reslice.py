"""Slices of a volume in radiological display orientation, through LPS patient coordinates.

Qt-free so it is unit-tested on its own. The volume is first reordered (never resampled) with
`sitk.DICOMOrient` so its voxel axes point to patient Left, Posterior, Superior; that reordering is
derived from the image's own direction matrix. Display slices are then views of that array:

    axial     screen right = patient Left,      screen down = Posterior  (R on the left, A at top)
    coronal   screen right = patient Left,      screen down = Inferior   (R on the left, S at top)
    sagittal  screen right = patient Posterior, screen down = Inferior   (A on the left, S at top)

Every position shown or measured goes display pixel -> voxel index -> LPS mm with the image's
real direction, so oblique acquisitions are displayed in their nearest anatomical plane and still
read out exact patient coordinates; the orientation letters are computed from the direction too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

AXIAL, CORONAL, SAGITTAL = "axial", "coronal", "sagittal"
PLANES = (AXIAL, CORONAL, SAGITTAL)

# Per plane: the oriented voxel axis (0=i/L, 1=j/P, 2=k/S) along screen x, along screen y, the
# slice axis, and whether screen y runs against that voxel axis (S must be at the top).
_LAYOUT = {
    AXIAL: (0, 1, 2, False),
    CORONAL: (0, 2, 1, True),
    SAGITTAL: (1, 2, 0, True),
}
_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))  # (negative, positive) end of LPS x, y, z


def orientation_letter(direction_lps) -> str:
    """The patient direction ('L', 'R', 'P', 'A', 'S', 'I') a vector in LPS mostly points to."""
    v = np.asarray(direction_lps, dtype=float)
    axis = int(np.argmax(np.abs(v)))
    return _LETTERS[axis][1 if v[axis] > 0 else 0]


@dataclass(frozen=True)
class ScreenLabels:
    left: str
    right: str
    top: str
    bottom: str


class DisplayVolume:
    """One image (CT or label map) reordered for display, with its mapping to LPS."""

    def __init__(self, image: sitk.Image):
        self.source = image
        self.image = sitk.DICOMOrient(image, "LPS")
        self.array = sitk.GetArrayViewFromImage(self.image)   # (k, j, i) = (S, P, L)
        self.size = self.image.GetSize()                       # (ni, nj, nk)
        self.spacing = self.image.GetSpacing()
        self._direction = np.array(self.image.GetDirection()).reshape(3, 3)

    # --- geometry ------------------------------------------------------------------------------
    def n_slices(self, plane: str) -> int:
        return self.size[_LAYOUT[plane][2]]

    def slice_shape(self, plane: str) -> tuple[int, int]:
        """(rows, columns) of a display slice."""
        ax_x, ax_y, _, _ = _LAYOUT[plane]
        return self.size[ax_y], self.size[ax_x]

    def pixel_spacing(self, plane: str) -> tuple[float, float]:
        """(screen x, screen y) size of a display pixel in mm."""
        ax_x, ax_y, _, _ = _LAYOUT[plane]
        return self.spacing[ax_x], self.spacing[ax_y]

    def screen_labels(self, plane: str) -> ScreenLabels:
        """Orientation letters at the four edges, from the direction matrix."""
        ax_x, ax_y, _, flip_y = _LAYOUT[plane]
        right = self._direction[:, ax_x]
        down = -self._direction[:, ax_y] if flip_y else self._direction[:, ax_y]
        return ScreenLabels(orientation_letter(-right), orientation_letter(right),
                            orientation_letter(-down), orientation_letter(down))

    def display_to_index(self, plane: str, x: float, y: float, slice_index: float) -> np.ndarray:
        """Continuous display position (column x, row y; pixel centres at integers) to (i, j, k)."""
        ax_x, ax_y, ax_s, flip_y = _LAYOUT[plane]
        ijk = np.empty(3)
        ijk[ax_x] = x
        ijk[ax_y] = (self.size[ax_y] - 1 - y) if flip_y else y
        ijk[ax_s] = slice_index
        return ijk

    def index_to_display(self, plane: str, ijk) -> tuple[float, float, float]:
        """(i, j, k) to (column x, row y, slice) in the plane's display slice."""
        ax_x, ax_y, ax_s, flip_y = _LAYOUT[plane]
        y = (self.size[ax_y] - 1 - ijk[ax_y]) if flip_y else ijk[ax_y]
        return float(ijk[ax_x]), float(y), float(ijk[ax_s])

    def index_to_lps(self, ijk) -> np.ndarray:
        return np.array(self.image.TransformContinuousIndexToPhysicalPoint([float(v) for v in ijk]))

    def lps_to_index(self, point_lps) -> np.ndarray:
        return np.array(self.image.TransformPhysicalPointToContinuousIndex(
            [float(v) for v in point_lps]))

    def display_to_lps(self, plane: str, x: float, y: float, slice_index: float) -> np.ndarray:
        return self.index_to_lps(self.display_to_index(plane, x, y, slice_index))

    def lps_to_display(self, plane: str, point_lps) -> tuple[float, float, float]:
        return self.index_to_display(plane, self.lps_to_index(point_lps))

    def voxel_of(self, point_lps) -> tuple[int, int, int] | None:
        """Nearest (i, j, k) voxel of an LPS point, or None outside the volume."""
        ijk = np.rint(self.lps_to_index(point_lps)).astype(int)
        if np.any(ijk < 0) or np.any(ijk >= np.asarray(self.size)):
            return None
        return int(ijk[0]), int(ijk[1]), int(ijk[2])

    def value_at(self, point_lps):
        """Voxel value at an LPS point (nearest voxel), or None outside."""
        v = self.voxel_of(point_lps)
        return None if v is None else self.array[v[2], v[1], v[0]].item()

    def center_lps(self) -> np.ndarray:
        return self.index_to_lps([(n - 1) / 2 for n in self.size])

    # --- pixels --------------------------------------------------------------------------------
    def slice(self, plane: str, index: int) -> np.ndarray:
        """The 2-D display slice (rows top to bottom, columns left to right); a view, not a copy."""
        a = self.array
        if plane == AXIAL:
            return a[index, :, :]
        if plane == CORONAL:
            return a[::-1, index, :]
        return a[::-1, :, index]


def window_to_uint8(values: np.ndarray, width: float, level: float) -> np.ndarray:
    """Linear grey mapping of `values` (HU) to 0..255 for a window width and level."""
    width = max(float(width), 1.0)
    lo = float(level) - width / 2.0
    out = (values.astype(np.float32) - lo) * (255.0 / width)
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8)


def outline(labels: np.ndarray) -> np.ndarray:
    """True on pixels of a non-zero label that touch a different label (4-neighbourhood)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge & (labels != 0)


def blend_labels(rgb: np.ndarray, labels: np.ndarray, lut: np.ndarray, opacity: float,
                 outline_only: bool) -> None:
    """Blend a label slice onto an (h, w, 3) float32 RGB image in place.

    `lut` is (n, 4) float32 RGBA per label value, covering every value in `labels` (alpha 0 for
    hidden or background values). Only the labels' bounding box (plus one pixel, so outlines
    at its edge are found) is touched, which keeps scrolling fast.
    """
    rows = np.flatnonzero(labels.any(axis=1))
    if not rows.size:
        return
    cols = np.flatnonzero(labels.any(axis=0))
    r0, r1 = max(rows[0] - 1, 0), rows[-1] + 2
    c0, c1 = max(cols[0] - 1, 0), cols[-1] + 2
    values = labels[r0:r1, c0:c1].astype(np.intp)
    rgba = lut[values]
    if outline_only:
        alpha = np.where(outline(values), rgba[..., 3], np.float32(0.0))
    else:
        alpha = rgba[..., 3] * np.float32(opacity)
    target = rgb[r0:r1, c0:c1]
    target += (rgba[..., :3] * np.float32(255.0) - target) * alpha[..., None]
