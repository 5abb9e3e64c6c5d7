"""One geometry: SimpleITK images in DICOM patient space (LPS, mm).

Helpers that keep masks on their reference grid; numpy arrays are (z, y, x).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

_TOL = 1e-4


def same_grid(a: sitk.Image, b: sitk.Image, tol: float = _TOL) -> bool:
    """True if both images share size, origin, spacing and direction."""
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol)
            and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=tol))


def image_from_array(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A (z, y, x) array as an image on `reference`'s grid."""
    if array.shape != tuple(reversed(reference.GetSize())):
        raise ValueError(f"array shape {array.shape} does not match the reference grid "
                         f"{tuple(reversed(reference.GetSize()))}")
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def blank_image(reference: sitk.Image, dtype=np.uint8) -> sitk.Image:
    """An all-zero image of `dtype` on `reference`'s grid (an empty mask or label map)."""
    return image_from_array(np.zeros(tuple(reversed(reference.GetSize())), dtype), reference)


def voxel_volume_ml(image: sitk.Image) -> float:
    """Volume of one voxel in mL."""
    return spacing_volume_ml(image.GetSpacing())


def spacing_volume_ml(spacing_mm) -> float:
    """Volume in mL of one voxel of this spacing (mm, any axis order; 1 mL = 1000 mm^3), for
    the stages that work on arrays."""
    return float(np.prod(spacing_mm)) / 1000.0


def mask_volume_ml(mask: sitk.Image, label: int | None = None) -> float:
    """Volume of the non-zero voxels (or of `label`) in mL."""
    a = sitk.GetArrayViewFromImage(mask)
    n = np.count_nonzero(a if label is None else a == label)
    return n * voxel_volume_ml(mask)


def without_cavities(mask: np.ndarray) -> np.ndarray:
    """`mask` (bool) with its cavities filled: the background not face-connected to the array's
    border. An organ's surface is its outer surface; a few voxels a mask leaves out inside it
    (dark noise in a tumour's core) are no capsule."""
    background, _ = ndi.label(~np.pad(mask.astype(bool), 1))
    return (background != background[0, 0, 0])[1:-1, 1:-1, 1:-1]


def index_to_lps(image: sitk.Image, zyx: np.ndarray) -> np.ndarray:
    """Continuous (z, y, x) array indices (N, 3) to LPS points in mm (N, 3)."""
    zyx = np.atleast_2d(np.asarray(zyx, dtype=float))
    ijk = zyx[:, ::-1]
    d = np.array(image.GetDirection()).reshape(3, 3)
    return np.asarray(image.GetOrigin()) + (ijk * np.asarray(image.GetSpacing())) @ d.T


def lps_to_index(image: sitk.Image, points_mm: np.ndarray) -> np.ndarray:
    """LPS points in mm (N, 3) to continuous (z, y, x) array indices (N, 3)."""
    p = np.atleast_2d(np.asarray(points_mm, dtype=float)) - np.asarray(image.GetOrigin())
    d = np.array(image.GetDirection()).reshape(3, 3)
    ijk = (p @ d) / np.asarray(image.GetSpacing())
    return ijk[:, ::-1]
