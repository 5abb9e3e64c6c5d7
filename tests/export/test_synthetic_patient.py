"""The exporters on the synthetic patient: DICOM SEG round trip and models against ground truth."""

import numpy as np
import pytest
import pyvista as pv
import SimpleITK as sitk

from liverplan.io import load
from liverplan.io.export_models import Structure, export_models
from liverplan.io.export_seg import write_seg
from liverplan.io.seg import read_seg

from .conftest import dciodvfy_errors


@pytest.fixture(scope="module")
def patient(synthetic_patient):
    volume = load(synthetic_patient.dicom_dir)
    labels = {n: synthetic_patient.mask(n) for n in ("liver", "tumors", "vessels", "segments")}
    return synthetic_patient, volume, labels


def test_seg_round_trip_equals_the_truth_masks(patient, tmp_path):
    phantom, volume, labels = patient
    seg = write_seg(labels, volume.info.files, tmp_path / "seg.dcm")
    assert dciodvfy_errors(seg) == []
    masks = read_seg(seg, volume)
    truth = {n: sitk.GetArrayFromImage(m) for n, m in labels.items()}
    assert np.array_equal(sitk.GetArrayViewFromImage(masks["Liver"]), truth["liver"] != 0)
    assert np.array_equal(sitk.GetArrayViewFromImage(masks["Portal vein"]), truth["vessels"] == 1)
    assert np.array_equal(sitk.GetArrayViewFromImage(masks["Hepatic veins and IVC"]),
                          truth["vessels"] == 2)
    for lesion in phantom.truth["lesions"]:
        got = sitk.GetArrayViewFromImage(masks[f"Lesion {lesion['id']}"])
        assert np.array_equal(got, truth["tumors"] == lesion["id"])
    for n in range(1, 9):
        assert np.array_equal(sitk.GetArrayViewFromImage(masks[f"Segment {n}"]),
                              truth["segments"] == n)


def test_liver_and_lesion_models_match_the_truth(patient, tmp_path):
    phantom, _, labels = patient
    structures = [Structure("Liver", labels["liver"], (200, 120, 90))]
    structures += [Structure(f"Lesion {d['id']}", labels["tumors"], (230, 230, 60), label=d["id"])
                   for d in phantom.truth["lesions"]]
    result = export_models(structures, tmp_path)
    liver = pv.read(tmp_path / "liver.stl")
    assert liver.n_open_edges == 0 and liver.n_cells <= 100_000
    assert liver.volume / 1000 == pytest.approx(phantom.truth["liver_volume_ml"], rel=0.03)
    for d in phantom.truth["lesions"]:
        mesh = pv.read(tmp_path / f"lesion_{d['id']}.stl")
        assert mesh.n_open_edges == 0
        assert np.allclose(mesh.center, d["centroid_lps_mm"], atol=0.35 * d["diameter_mm"])
    assert all(s["closed"] for s in result.structures)
