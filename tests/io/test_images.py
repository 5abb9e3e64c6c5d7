"""read_image / write_image: LPS geometry survives every format; writes are atomic."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from liverplan.errors import ExportError, InputError
from liverplan.io import read_image, write_image
from tests.io.dicom_cases import ramp_volume


def _oblique():
    c, s = np.cos(0.4), np.sin(0.4)
    return ramp_volume(size=(9, 7, 5), spacing=(0.6, 0.9, 3.0), origin=(-30.0, 15.5, -92.0),
                       direction=(c, -s, 0, s, c, 0, 0, 0, 1))


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_round_trip_keeps_values_and_lps_geometry(tmp_path, suffix):
    image = _oblique()
    path = write_image(image, tmp_path / f"ct{suffix}")
    back = read_image(path)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image))
    assert [p.name for p in tmp_path.iterdir()] == [f"ct{suffix}"]   # no temporary file left


def test_failed_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "ct.nrrd"
    target.mkdir()                         # os.replace onto a folder fails after writing
    (target / "keep").write_text("x")
    with pytest.raises(ExportError, match="could not write the file") as e:
        write_image(_oblique(), target)
    assert e.value.path == target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nrrd"]
    assert (target / "keep").read_text() == "x"
    with pytest.raises(ExportError, match="could not write the image") as e:   # a file as folder
        write_image(_oblique(), target / "keep" / "ct.nii.gz")
    assert (target / "keep").read_text() == "x"


def test_unwritable_format_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError, match="writes .nii.gz, .nrrd, .mha"):
        write_image(_oblique(), tmp_path / "ct.png")


def test_unreadable_inputs(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_image(tmp_path / "missing.nii.gz")
    with pytest.raises(InputError, match="not an image file"):
        read_image(tmp_path / "notes.txt")
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b" + b"0" * 50)
    with pytest.raises(InputError, match="cannot read the image") as e:
        read_image(broken)
    assert e.value.path == broken


@pytest.mark.realdata
def test_nifti_from_another_tool_reads_into_lps(shared_data):
    """example_ct_sm.nii.gz is stored RAS-style (x and y flipped); SimpleITK gives LPS."""
    image = read_image(shared_data / "totalseg-example" / "example_ct_sm.nii.gz")
    assert image.GetSize() == (122, 101, 30)
    np.testing.assert_allclose(np.array(image.GetDirection()).reshape(3, 3),
                               np.diag([-1.0, -1.0, 1.0]))
