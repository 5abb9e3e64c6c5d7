"""Left/right safety of the report pictures: a structure on the patient's left must appear where
a reader expects it (3D anterior view: image right; posterior view: image left; axial slices in
the radiological convention: image right)."""

import numpy as np
import pytest
import SimpleITK as sitk

from liverplan.case import LIVER, TUMORS
from liverplan.geometry import image_from_array, index_to_lps
from liverplan.io import report_figures


def _scene(direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)):
    ref = sitk.Image([40, 40, 20], sitk.sitkInt16)
    ref.SetSpacing((2.0, 2.0, 3.0))
    ref.SetDirection(direction)
    ref.SetOrigin(-np.array(direction).reshape(3, 3) @ (np.array([20.0, 20.0, 10.0]) * (2, 2, 3)))
    shape = tuple(reversed(ref.GetSize()))
    pts = index_to_lps(ref, np.indices(shape).reshape(3, -1).T).reshape(*shape, 3)
    liver = np.linalg.norm(pts / (30, 25, 25), axis=-1) <= 1
    lesion = np.linalg.norm(pts - (18, -5, 0), axis=-1) <= 8      # on the patient's LEFT (+x)
    ct = image_from_array(np.where(liver, 60, -100).astype(np.int16), ref)
    labels = {LIVER: image_from_array(liver.astype(np.uint8), ref),
              TUMORS: image_from_array(lesion.astype(np.uint16), ref)}
    return ct, labels


def _yellow_columns(image):
    r, g, b = (image[..., i].astype(int) for i in range(3))
    yellow = (r > 180) & (g > 150) & (b < 90)
    return np.nonzero(yellow)[1]


def test_3d_views_put_the_patients_left_where_a_reader_expects_it():
    _, labels = _scene()
    anterior, posterior = report_figures.snapshots(labels)[:2]
    w = anterior.image.shape[1]
    assert np.median(_yellow_columns(anterior.image)) > w / 2      # facing the patient
    assert np.median(_yellow_columns(posterior.image)) < w / 2     # behind the patient


@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1),
                                       (-1, 0, 0, 0, -1, 0, 0, 0, 1)])   # stored flipped (RAS-like rows)
def test_axial_slices_are_radiological_whatever_the_stored_direction(direction):
    ct, labels = _scene(direction)
    (figure,) = report_figures.axial_slices(ct, labels, [("Lesion 1", (18.0, -5.0, 0.0))])
    cols = _yellow_columns(figure.image)
    assert cols.size and np.median(cols) > figure.image.shape[1] / 2
