"""Enhanced (multi-frame) images: each frame placed by its functional groups, loaded exactly."""

from __future__ import annotations

import warnings

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import JPEG2000Lossless

from liverplan.errors import InputError
from liverplan.geometry import same_grid
from liverplan.io import load, scan
from tests.io.dicom_cases import ramp_volume, write


def _enhanced(image: sitk.Image, folder, out, **kwargs):
    """Our single-frame series converted to one Legacy Converted Enhanced CT file."""
    datasets = [pydicom.dcmread(f) for f in write(image, folder)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # highdicom notes the conversion of legacy attributes
        mf = hd.legacy.LegacyConvertedEnhancedCTImage(
            legacy_datasets=datasets, series_instance_uid=hd.UID(), series_number=2,
            sop_instance_uid=hd.UID(), instance_number=1, **kwargs)
    out.parent.mkdir(parents=True, exist_ok=True)
    mf.save_as(out)
    return out


@pytest.mark.parametrize("syntax", [None, JPEG2000Lossless])
def test_enhanced_ct_loads_like_its_single_frame_series(tmp_path, syntax):
    c, s = np.cos(0.25), np.sin(0.25)
    image = ramp_volume(size=(32, 32, 6), spacing=(0.6, 0.6, 3.0),
                        direction=(c, -s, 0, s, c, 0, 0, 0, 1))
    path = _enhanced(image, tmp_path / "single", tmp_path / "mf" / "enhanced.dcm",
                     **({"transfer_syntax_uid": syntax} if syntax else {}))
    (info,) = scan(tmp_path / "mf").series
    assert info.n_images == 6 and info.files == (str(path),) * 6
    assert sorted(info.frames) == list(range(6))
    volume = load(tmp_path / "mf")
    assert same_grid(volume.image, image) and volume.warnings == ()
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(volume.image),
                                  sitk.GetArrayViewFromImage(image))


def test_multi_frame_without_positions_is_skipped_with_its_reason(tmp_path):
    path = _enhanced(ramp_volume(size=(12, 10, 3)), tmp_path / "single", tmp_path / "mf" / "x.dcm")
    ds = pydicom.dcmread(path)
    for item in ds.PerFrameFunctionalGroupsSequence:
        del item.PlanePositionSequence
    ds.save_as(path)
    result = scan(tmp_path)        # the single-frame series it was made from is still found
    assert [s.n_images for s in result.series] == [3]
    (skipped,) = result.skipped
    assert skipped.path == str(path) and skipped.kind == "Legacy Converted Enhanced CT Image Storage"
    assert "frames cannot be placed in 3-D (frame 1 has no plane position" in skipped.reason
    with pytest.raises(InputError, match="found only: Legacy Converted Enhanced CT"):
        scan(tmp_path / "mf")
