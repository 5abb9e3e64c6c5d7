"""load() of image files, and require_3d(): the planning check kept apart from loading."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from liverplan.errors import InputError
from liverplan.evidence import PLANNING_MIN_EXTENT_MM
from liverplan.geometry import mask_volume_ml, same_grid
from liverplan.io import load, require_3d, write_image
from tests.io.dicom_cases import ramp_volume, write


def test_loads_nifti_as_is(tmp_path):
    image = ramp_volume()
    path = write_image(image, tmp_path / "ct.nii.gz")
    volume = load(path)
    assert volume.info is None and volume.source == path and volume.warnings == ()
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(volume.image),
                                  sitk.GetArrayViewFromImage(image))


@pytest.mark.parametrize("image", [sitk.Image(8, 8, sitk.sitkInt16),
                                   sitk.Image(8, 8, 1, sitk.sitkInt16)])
def test_2d_and_single_slice_files_are_refused(tmp_path, image):
    path = write_image(image, tmp_path / "slice.nrrd")
    with pytest.raises(InputError, match="not a 3-D volume"):
        load(path)


def test_colour_image_is_refused(tmp_path):
    path = write_image(sitk.Image([8, 8, 4], sitk.sitkVectorUInt8, 3), tmp_path / "rgb.mha")
    with pytest.raises(InputError, match="colour or vector image"):
        load(path)


def test_missing_source(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load(tmp_path / "nothing")


def test_a_file_that_is_no_image_is_named(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(InputError, match="neither a DICOM image nor a volume file") as info:
        load(tmp_path / "notes.txt")
    assert info.value.path == tmp_path / "notes.txt"
    with pytest.raises(InputError, match="no DICOM image series found"):    # the folder
        load(tmp_path)


def test_short_series_loads_but_is_refused_for_planning(tmp_path):
    write(ramp_volume(size=(12, 10, 3)), tmp_path)
    volume = load(tmp_path)                 # e.g. the reference of a DICOM SEG
    assert volume.image.GetSize()[2] == 3
    with pytest.raises(InputError, match=r"covers only 5 mm .* at least 100 mm") as e:
        require_3d(volume)
    assert e.value.path == tmp_path


def test_long_enough_volume_passes_the_planning_check(tmp_path):
    limit = float(PLANNING_MIN_EXTENT_MM)
    n = int(np.ceil(limit / 2.5)) + 1
    path = write_image(ramp_volume(size=(4, 4, n)), tmp_path / "ct.mha")
    require_3d(load(path))
    path = write_image(ramp_volume(size=(4, 4, n - 1)), tmp_path / "short.mha")
    with pytest.raises(InputError):
        require_3d(load(path))


def test_synthetic_patient_loads_onto_its_truth_grid(synthetic_patient):
    volume = load(synthetic_patient.dicom_dir)
    require_3d(volume)
    assert volume.warnings == ()
    liver = synthetic_patient.mask("liver")
    assert same_grid(liver, volume.image)
    truth = synthetic_patient.truth
    assert mask_volume_ml(liver) == pytest.approx(truth["liver_volume_ml"], rel=1e-3)
    info = volume.info
    assert (info.weight_kg, info.height_cm, info.patient_sex) == \
        (truth["weight_kg"], truth["height_cm"], truth["sex"])
    hu = sitk.GetArrayViewFromImage(volume.image)
    assert 60 < np.median(hu[sitk.GetArrayViewFromImage(liver) > 0]) < 200   # enhanced liver
