"""Surface meshes of label images, in patient coordinates (LPS, mm).

One place turns masks into meshes for the 3D view, the ICG surface map and the exported models.
"""

from __future__ import annotations

import numpy as np
import pyvista as pv
import SimpleITK as sitk
from skimage.measure import marching_cubes

from liverplan.geometry import index_to_lps, without_cavities


def mask_to_mesh(mask: sitk.Image, *, label: int | None = None, smooth_iterations: int = 20,
                 target_faces: int | None = None) -> pv.PolyData:
    """Closed outer surface of `mask != 0` (or `== label`) with vertices in LPS mm.

    The mask is padded by one voxel so the surface is watertight even where the structure
    touches the image border. Taubin smoothing keeps the volume (no shrinkage of small lesions).
    """
    a = sitk.GetArrayViewFromImage(mask)
    binary = (a != 0) if label is None else (a == label)
    if not binary.any():
        return pv.PolyData()
    nz = np.nonzero(binary)
    lo = np.maximum(np.min(nz, axis=1) - 1, 0)
    hi = np.max(nz, axis=1) + 2
    # cavities would be surfaces inside the organ (the ICG map took them for capsule)
    crop = np.pad(without_cavities(binary[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]),
                  1).astype(np.float32)
    verts, faces, _, _ = marching_cubes(crop, level=0.5)
    points = index_to_lps(mask, verts + lo - 1)
    mesh = pv.PolyData(points, np.hstack([np.full((len(faces), 1), 3), faces]).ravel())
    if smooth_iterations:
        mesh = mesh.smooth_taubin(n_iter=smooth_iterations, pass_band=0.1)
    if target_faces and mesh.n_cells > target_faces:
        mesh = mesh.decimate(1.0 - target_faces / mesh.n_cells)  # quadric: stays closed
    return mesh.compute_normals(auto_orient_normals=True, split_vertices=False)
