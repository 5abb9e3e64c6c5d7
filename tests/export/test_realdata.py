"""Exports on real CT series (../shared/data): real headers, real geometry, a compressed series."""

import numpy as np
import pytest
import pyvista as pv
import SimpleITK as sitk

from liverplan.case import LIVER, VESSELS
from liverplan.errors import ExportError
from liverplan.geometry import image_from_array, same_grid
from liverplan.io import load, read_image
from liverplan.io.export_models import Structure, export_models
from liverplan.io.export_seg import write_seg
from liverplan.io.seg import read_seg

from .conftest import dciodvfy_errors

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def ircadb(shared_data):
    volume = load(shared_data / "ircadb-01" / "PATIENT_DICOM")
    raw = read_image(shared_data / "ircadb-01" / "labels.nii.gz")
    assert same_grid(raw, volume.image)
    a = sitk.GetArrayViewFromImage(raw)
    labels = {LIVER: image_from_array(((a >= 1) & (a <= 4)).astype(np.uint8), volume.image),
              VESSELS: image_from_array(np.select([a == 3, a == 4], [1, 2], 0).astype(np.uint8),
                                        volume.image)}
    return volume, labels


def test_ircadb_seg_is_valid_and_loads_back(ircadb, tmp_path):
    volume, labels = ircadb
    # liver and vessels: real headers and geometry are the point here, not many segments
    seg = write_seg({k: labels[k] for k in (LIVER, VESSELS)}, volume.info.files,
                    tmp_path / "seg.dcm")
    assert dciodvfy_errors(seg) == []
    masks = read_seg(seg, volume)
    liver = sitk.GetArrayViewFromImage(labels[LIVER]) != 0
    assert np.array_equal(sitk.GetArrayViewFromImage(masks["Liver"]), liver)
    assert np.array_equal(sitk.GetArrayViewFromImage(masks["Portal vein"]),
                          sitk.GetArrayViewFromImage(labels[VESSELS]) == 1)


def test_ircadb_liver_model_volume_and_side(ircadb, tmp_path):
    volume, labels = ircadb
    export_models([Structure("Liver", labels[LIVER], (200, 120, 90))], tmp_path)
    mesh = pv.read(tmp_path / "liver.stl")
    assert mesh.n_open_edges == 0 and mesh.n_cells <= 100_000
    voxel_ml = np.count_nonzero(sitk.GetArrayViewFromImage(labels[LIVER])) * np.prod(
        volume.image.GetSpacing()) / 1000
    assert mesh.volume / 1000 == pytest.approx(voxel_ml, rel=0.02)      # about 1489 mL
    # the liver lies on the patient's right: smaller LPS x than the image centre
    centre_x = volume.image.TransformContinuousIndexToPhysicalPoint(
        [(n - 1) / 2 for n in volume.image.GetSize()])[0]
    assert mesh.center[0] < centre_x


def test_a_series_without_study_uids_gets_a_clear_refusal(shared_data, tmp_path):
    """totalseg-example (JPEG 2000) was anonymised down to empty Study/Series/SOP Instance UIDs:
    a SEG could not be filed with it, so the export says so instead of inventing a study."""
    folder = shared_data / "totalseg-example"
    volume = load(folder / "example_ct_dicom")
    # stored with a flipped row axis: the same voxels, put on the CT grid (exact for a flip)
    raw = sitk.Resample(read_image(folder / "example_seg_dicom.nii.gz"), volume.image,
                        sitk.Transform(), sitk.sitkNearestNeighbor)
    liver = image_from_array((sitk.GetArrayViewFromImage(raw) == 5).astype(np.uint8), volume.image)
    with pytest.raises(ExportError, match="StudyInstanceUID, SeriesInstanceUID.*anonymiser"):
        write_seg({LIVER: liver}, volume.info.files, tmp_path / "seg.dcm")
    assert list(tmp_path.iterdir()) == []
