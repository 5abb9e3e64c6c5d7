"""Display orientation through LPS: radiological convention for any direction matrix."""

import numpy as np
import pytest
import SimpleITK as sitk

from liverplan.viewers.reslice import (AXIAL, CORONAL, PLANES, SAGITTAL, DisplayVolume,
                                       blend_labels, orientation_letter, outline, window_to_uint8)

# Direction matrices (columns = LPS direction of voxel axes i, j, k).
IDENTITY = np.eye(3)
FLIPPED = np.diag([-1.0, -1.0, 1.0])                    # i towards R, j towards A (RAS-stored)
CORONAL_ACQ = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float)   # j -> I, k -> P
C, S = np.cos(np.radians(12)), np.sin(np.radians(12))
OBLIQUE = np.array([[C, -S, 0], [S, C, 0], [0, 0, 1]])  # 12 degrees in-plane tilt


def marker_image(direction, spacing=(0.7, 0.9, 2.5), size=(40, 30, 20)):
    """A volume whose value at each voxel encodes the voxel's LPS position in mm:
    value = 1000 + round(x) where x is LPS x (positive = patient left)."""
    image = sitk.Image(size, sitk.sitkInt16)
    image.SetSpacing(spacing)
    image.SetOrigin((-10.0, 5.0, 30.0))
    image.SetDirection(tuple(np.asarray(direction, float).ravel()))
    ii, jj, kk = np.meshgrid(*[np.arange(n) for n in size], indexing="ij")
    ijk = np.stack([ii, jj, kk], -1).reshape(-1, 3) * np.asarray(spacing)
    lps = np.asarray(image.GetOrigin()) + ijk @ np.asarray(direction, float).T
    values = np.zeros(size[::-1], np.int16)
    idx = np.stack([kk, jj, ii], -1).reshape(-1, 3)
    values[idx[:, 0], idx[:, 1], idx[:, 2]] = np.rint(lps[:, 0]).astype(np.int16)
    out = sitk.GetImageFromArray(values)
    out.CopyInformation(image)
    return out, lps


@pytest.mark.parametrize("direction", [IDENTITY, FLIPPED, CORONAL_ACQ, OBLIQUE])
def test_screen_labels_are_radiological_for_any_direction(direction):
    vol = DisplayVolume(marker_image(direction)[0])
    assert vol.screen_labels(AXIAL).__dict__ == dict(left="R", right="L", top="A", bottom="P")
    assert vol.screen_labels(CORONAL).__dict__ == dict(left="R", right="L", top="S", bottom="I")
    assert vol.screen_labels(SAGITTAL).__dict__ == dict(left="A", right="P", top="S", bottom="I")


@pytest.mark.parametrize("direction", [IDENTITY, FLIPPED, CORONAL_ACQ])
@pytest.mark.parametrize("plane", [AXIAL, CORONAL])
def test_patient_right_is_on_the_screen_left(direction, plane):
    """Pixel values are LPS x: they must grow from the screen's left edge to its right edge."""
    vol = DisplayVolume(marker_image(direction)[0])
    sl = vol.slice(plane, vol.n_slices(plane) // 2).astype(float)
    assert np.all(np.diff(sl, axis=1) >= 0) and sl[:, -1].mean() > sl[:, 0].mean()


@pytest.mark.parametrize("direction", [IDENTITY, FLIPPED, CORONAL_ACQ, OBLIQUE])
def test_display_position_round_trips_through_lps(direction):
    image, _ = marker_image(direction)
    vol = DisplayVolume(image)
    for plane in PLANES:
        rows, cols = vol.slice_shape(plane)
        x, y, s = 3.0, rows - 2.0, vol.n_slices(plane) - 3.0
        lps = vol.display_to_lps(plane, x, y, s)
        assert np.allclose(vol.lps_to_display(plane, lps), (x, y, s))
        # The value shown at that display pixel is the original image's value at that point.
        shown = vol.slice(plane, int(s))[int(y), int(x)]
        original = image.GetPixel(image.TransformPhysicalPointToIndex(tuple(lps)))
        assert shown == original == vol.value_at(lps)


def test_pixel_spacing_follows_the_plane():
    vol = DisplayVolume(marker_image(IDENTITY, spacing=(0.7, 0.9, 2.5))[0])
    assert vol.pixel_spacing(AXIAL) == (0.7, 0.9)
    assert vol.pixel_spacing(CORONAL) == (0.7, 2.5)
    assert vol.pixel_spacing(SAGITTAL) == (0.9, 2.5)
    # Coronal acquisition: the slice axis k is anterior-posterior, spacing follows the axes.
    vol = DisplayVolume(marker_image(CORONAL_ACQ, spacing=(0.7, 0.9, 2.5))[0])
    assert vol.pixel_spacing(AXIAL) == (0.7, 2.5)
    assert vol.pixel_spacing(CORONAL) == (0.7, 0.9)


def test_superior_is_at_the_top_of_coronal_and_sagittal():
    image = sitk.Image((8, 9, 10), sitk.sitkInt16)
    z = np.arange(10, dtype=np.int16)[:, None, None] * np.ones((10, 9, 8), np.int16)
    image = sitk.GetImageFromArray(z)       # value = k, k grows towards S
    vol = DisplayVolume(image)
    for plane in (CORONAL, SAGITTAL):
        sl = vol.slice(plane, 4)
        assert sl[0, 0] == 9 and sl[-1, 0] == 0


def test_orientation_letter():
    assert orientation_letter((0.9, 0.1, 0)) == "L"
    assert orientation_letter((-0.9, 0.1, 0)) == "R"
    assert orientation_letter((0.1, -0.8, 0.3)) == "A"
    assert orientation_letter((0, 0.2, -0.7)) == "I"


def test_window_to_uint8_maps_the_window_edges():
    w = window_to_uint8(np.array([-1000, -150, 50, 250, 2000]), 400, 50)
    assert w.tolist() == [0, 0, 127, 255, 255]


def test_outline_and_blend():
    labels = np.zeros((7, 7), np.uint8)
    labels[2:5, 2:5] = 1
    edge = outline(labels)
    assert edge.sum() == 8 and not edge[3, 3]
    rgb = np.full((7, 7, 3), 100, np.float32)
    lut = np.array([[0, 0, 0, 0], [1, 0, 0, 1]], np.float32)
    blend_labels(rgb, labels, lut, 0.5, outline_only=False)
    assert rgb[3, 3].tolist() == [177.5, 50, 50] and rgb[0, 0].tolist() == [100, 100, 100]
