"""write_series: geometry, HU and patient tags survive a round trip through DICOM readers."""

from __future__ import annotations

import subprocess
import threading

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from liverplan.errors import Cancelled, ExportError
from liverplan.io.dicom_write import write_series


def _rotation(ax: float, az: float) -> np.ndarray:
    """A proper rotation (det +1): `ax` radians about x, then `az` about z."""
    cx, sx, cz, sz = np.cos(ax), np.sin(ax), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ rx


@pytest.fixture
def oblique_volume() -> sitk.Image:
    """An oblique, anisotropic, non-cubic volume whose HU encode the voxel index."""
    z, y, x = np.meshgrid(np.arange(7), np.arange(11), np.arange(13), indexing="ij")
    hu = (-1000 + 10 * x + 100 * y + 1000 * z).astype(np.int16)
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((0.7, 0.9, 2.5))
    image.SetOrigin((-120.5, 33.25, -410.0))
    image.SetDirection(tuple(_rotation(0.3, -0.5).ravel()))
    return image


def _read_sitk(folder) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def test_headers_carry_the_image_geometry(tmp_path, oblique_volume):
    paths = write_series(oblique_volume, tmp_path, patient_name="Müller^Zoë", patient_id="P1",
                         weight_kg=78, height_cm=176, patient_sex="F",
                         extra_tags={"ContrastBolusAgent": "Iohexol 350"})
    assert len(paths) == 7 and all(p.suffix == "" for p in paths)
    assert not list(tmp_path.glob(".*")), "temporary files left behind"
    d = np.array(oblique_volume.GetDirection()).reshape(3, 3)
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        assert ds.SOPClassUID == pydicom.uid.CTImageStorage
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient],
                                   oblique_volume.TransformIndexToPhysicalPoint((0, 0, k)),
                                   atol=1e-4)
        np.testing.assert_allclose([float(v) for v in ds.ImageOrientationPatient],
                                   [*d[:, 0], *d[:, 1]], atol=1e-5)
        # PixelSpacing is (row spacing = between rows = y, column spacing = x)
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx([0.9, 0.7])
        assert float(ds.SliceThickness) == pytest.approx(2.5)
        assert (ds.Rows, ds.Columns) == (11, 13)
        np.testing.assert_array_equal(pydicom.pixels.apply_rescale(ds.pixel_array, ds),
                                      sitk.GetArrayViewFromImage(oblique_volume)[k])
    assert str(ds.PatientName) == "Müller^Zoë"
    assert float(ds.PatientWeight) == 78 and float(ds.PatientSize) == pytest.approx(1.76)
    assert ds.ContrastBolusAgent == "Iohexol 350"
    assert len({pydicom.dcmread(p).SOPInstanceUID for p in paths}) == 7


def test_round_trip_through_simpleitk(tmp_path, oblique_volume):
    write_series(oblique_volume, tmp_path)
    back = _read_sitk(tmp_path)
    np.testing.assert_allclose(back.GetOrigin(), oblique_volume.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(back.GetSpacing(), oblique_volume.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(back.GetDirection(), oblique_volume.GetDirection(), atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back),
                                  sitk.GetArrayViewFromImage(oblique_volume))


def test_hu_below_air_is_clipped_and_uids_are_shared(tmp_path):
    image = sitk.GetImageFromArray(np.full((2, 3, 4), -3000, np.int16))
    paths = write_series(image, tmp_path, study_uid="1.2.3", series_uid="1.2.3.4")
    a, b = (pydicom.dcmread(p) for p in paths)
    assert pydicom.pixels.apply_rescale(a.pixel_array, a).min() == -1024
    assert (a.StudyInstanceUID, a.SeriesInstanceUID) == ("1.2.3", "1.2.3.4")
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID


def test_cancel_leaves_no_files(tmp_path, oblique_volume):
    cancel = threading.Event()
    calls = []

    def progress(fraction, message):
        calls.append(fraction)
        if len(calls) == 3:
            cancel.set()

    with pytest.raises(Cancelled):
        write_series(oblique_volume, tmp_path, progress=progress, cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_is_an_export_error(tmp_path, oblique_volume):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError):
        write_series(oblique_volume, blocker / "series")


def test_round_trip_through_liverplan_load(tmp_path, oblique_volume):
    from liverplan.io import load

    write_series(oblique_volume, tmp_path, weight_kg=70, height_cm=165)
    volume = load(tmp_path)
    np.testing.assert_allclose(volume.image.GetOrigin(), oblique_volume.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(volume.image.GetSpacing(), oblique_volume.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(volume.image.GetDirection(), oblique_volume.GetDirection(),
                               atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(volume.image),
                                  sitk.GetArrayViewFromImage(oblique_volume))
    assert volume.info.weight_kg == 70 and volume.info.height_cm == pytest.approx(165)


@pytest.mark.parametrize("patient", [{}, {"patient_sex": "F", "weight_kg": 61.0,
                                         "height_cm": 165.0}])
def test_slices_pass_dciodvfy_without_errors(tmp_path, oblique_volume, patient):
    """dicom3tools' validator finds no error in a CT slice, with the type 2 elements present
    (empty when unknown: birth date, sex, kVp, position reference indicator)."""
    path = write_series(oblique_volume, tmp_path, **patient)[0]
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    report = result.stdout + result.stderr
    assert "CTImage" in report                      # it recognized the IOD and checked it
    assert [line for line in report.splitlines() if line.startswith("Error")] == []
    ds = pydicom.dcmread(path)
    assert ds.PatientSex == patient.get("patient_sex", "") and ds.KVP is None
