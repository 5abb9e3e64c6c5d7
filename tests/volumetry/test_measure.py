"""Volumetry against analytic phantoms on anisotropic and oblique grids."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from liverplan.geometry import image_from_array, index_to_lps
from liverplan.volumetry.measure import Lesion, Volumetry, measure

SPACING = (0.7, 0.8, 2.0)   # x, y, z mm


def _grid(size=(100, 90, 40), spacing=SPACING, direction=None):
    ref = sitk.Image(size, sitk.sitkUInt8)
    ref.SetSpacing(spacing)
    ref.SetOrigin((-30.0, 12.0, 100.0))
    if direction is not None:
        ref.SetDirection(direction)
    return ref


def _lps(ref):
    n = np.prod(ref.GetSize())
    zyx = np.argwhere(np.ones(tuple(reversed(ref.GetSize())), bool))
    return index_to_lps(ref, zyx).reshape(*reversed(ref.GetSize()), 3), n


def test_box_volume_is_exact_on_an_anisotropic_grid():
    ref = _grid()
    a = np.zeros(tuple(reversed(ref.GetSize())), np.uint8)
    a[5:25, 10:60, 20:70] = 1                                 # 20 x 50 x 50 voxels
    liver = image_from_array(a, ref)
    v = measure(liver, image_from_array(np.zeros_like(a, np.uint16), ref))
    assert v.total_liver_ml == pytest.approx(20 * 2.0 * 50 * 0.8 * 50 * 0.7 / 1000)
    assert v.tumor_ml == 0 and v.lesions == ()
    assert v.functional_liver_ml == v.total_liver_ml


@pytest.mark.parametrize("direction", [None, (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)])
def test_sphere_lesion_in_a_box_liver(direction):
    ref = _grid(direction=direction)
    p, _ = _lps(ref)
    centre = index_to_lps(ref, np.array([20.0, 45.0, 50.0]))[0]
    r_mm = 11.0   # no voxel centre lies exactly on the sphere
    d = np.linalg.norm(p - centre, axis=-1)
    liver = np.zeros(d.shape, np.uint8)
    liver[2:38, 5:85, 5:95] = 1
    tumors = (d <= r_mm).astype(np.uint16)
    v = measure(image_from_array(liver, ref), image_from_array(tumors, ref))
    (lesion,) = v.lesions
    sphere_ml = 4 / 3 * np.pi * r_mm ** 3 / 1000
    assert lesion.id == 1
    assert lesion.volume_ml == pytest.approx(sphere_ml, rel=0.05)
    assert v.tumor_ml == pytest.approx(lesion.volume_ml)
    assert v.functional_liver_ml == pytest.approx(v.total_liver_ml - v.tumor_ml)
    # Diameters within about a voxel of 22 mm (voxels 0.7 x 0.8 x 2 mm).
    assert lesion.diameter_mm == pytest.approx(2 * r_mm, abs=1.5)
    assert lesion.axial_diameter_mm == pytest.approx(2 * r_mm, abs=1.0)
    assert np.allclose(lesion.centroid_lps_mm, centre, atol=0.5)
    # Depth: the nearest liver face along z lies 2 mm * (38 - 0.5 - 20) = 35 mm from the centre,
    # the in-plane faces farther; depth = that distance minus the radius.
    faces_mm = [(38 - 0.5 - 20) * 2.0, (20 + 0.5 - 2) * 2.0, (45 - 4.5) * 0.8, (84.5 - 45) * 0.8,
                (50 - 4.5) * 0.7, (94.5 - 50) * 0.7]
    assert lesion.depth_mm == pytest.approx(min(faces_mm) - r_mm, abs=1.0)
    assert lesion.segment is None


def test_lesion_at_the_capsule_has_zero_depth_and_takes_its_segment():
    ref = _grid()
    shape = tuple(reversed(ref.GetSize()))
    liver = np.zeros(shape, np.uint8)
    liver[5:30, 10:80, 10:90] = 1
    segments = np.zeros(shape, np.uint8)
    segments[liver > 0] = 7
    segments[:, :, 50:][liver[:, :, 50:] > 0] = 8
    tumors = np.zeros(shape, np.uint16)
    tumors[10:15, 10:20, 60:75] = 1          # touches the y = 10 face, inside segment 8
    tumors[15:20, 40:50, 12:20] = 2          # segment 7
    v = measure(image_from_array(liver, ref), image_from_array(tumors, ref),
                image_from_array(segments, ref))
    assert v.lesions[0].depth_mm == pytest.approx(0.0, abs=1e-6)
    assert v.lesions[1].depth_mm == pytest.approx((12 - 10) * 0.7, abs=1e-6)   # 2 liver voxels
    assert [x.segment for x in v.lesions] == [8, 7]


def test_tumour_outside_the_liver_mask_still_counts_as_liver():
    ref = _grid()
    shape = tuple(reversed(ref.GetSize()))
    liver = np.zeros(shape, np.uint8)
    liver[5:30, 10:80, 10:90] = 1
    tumors = np.zeros(shape, np.uint16)
    tumors[10:15, 5:15, 30:40] = 1           # half outside the liver mask
    v = measure(image_from_array(liver, ref), image_from_array(tumors, ref))
    voxel_ml = np.prod(SPACING) / 1000
    assert v.total_liver_ml == pytest.approx(np.count_nonzero(liver | (tumors > 0)) * voxel_ml)
    assert v.functional_liver_ml == pytest.approx(v.total_liver_ml - 5 * 10 * 10 * voxel_ml)


def test_round_trip_through_dict():
    v = Volumetry(1500.0, 12.5, 1487.5, (Lesion(1, 12.5, 30.0, 28.0, (1.0, 2.0, 3.0), 4.5, 6),))
    assert Volumetry.from_dict(v.to_dict()) == v


def test_maps_on_different_grids_are_refused():
    a = _grid()
    b = _grid(spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="grid"):
        measure(a, sitk.Cast(b, sitk.sitkUInt16))
