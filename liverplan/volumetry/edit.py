"""Hand corrections of a label map (liver or lesions), Qt-free: the API the desktop app calls.

Every edit touches only a bounding box around the click or stroke, and the history keeps just
that box before and after (never whole volumes), so edits and undo/redo stay fast on a
512x512x130 series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from liverplan.geometry import image_from_array, index_to_lps, lps_to_index, same_grid
from liverplan.volumetry.liver import bbox, widen

Plane = Literal["axial", "coronal", "sagittal"]
_NORMAL = {"axial": 2, "coronal": 1, "sagittal": 0}   # LPS axis normal to each plane


@dataclass(frozen=True)
class Stroke:
    """A brush or eraser stroke drawn in one viewing plane."""
    points_lps_mm: Sequence[Sequence[float]]
    radius_mm: float
    plane: Plane


@dataclass(frozen=True)
class _Patch:
    box: tuple[slice, ...]
    before: np.ndarray
    after: np.ndarray


class MaskEditor:
    """Edits of one label map on its image's grid, with undo/redo.

    >>> editor = MaskEditor(image, liver_mask)
    >>> editor.paint(Stroke([p0, p1], radius_mm=5, plane="coronal"), value=1)
    >>> editor.undo(); editor.redo(); corrected = editor.mask
    """

    def __init__(self, image: sitk.Image, mask: sitk.Image, *, history: int = 50):
        if not same_grid(image, mask):
            raise ValueError("the mask must lie on the image grid")
        self.image = image
        self._array = sitk.GetArrayFromImage(mask)
        self._pixel_type = mask.GetPixelID()
        self._hu = sitk.GetArrayViewFromImage(image)
        sx, sy, sz = image.GetSpacing()
        self.spacing = (sz, sy, sx)
        self._undo: list[_Patch] = []
        self._redo: list[_Patch] = []
        self._history = history

    @property
    def mask(self) -> sitk.Image:
        return sitk.Cast(image_from_array(self._array.copy(), self.image), self._pixel_type)

    @property
    def array(self) -> np.ndarray:
        """Read-only view of the current labels, (z, y, x)."""
        view = self._array.view()
        view.flags.writeable = False
        return view

    # --- edits ----------------------------------------------------------------------------------
    def paint(self, stroke: Stroke, value: int = 1) -> tuple[slice, ...] | None:
        """Brush (`value` > 0) or eraser (`value` 0): discs of `radius_mm` in the stroke's plane,
        one voxel thick (the viewed slice, at the stroke's mean depth), along the polyline
        (points farther apart than half the radius are interpolated)."""
        points = _densify(np.asarray(stroke.points_lps_mm, float), stroke.radius_mm / 2.0)
        box = self._box_around(points, stroke.radius_mm)
        if box is None:
            return None
        coords = self._lps_of_box(box)
        normal = _NORMAL[stroke.plane]
        in_plane = [i for i in range(3) if i != normal]
        depth = float(points[:, normal].mean())
        slab = np.abs(coords[..., normal] - depth) <= self._thickness_along(normal) / 2.0
        near, _ = cKDTree(points[:, in_plane]).query(coords[slab][:, in_plane])
        hit = np.zeros(slab.shape, bool)
        hit[slab] = near <= stroke.radius_mm
        return self._apply(box, np.where(hit, value, self._array[box]))

    def include_seed(self, point_lps_mm, *, radius_mm: float = 15.0, tolerance_sd: float = 2.5,
                     value: int = 1) -> tuple[slice, ...] | None:
        """Add the region connected to the click whose intensity matches the click's
        neighbourhood (mean +- tolerance_sd SD), within `radius_mm`."""
        found = self._local_region(point_lps_mm, radius_mm, tolerance_sd)
        if found is None:
            return None
        box, region = found
        return self._apply(box, np.where(region, value, self._array[box]))

    def exclude_seed(self, point_lps_mm, *, radius_mm: float = 15.0,
                     tolerance_sd: float = 2.5) -> tuple[slice, ...] | None:
        """Remove the labelled region connected to the click that matches its intensity."""
        found = self._local_region(point_lps_mm, radius_mm, tolerance_sd)
        if found is None:
            return None
        box, region = found
        return self._apply(box, np.where(region, 0, self._array[box]))

    def replace(self, mask: sitk.Image) -> tuple[slice, ...] | None:
        """Take a whole new map (e.g. after a lesion merge/split); only the changed box is kept."""
        new = sitk.GetArrayViewFromImage(mask)
        changed = new != self._array
        if not changed.any():
            return None
        box = bbox(changed)
        return self._apply(box, np.array(new[box], dtype=self._array.dtype))

    # --- history --------------------------------------------------------------------------------
    def undo(self) -> bool:
        if not self._undo:
            return False
        patch = self._undo.pop()
        self._array[patch.box] = patch.before
        self._redo.append(patch)
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        patch = self._redo.pop()
        self._array[patch.box] = patch.after
        self._undo.append(patch)
        return True

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    # --- internals ------------------------------------------------------------------------------
    def _apply(self, box, new: np.ndarray) -> tuple[slice, ...] | None:
        new = new.astype(self._array.dtype)
        before = self._array[box]
        if np.array_equal(before, new):
            return None
        self._undo.append(_Patch(box, before.copy(), new))
        del self._undo[:-self._history]
        self._redo.clear()
        self._array[box] = new
        return box

    def _box_around(self, points_lps: np.ndarray, radius_mm: float) -> tuple[slice, ...] | None:
        idx = lps_to_index(self.image, points_lps)
        lo = np.floor(idx.min(axis=0)).astype(int)
        hi = np.ceil(idx.max(axis=0)).astype(int) + 1
        box = widen(tuple(slice(int(a), int(b)) for a, b in zip(lo, hi)), radius_mm,
                    self.spacing, self._array.shape)
        return None if any(b.start >= b.stop for b in box) else box

    def _lps_of_box(self, box) -> np.ndarray:
        grid = np.stack(np.meshgrid(*[np.arange(b.start, b.stop) for b in box], indexing="ij"), -1)
        return index_to_lps(self.image, grid.reshape(-1, 3)).reshape(grid.shape)

    def _thickness_along(self, lps_axis: int) -> float:
        """Voxel extent along an LPS axis (the brush is one slice thick in the viewed plane)."""
        d = np.abs(np.array(self.image.GetDirection()).reshape(3, 3))
        return float(d[lps_axis] @ np.asarray(self.image.GetSpacing()))

    def _local_region(self, point_lps_mm, radius_mm, tolerance_sd):
        zyx = np.round(lps_to_index(self.image, point_lps_mm)[0]).astype(int)
        if np.any(zyx < 0) or np.any(zyx >= self._array.shape):
            return None
        box = widen(tuple(slice(int(i), int(i) + 1) for i in zyx), radius_mm, self.spacing,
                    self._array.shape)
        raw = np.asarray(self._hu[box], np.float32)
        a = ndi.gaussian_filter(raw, [1.0 / s for s in self.spacing])
        local = tuple(int(i - b.start) for i, b in zip(zyx, box))
        near = tuple(slice(max(0, i - 2), i + 3) for i in local)
        # Compare the denoised image with the click's mean, within the raw noise (the tissue's
        # own spread), so the tolerance adapts to the scan.
        mean, sd = float(a[near].mean()), max(float(raw[near].std()), 1.0)
        coords = self._lps_of_box(box)
        ball = ((coords - np.asarray(point_lps_mm, float)) ** 2).sum(-1) <= radius_mm ** 2
        similar = ball & (np.abs(a - mean) <= tolerance_sd * sd)
        labels, _ = ndi.label(similar)
        if not labels[local]:
            return None
        return box, labels == labels[local]


def _densify(points: np.ndarray, step_mm: float) -> np.ndarray:
    """The polyline through `points` sampled every `step_mm` (so fast strokes leave no gaps)."""
    points = np.atleast_2d(points)
    out = [points[0]]
    for a, b in zip(points[:-1], points[1:]):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / max(step_mm, 1e-3))))
        out.extend(a + (b - a) * t for t in np.linspace(0, 1, n + 1)[1:])
    return np.array(out)
