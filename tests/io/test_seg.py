"""read_seg: DICOM SEG segments onto the grid of the series they were drawn on."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from liverplan.errors import InputError
from liverplan.geometry import same_grid
from liverplan.io import load, read_image
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


def test_not_a_seg_file(tmp_path):
    files = write(ramp_volume(), tmp_path)
    with pytest.raises(InputError, match="not a readable DICOM Segmentation"):
        read_seg(files[0], load(tmp_path))
