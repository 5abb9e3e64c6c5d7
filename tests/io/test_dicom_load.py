"""read_series/load of DICOM: exact LPS geometry, HU, gaps, tilt, compression, real cases."""

from __future__ import annotations

import shutil
import subprocess
import threading

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from liverplan.errors import Cancelled, InputError
from liverplan.geometry import index_to_lps, same_grid
from liverplan.io import load, read_image, scan
from tests.io.dicom_cases import edit, physical_points, ramp_hu, ramp_volume, write


def _rotation(ax: float, az: float) -> np.ndarray:
    cx, sx, cz, sz = np.cos(ax), np.sin(ax), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ rx


def test_oblique_anisotropic_round_trip_is_exact(tmp_path):
    image = ramp_volume(size=(13, 11, 7), spacing=(0.7, 0.9, 2.5), origin=(-35.5, 23.25, -95.0),
                        direction=tuple(_rotation(0.3, -0.5).ravel()))
    write(image, tmp_path)
    volume = load(tmp_path)
    out = volume.image
    assert out.GetSize() == image.GetSize()
    np.testing.assert_allclose(out.GetOrigin(), image.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(out.GetSpacing(), image.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(out.GetDirection(), image.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(out), sitk.GetArrayViewFromImage(image))
    assert out.GetPixelID() == sitk.sitkInt16 and volume.warnings == ()


def test_slices_are_ordered_by_position_not_by_file(tmp_path):
    """A stack stored head-to-feet (left-handed index order) loads feet-to-head, same anatomy."""
    image = ramp_volume(direction=(1, 0, 0, 0, 1, 0, 0, 0, -1), origin=(-40.0, 20.0, -80.0))
    write(image, tmp_path)
    out = load(tmp_path).image
    assert np.allclose(np.array(out.GetDirection()).reshape(3, 3), np.eye(3))
    assert out.GetOrigin()[2] == pytest.approx(-80.0 - 7 * 2.5)
    # every voxel holds the value of its own physical position
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(out),
                               np.rint(ramp_hu(physical_points(out))), atol=0.5)


def test_spacing_comes_from_positions_not_slice_thickness(tmp_path):
    files = write(ramp_volume(), tmp_path)     # 2.5 mm apart
    edit(files, SliceThickness="5", SpacingBetweenSlices="5")   # overlapping 5 mm slices
    volume = load(tmp_path)
    assert volume.image.GetSpacing()[2] == pytest.approx(2.5)
    assert volume.info.slice_spacing_mm == pytest.approx(2.5)


@pytest.mark.parametrize("syntax", [None, RLELossless])   # direct read / GDCM
def test_rescale_slope_and_intercept_give_hu(tmp_path, syntax):
    files = write(ramp_volume(), tmp_path)
    stored = [pydicom.dcmread(f).pixel_array.astype(float) for f in files]
    for f in files[::2]:
        edit([f], RescaleSlope="0.5", RescaleIntercept="-1000")
    for f in files if syntax else []:
        ds = pydicom.dcmread(f)
        ds.compress(syntax)
        ds.save_as(f)
    out = sitk.GetArrayFromImage(load(tmp_path).image)
    for k, raw in enumerate(stored):
        slope, intercept = (0.5, -1000.0) if k % 2 == 0 else (1.0, -1024.0)
        np.testing.assert_allclose(out[k], raw * slope + intercept)


def test_values_beyond_int16_are_kept(tmp_path):
    image = sitk.Cast(ramp_volume(), sitk.sitkInt32)
    image[3, 4, 5] = 40000          # e.g. a metal implant on an extended-range scanner
    write(image, tmp_path)
    out = load(tmp_path).image
    assert out.GetPixelID() == sitk.sitkInt32 and out[3, 4, 5] == 40000
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(out), sitk.GetArrayViewFromImage(image))


def test_missing_slice_is_interpolated_onto_a_regular_grid_with_a_warning(tmp_path):
    image = ramp_volume(size=(12, 10, 9))
    files = write(image, tmp_path)
    files[4].unlink()
    volume = load(tmp_path)
    assert same_grid(volume.image, image)
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(volume.image),
                               sitk.GetArrayViewFromImage(image), atol=1)   # linear ramp
    text = " ".join(volume.warnings)
    assert "gap of 5.00 mm (regular step 2.50 mm) between slices at -92.50 and -87.50 mm" in text
    assert "resampled onto a regular 2.50 mm grid" in text


def test_uneven_last_step_is_not_extrapolated(tmp_path):
    image = ramp_volume(size=(12, 10, 4))
    files = write(image, tmp_path)
    ds = pydicom.dcmread(files[3])                        # slice 3 moved from +7.5 to +9 mm
    ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], str(-100.0 + 9.0)]
    ds.save_as(files[3])
    volume = load(tmp_path)
    out = volume.image
    assert out.GetSize()[2] == 4 and out.GetSpacing()[2] == pytest.approx(2.5)
    a = sitk.GetArrayViewFromImage(out)
    original = sitk.GetArrayViewFromImage(image)
    np.testing.assert_array_equal(a[:3], original[:3])
    # output slice 3 (+7.5 mm) lies 2.5/4 of the way from slice 2 (+5 mm) to the moved slice
    # (+9 mm), whose pixels are unchanged; no slice is placed at +10 mm, beyond the last one
    w = 2.5 / 4.0
    np.testing.assert_allclose(a[3], np.rint(original[2] * (1 - w) + original[3] * w), atol=1)
    assert out.TransformIndexToPhysicalPoint((0, 0, 3))[2] == pytest.approx(-92.5)


def test_gap_larger_than_the_limit_is_refused(tmp_path):
    files = write(ramp_volume(size=(12, 10, 10)), tmp_path)
    for f in files[3:8]:
        f.unlink()   # 15 mm hole
    with pytest.raises(InputError, match="hole too large to fill: gap of 15.00 mm") as e:
        load(tmp_path)
    assert e.value.path == tmp_path


def test_gantry_tilt_is_resampled_onto_an_untilted_grid(tmp_path):
    tilt = np.radians(15)
    sheared = (1, 0, 0, 0, 1, np.sin(tilt), 0, 0, np.cos(tilt))   # stack axis tilted in y-z
    image = ramp_volume(size=(12, 24, 8), spacing=(1.0, 1.0, 2.0), direction=sheared)
    write(image, tmp_path)
    volume = load(tmp_path)
    out = volume.image
    assert np.allclose(np.array(out.GetDirection()).reshape(3, 3), np.eye(3))
    assert out.GetSpacing()[2] == pytest.approx(2.0 * np.cos(tilt))
    assert any("gantry tilt of 15.0 degrees" in w for w in volume.warnings)
    # every position at least one voxel inside the scanned (sheared) stack holds the ramp value
    a = sitk.GetArrayViewFromImage(out)
    pts = physical_points(out)
    to_index = np.linalg.inv(np.array(sheared).reshape(3, 3) * np.array(image.GetSpacing()))
    ijk = (pts - np.array(image.GetOrigin())) @ to_index.T
    core = np.all((ijk >= 1) & (ijk <= np.array(image.GetSize()) - 2), axis=-1)
    assert core.sum() > 0.4 * core.size
    np.testing.assert_allclose(a[core], ramp_hu(pts)[core], atol=1.5)
    assert np.all(a[~core & (np.abs(a + 1024) > 0)] >= -1024)


def test_positions_off_one_line_are_refused(tmp_path):
    files = write(ramp_volume(), tmp_path)
    ds = pydicom.dcmread(files[3])
    ds.ImagePositionPatient = [str(float(ds.ImagePositionPatient[0]) + 30),
                               *ds.ImagePositionPatient[1:]]
    ds.save_as(files[3])
    with pytest.raises(InputError, match="do not lie on one straight line"):
        load(tmp_path)


def test_repeated_positions_without_a_splitting_tag_are_refused(tmp_path):
    image = ramp_volume()
    write(image, tmp_path / "a", series_uid="1.2.3.4")
    write(image, tmp_path / "b", series_uid="1.2.3.4")
    with pytest.raises(InputError, match="8 image.s. lie at the same position"):
        load(tmp_path)


def test_single_slice_is_refused(tmp_path):
    write(ramp_volume(size=(12, 10, 1)), tmp_path)
    with pytest.raises(InputError, match="single image"):
        load(tmp_path)


def test_several_series_need_a_choice(tmp_path):
    write(ramp_volume(), tmp_path / "1", series_uid="1.2.3.1", series_description="arterial")
    write(ramp_volume(size=(12, 10, 5)), tmp_path / "2", series_uid="1.2.3.2",
          series_description="portal")
    with pytest.raises(InputError, match="holds 2 image series; choose one") as e:
        load(tmp_path)
    assert "1.2.3.1" in str(e.value) and "portal" in str(e.value)
    assert load(tmp_path, series="1.2.3.2").image.GetSize()[2] == 5
    with pytest.raises(InputError, match="'9.9' is not in this folder"):
        load(tmp_path, series="9.9")


def test_one_file_loads_its_series_and_a_series_info_loads_directly(tmp_path):
    write(ramp_volume(), tmp_path / "1", series_uid="1.2.3.1")
    files = write(ramp_volume(size=(12, 10, 5)), tmp_path / "2", series_uid="1.2.3.2")
    assert load(files[2]).info.key == "1.2.3.2"
    info = [s for s in scan(tmp_path).series if s.key == "1.2.3.1"][0]
    volume = load(info)
    assert volume.info == info and volume.image.GetSize()[2] == 8


def test_series_info_without_geometry_is_refused(tmp_path):
    write(ramp_volume(), tmp_path)
    info = scan(tmp_path).series[0]
    bare = type(info).from_dict({k: v for k, v in info.to_dict().items() if k != "positions_mm"})
    with pytest.raises(InputError, match="slice positions are not known"):
        load(bare)
    with pytest.raises(InputError, match="lists no files"):
        load(type(info).from_dict({**info.to_dict(), "files": []}))


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless, JPEGLSLossless])
def test_compressed_series_decode_to_the_same_hu(tmp_path, syntax):
    image = ramp_volume(size=(32, 32, 4), spacing=(0.3, 0.3, 2.5))   # OpenJPEG needs >= 32x32
    files = write(image, tmp_path)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.compress(syntax)
        ds.save_as(f)
    out = load(tmp_path).image
    assert same_grid(out, image)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(out), sitk.GetArrayViewFromImage(image))


def test_jpeg_lossless_process_14_decodes(tmp_path):
    dcmcjpeg = shutil.which("dcmcjpeg")
    assert dcmcjpeg, "dcmtk (dcmcjpeg) is a system dependency of the project"
    image = ramp_volume()
    for f in write(image, tmp_path / "plain"):
        out = tmp_path / "jpeg" / f.name
        out.parent.mkdir(exist_ok=True)
        subprocess.run([dcmcjpeg, "--encode-lossless-sv1", str(f), str(out)], check=True)
    assert pydicom.dcmread(out).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"
    out = load(tmp_path / "jpeg").image   # keep the image alive while its array view is read
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(out), sitk.GetArrayViewFromImage(image))


def test_no_air_in_a_ct_warns_about_units(tmp_path):
    files = write(ramp_volume(), tmp_path)
    edit(files, RescaleIntercept="0")
    assert any("may not be Hounsfield units" in w for w in load(tmp_path).warnings)


def test_cancel_while_reading(tmp_path):
    write(ramp_volume(), tmp_path)
    stop = threading.Event()
    seen = []

    def progress(fraction, message):
        seen.append(fraction)
        if message.startswith("Reading slice"):
            stop.set()

    with pytest.raises(Cancelled):
        load(tmp_path, progress=progress, cancel=stop)
    assert seen and all(0 <= f <= 1 for f in seen)


@pytest.mark.realdata
def test_ircadb_left_right_and_caudal_first(shared_data):
    case = shared_data / "ircadb-01"
    volume = load(case / "PATIENT_DICOM")
    assert volume.warnings == ()
    labels = read_image(case / "labels.nii.gz")
    assert same_grid(labels, volume.image)
    hu = sitk.GetArrayViewFromImage(volume.image)
    liver = np.argwhere(sitk.GetArrayViewFromImage(labels) > 0)
    liver_x = index_to_lps(volume.image, liver.mean(axis=0))[0, 0]
    # spine: bone in the posterior half, near the left-right middle of the body
    z, y, x = np.nonzero(hu > 200)
    body_mid_x = np.median(np.nonzero(hu[hu.shape[0] // 2] > -300)[1])
    posterior = (y > hu.shape[1] * 0.55) & (np.abs(x - body_mid_x) < 40)
    spine_x = index_to_lps(volume.image, np.array([0, 0, np.median(x[posterior])]))[0, 0]
    assert liver_x < spine_x - 30          # liver on the patient's right (smaller LPS x)
    positions = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2])
                 for f in volume.info.files]
    assert volume.info.files[0].endswith("image_0") and positions[0] == min(positions)
    assert volume.image.GetOrigin()[2] == pytest.approx(min(positions))


@pytest.mark.realdata
def test_jpeg2000_real_series_matches_its_reference_grid(shared_data):
    case = shared_data / "totalseg-example"
    volume = load(case / "example_ct_dicom")
    seg = read_image(case / "example_seg_dicom.nii.gz")
    # same voxels, the NIfTI stores rows in the opposite order (its own direction says so)
    assert volume.image.GetSize() == seg.GetSize()
    labels = sitk.Resample(seg, volume.image, sitk.Transform(), sitk.sitkNearestNeighbor)
    np.testing.assert_array_equal(np.sort(np.unique(sitk.GetArrayViewFromImage(labels))),
                                  np.sort(np.unique(sitk.GetArrayViewFromImage(seg))))
    hu = sitk.GetArrayViewFromImage(volume.image)
    lab = sitk.GetArrayViewFromImage(labels)
    # every voxel centre coincides: the resampled labels are the NIfTI's rows in reverse order
    np.testing.assert_array_equal(lab, sitk.GetArrayViewFromImage(seg)[:, ::-1, :])
    liver_x = index_to_lps(volume.image, np.argwhere(lab == 5).mean(axis=0))[0, 0]
    spleen_x = index_to_lps(volume.image, np.argwhere(lab == 1).mean(axis=0))[0, 0]
    assert liver_x < spleen_x - 50                 # liver on the patient's right, spleen left
    assert 60 < np.median(hu[lab == 5]) < 200      # contrast-enhanced liver
    assert np.median(hu[lab == 64]) > np.median(hu[lab == 5])   # portal vein brighter
    assert hu[0, 0, 0] == -1024                    # air outside the field of view
