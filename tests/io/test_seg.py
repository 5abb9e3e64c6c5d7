"""read_seg: DICOM SEG segments onto the grid of the series they were drawn on."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from liverplan.case import LIVER, TUMORS
from liverplan.errors import InputError
from liverplan.geometry import image_from_array, same_grid
from liverplan.io import load, read_image
from liverplan.io.export_seg import write_seg
from liverplan.io.seg import read_seg
from tests.io.dicom_cases import ramp_volume, write


@pytest.mark.realdata
def test_dcmqi_liver_matches_its_nrrd_voxel_for_voxel(shared_data):
    case = shared_data / "dcmqi-ct3slice"
    volume = load(case / "ct-3slice")
    masks = read_seg(case / "liver.dcm", volume)
    assert list(masks) == ["Liver"]
    liver = masks["Liver"]
    assert same_grid(liver, volume.image) and liver.GetPixelID() == sitk.sitkUInt8
    nrrd = read_image(case / "liver_seg.nrrd")   # held: an array view does not keep it alive
    expected = sitk.GetArrayViewFromImage(nrrd) > 0
    got = sitk.GetArrayViewFromImage(liver)
    np.testing.assert_array_equal(got, expected)
    assert got.sum(axis=(1, 2)).tolist() == [36233, 35645, 35220]   # caudal slice first
    hu = sitk.GetArrayViewFromImage(volume.image)
    assert 20 < np.median(hu[got > 0]) < 90                           # unenhanced liver


@pytest.mark.realdata
def test_seg_of_another_scan_is_refused(shared_data, tmp_path):
    write(ramp_volume(), tmp_path)
    with pytest.raises(InputError, match="drawn on another scan"):
        read_seg(shared_data / "dcmqi-ct3slice" / "liver.dcm", load(tmp_path))


def test_round_trip_through_our_seg_export_on_an_oblique_series(tmp_path):
    """Segments covering only some slices come back on exactly those slices of the grid."""
    c, s = np.cos(0.3), np.sin(0.3)
    write(ramp_volume(size=(12, 10, 9), direction=(c, 0, s, 0, 1, 0, -s, 0, c)), tmp_path / "ct")
    volume = load(tmp_path / "ct")
    liver = np.zeros((9, 10, 12), np.uint8)
    liver[2:7, 3:8, 2:10] = 1
    tumors = np.zeros((9, 10, 12), np.uint16)
    tumors[4, 4:6, 5:7] = 1
    tumors[5:7, 6, 8] = 2
    labels = {LIVER: image_from_array(liver, volume.image),
              TUMORS: image_from_array(tumors, volume.image)}
    path = write_seg(labels, volume.info.files, tmp_path / "seg.dcm")
    masks = read_seg(path, volume)
    assert set(masks) == {"Liver", "Lesion 1", "Lesion 2"}
    assert all(same_grid(m, volume.image) for m in masks.values())
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(masks["Liver"]), liver)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(masks["Lesion 1"]), tumors == 1)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(masks["Lesion 2"]), tumors == 2)


def test_not_a_seg_file(tmp_path):
    files = write(ramp_volume(), tmp_path)
    with pytest.raises(InputError, match="not a readable DICOM Segmentation"):
        read_seg(files[0], load(tmp_path))
