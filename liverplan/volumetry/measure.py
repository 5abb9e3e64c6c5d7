"""Volumetry: liver, tumour and functional volumes (mL) and the per-lesion table.

All figures come from the voxel geometry (spacing and direction), never from voxel counts alone:
1 mL = 1000 mm^3. Diameters are measured in LPS mm between voxel centres plus one voxel's width
along the measured direction, so a lesion of d mm measures d mm (within about a voxel) on any
anisotropic or oblique grid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError, cKDTree
from scipy.spatial.distance import pdist

from liverplan.geometry import (index_to_lps, mask_volume_ml, same_grid, voxel_volume_ml,
                                without_cavities)
from liverplan.volumetry.liver import bbox


@dataclass(frozen=True)
class Lesion:
    id: int
    volume_ml: float
    diameter_mm: float             # maximal 3D diameter
    axial_diameter_mm: float       # maximal diameter within one axial slice (RECIST-like)
    centroid_lps_mm: tuple[float, float, float]
    depth_mm: float                # lesion surface to liver surface (0 = reaches the capsule)
    segment: int | None = None     # Couinaud segment holding most of the lesion, once known

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Lesion":
        return cls(**{**d, "centroid_lps_mm": tuple(d["centroid_lps_mm"])})


@dataclass(frozen=True)
class Volumetry:
    total_liver_ml: float          # the whole liver, tumours and intrahepatic vessels included
    tumor_ml: float
    functional_liver_ml: float     # total liver minus tumours
    lesions: tuple[Lesion, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {"total_liver_ml": self.total_liver_ml, "tumor_ml": self.tumor_ml,
                "functional_liver_ml": self.functional_liver_ml,
                "lesions": [lesion.to_dict() for lesion in self.lesions]}

    @classmethod
    def from_dict(cls, d: dict) -> "Volumetry":
        return cls(d["total_liver_ml"], d["tumor_ml"], d["functional_liver_ml"],
                   tuple(Lesion.from_dict(x) for x in d["lesions"]))


def measure(liver: sitk.Image, tumors: sitk.Image, segments: sitk.Image | None = None) -> Volumetry:
    """Volumes and the lesion table. Tumour voxels outside the liver mask still count as liver
    (a lesion is part of the organ to be resected), so total = liver mask | tumours."""
    for other in (tumors, segments):
        if other is not None and not same_grid(liver, other):
            raise ValueError("liver, tumour and segment maps must share one grid")
    t = sitk.GetArrayViewFromImage(tumors)
    whole = (sitk.GetArrayViewFromImage(liver) > 0) | (t > 0)
    total_ml = np.count_nonzero(whole) * voxel_volume_ml(liver)
    tumor_ml = mask_volume_ml(tumors)
    return Volumetry(total_ml, tumor_ml, total_ml - tumor_ml,
                     tuple(measure_lesions(whole, tumors, segments)))


def measure_lesions(whole_liver: np.ndarray, tumors: sitk.Image,
                    segments: sitk.Image | None = None) -> list[Lesion]:
    t = sitk.GetArrayViewFromImage(tumors)
    ids = [int(i) for i in np.unique(t) if i > 0]
    if not ids:
        return []
    # Depth: nearest voxel just outside the liver, as a KD-tree of LPS points (cheaper than a
    # distance map of the whole liver). A cavity in the mask is no capsule (full-size synthetic
    # patient, seed 0: a 27 mm deep lesion read 0 mm through a 2-voxel pocket in its core).
    box = tuple(slice(max(0, b.start - 1), b.stop + 1) for b in bbox(whole_liver))
    liver = without_cavities(whole_liver[box])
    outside = ndi.binary_dilation(liver) & ~liver
    capsule = cKDTree(index_to_lps(tumors, np.argwhere(outside) + [b.start for b in box]))
    seg = sitk.GetArrayViewFromImage(segments) if segments is not None else None
    vox_ml = voxel_volume_ml(tumors)
    lesions = []
    objects = ndi.find_objects(t)
    for lesion_id in ids:
        sl = objects[lesion_id - 1]
        m = t[sl] == lesion_id
        zyx = np.argwhere(m) + [s.start for s in sl]
        centroid = index_to_lps(tumors, zyx.mean(axis=0))[0]
        surface = zyx[_surface(m)[m]]
        depth = _depth_mm(tumors, capsule, index_to_lps(tumors, surface))
        lesions.append(Lesion(lesion_id, float(m.sum() * vox_ml), _diameter_mm(tumors, surface),
                              _axial_diameter_mm(tumors, surface),
                              tuple(float(c) for c in centroid),
                              depth, _segment(seg, sl, m)))
    return lesions


def _depth_mm(image: sitk.Image, capsule: cKDTree, surface_lps: np.ndarray) -> float:
    """Nearest lesion-surface voxel to first-outside voxel, centre to centre, minus one voxel's
    width along that direction (half a voxel to each of the two surfaces)."""
    dist, idx = capsule.query(surface_lps)
    k = int(np.argmin(dist))
    u = (capsule.data[idx[k]] - surface_lps[k]) / dist[k]
    return max(0.0, float(dist[k]) - _voxel_width_mm(image, u, [0, 1, 2]))


def _surface(m: np.ndarray) -> np.ndarray:
    """Voxels of `m` with a 6-neighbour outside it (they carry every extreme corner)."""
    return m & ~ndi.binary_erosion(m, border_value=0)


def _segment(seg: np.ndarray | None, sl, m: np.ndarray) -> int | None:
    if seg is None:
        return None
    values = seg[sl][m]
    values = values[values > 0]
    return int(np.bincount(values).argmax()) if values.size else None


def _diameter_mm(image: sitk.Image, zyx: np.ndarray) -> float:
    """Maximal 3D diameter in LPS mm."""
    return _max_distance(image, zyx, [0, 1, 2])


def _axial_diameter_mm(image: sitk.Image, zyx: np.ndarray) -> float:
    """Largest in-slice diameter over the axial slices (array axis 0 = the slice axis)."""
    return max(_max_distance(image, zyx[zyx[:, 0] == z], [1, 2]) for z in np.unique(zyx[:, 0]))


def _max_distance(image: sitk.Image, zyx: np.ndarray, dims: list[int]) -> float:
    """The farthest pair of voxel centres, plus one voxel's width along that pair's direction
    (the lesion extends half a voxel beyond each centre). The hull is taken in index space over
    `dims` (the in-plane axes for a slice); an affine map to LPS keeps its vertices."""
    points = index_to_lps(image, _hull_vertices(zyx, dims))
    if len(points) < 2:
        return _voxel_width_mm(image, None, dims)
    d = pdist(points)
    k = int(np.argmax(d))
    i, j = _pair_index(k, len(points))
    u = (points[j] - points[i]) / d[k]
    return float(d[k] + _voxel_width_mm(image, u, dims))


def _voxel_width_mm(image: sitk.Image, u: np.ndarray | None, dims: list[int]) -> float:
    """Width of one voxel along the unit LPS vector `u` (its smallest edge when u is None)."""
    edges = np.array(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    edges = edges[:, [2 - a for a in dims]]                 # array axes (z, y, x) -> ITK (x, y, z)
    if u is None:
        return float(np.linalg.norm(edges, axis=0).min())
    return float(np.abs(u @ edges).sum())


def _pair_index(k: int, n: int) -> tuple[int, int]:
    """(i, j) of the k-th entry of a condensed pdist matrix over n points."""
    i = int(n - 2 - np.floor(np.sqrt(-8 * k + 4 * n * (n - 1) - 7) / 2.0 - 0.5))
    j = int(k + i + 1 - n * (n - 1) // 2 + (n - i) * ((n - i) - 1) // 2)
    return i, j


def _hull_vertices(points: np.ndarray, dims: list[int]) -> np.ndarray:
    try:
        return points[ConvexHull(points[:, dims]).vertices]
    except QhullError:                # collinear/coplanar centres (a thin lesion): keep them all
        return points
