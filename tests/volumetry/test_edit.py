"""Hand corrections: brush/eraser in the three planes, seed include/exclude, local undo/redo."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from liverplan.geometry import image_from_array, index_to_lps, lps_to_index
from liverplan.volumetry.edit import MaskEditor, Stroke

SHAPE = (40, 80, 90)     # z, y, x


def _scene(direction=None):
    """CT with a 120 HU block (the organ) in 0 HU; the mask covers only its left part."""
    a = np.zeros(SHAPE)
    a[10:30, 20:60, 20:70] = 120
    a = (a + np.random.default_rng(0).normal(0, 8, SHAPE)).astype(np.int16)   # CT noise
    ref = sitk.Image(SHAPE[::-1], sitk.sitkInt16)
    ref.SetSpacing((0.7, 0.7, 2.5))
    ref.SetOrigin((-40.0, 20.0, -100.0))
    if direction is not None:
        ref.SetDirection(direction)
    image = image_from_array(a, ref)
    mask = np.zeros(SHAPE, np.uint8)
    mask[10:30, 20:60, 20:45] = 1
    return image, image_from_array(mask, image)


def _point(image, zyx):
    return index_to_lps(image, np.array(zyx, float))[0]


@pytest.mark.parametrize("plane,normal_axis", [("axial", 0), ("coronal", 1), ("sagittal", 2)])
def test_brush_paints_a_disc_in_its_plane_only(plane, normal_axis):
    image, mask = _scene()
    editor = MaskEditor(image, sitk.Cast(mask * 0, sitk.sitkUInt8))
    centre = _point(image, (20, 40, 45))
    box = editor.paint(Stroke([centre], radius_mm=5.0, plane=plane), value=1)
    painted = np.argwhere(editor.array > 0)
    assert len(painted) > 0
    # One voxel thick along the plane's normal, a disc of <= 5 mm radius within the plane.
    assert len(np.unique(painted[:, normal_axis])) == 1
    lps = index_to_lps(image, painted)
    assert np.linalg.norm(lps - centre, axis=1).max() <= 5.0 + 1e-6
    # Only a box around the brush was processed (+1 voxel margin each side).
    assert all(b.stop - b.start <= 2 * 5.0 / s + 5 for b, s in zip(box, (2.5, 0.7, 0.7)))


def test_stroke_is_continuous_between_distant_points():
    image, mask = _scene()
    editor = MaskEditor(image, mask)
    p0, p1 = _point(image, (20, 30, 50)), _point(image, (20, 30, 85))     # 24.5 mm apart
    editor.paint(Stroke([p0, p1], radius_mm=2.0, plane="axial"), value=1)
    assert editor.array[20, 30, 50:86].all()


def test_eraser_undo_redo_restore_exact_states():
    image, mask = _scene()
    editor = MaskEditor(image, mask)
    original = editor.array.copy()
    editor.paint(Stroke([_point(image, (20, 40, 30))], radius_mm=6.0, plane="coronal"), value=0)
    erased = editor.array.copy()
    assert erased.sum() < original.sum()
    assert editor.undo() and np.array_equal(editor.array, original)
    assert editor.redo() and np.array_equal(editor.array, erased)
    assert not editor.redo()
    # The history holds only the changed box, not the volume.
    patch = editor._undo[-1]
    assert patch.before.size < original.size / 50


def test_include_seed_grows_into_similar_tissue_only():
    image, mask = _scene()
    editor = MaskEditor(image, mask)
    editor.include_seed(_point(image, (20, 40, 55)), radius_mm=30.0)
    a = editor.array
    assert a[20, 40, 55] == 1 and a[20, 40, 68] == 1          # the missing half of the organ
    assert a[20, 40, 72] == 0 and a[20, 10, 55] == 0           # not the 0 HU surroundings
    assert a[5].sum() == 0


def test_exclude_seed_removes_the_clicked_region():
    image, mask = _scene()
    editor = MaskEditor(image, mask)
    editor.exclude_seed(_point(image, (20, 40, 30)), radius_mm=10.0)
    a = editor.array
    assert a[20, 40, 30] == 0
    assert a[20, 40, 44] == 1 or np.linalg.norm(
        (index_to_lps(image, np.array([20, 40, 44.0])) - _point(image, (20, 40, 30)))) <= 10.0
    assert editor.undo() and editor.array[20, 40, 30] == 1


def test_replace_records_only_the_changed_box():
    image, mask = _scene()
    editor = MaskEditor(image, sitk.Cast(mask, sitk.sitkUInt16))
    new = sitk.GetArrayFromImage(mask).astype(np.uint16)
    new[12:14, 22:25, 22:26] = 2
    box = editor.replace(image_from_array(new, image))
    assert [(b.start, b.stop) for b in box] == [(12, 14), (22, 25), (22, 26)]
    assert editor.mask.GetPixelID() == sitk.sitkUInt16
    assert np.array_equal(sitk.GetArrayFromImage(editor.mask), new)


def test_oblique_grid_keeps_the_brush_in_patient_space():
    c, s = np.cos(0.3), np.sin(0.3)
    image, mask = _scene(direction=(c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    editor = MaskEditor(image, sitk.Cast(mask * 0, sitk.sitkUInt8))
    centre = _point(image, (20, 40, 45))
    editor.paint(Stroke([centre], radius_mm=4.0, plane="axial"), value=1)
    lps = index_to_lps(image, np.argwhere(editor.array > 0))
    assert np.abs(lps[:, 2] - centre[2]).max() < 1.3             # one slice (2.5 mm) thick
    assert np.linalg.norm(lps[:, :2] - centre[:2], axis=1).max() <= 4.0 + 1e-6
    assert np.allclose(lps_to_index(image, centre), [[20, 40, 45]])
