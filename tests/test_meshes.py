import numpy as np
import SimpleITK as sitk

from liverplan.geometry import image_from_array, index_to_lps
from liverplan.meshes import mask_to_mesh


def _sphere_mask(radius_mm, spacing, direction, origin=(10.0, -20.0, 5.0)):
    ref = sitk.Image([64, 64, 40], sitk.sitkUInt8)
    ref.SetSpacing(spacing)
    ref.SetOrigin(origin)
    ref.SetDirection(direction)
    centre = np.array(ref.TransformContinuousIndexToPhysicalPoint((32, 32, 20)))
    idx = np.indices(tuple(reversed(ref.GetSize()))).reshape(3, -1).T  # (z, y, x)
    pts = index_to_lps(ref, idx)
    inside = (np.linalg.norm(pts - centre, axis=1) <= radius_mm).reshape(tuple(reversed(ref.GetSize())))
    return image_from_array(inside.astype(np.uint8), ref), centre


def test_sphere_mesh_is_closed_in_lps_with_the_right_volume():
    c, s = np.cos(0.3), np.sin(0.3)
    direction = (c, -s, 0, s, c, 0, 0, 0, 1)  # oblique: the mesh must follow the direction matrix
    mask, centre = _sphere_mask(20.0, (0.8, 0.8, 1.5), direction)
    mesh = mask_to_mesh(mask)
    assert mesh.n_open_edges == 0
    assert np.allclose(mesh.center, centre, atol=0.5)
    true_ml = 4 / 3 * np.pi * 20.0**3 / 1000
    assert abs(mesh.volume / 1000 - true_ml) / true_ml < 0.03


def test_the_surface_is_the_outer_one_a_cavity_adds_none():
    mask, centre = _sphere_mask(20.0, (0.8, 0.8, 1.5), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    solid = mask_to_mesh(mask)
    a = sitk.GetArrayFromImage(mask)
    a[18:22, 30:34, 30:34] = 0                          # a pocket of 64 voxels in the middle
    holed = mask_to_mesh(image_from_array(a, mask))
    assert holed.connectivity().point_data["RegionId"].max() == 0     # one surface
    assert holed.n_points == solid.n_points and abs(holed.volume - solid.volume) < 1e-6


def test_decimation_keeps_the_surface_closed_and_small():
    mask, _ = _sphere_mask(20.0, (0.8, 0.8, 1.5), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    mesh = mask_to_mesh(mask, target_faces=2000)
    assert mesh.n_cells <= 2200
    assert mesh.n_open_edges == 0


def test_empty_mask_gives_an_empty_mesh():
    ref = sitk.Image([8, 8, 8], sitk.sitkUInt8)
    assert mask_to_mesh(ref).n_points == 0
