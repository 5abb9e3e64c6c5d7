"""`liverplan segment`: outputs on the input grid, volumetry.json, bad input, clean cancel."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk

from liverplan.cli import main
from liverplan.commands.segment import OUTPUTS, segment_case, write_outputs
from liverplan.errors import Cancelled
from liverplan.geometry import index_to_lps, same_grid
from tests.volumetry.test_liver import synthetic_abdomen


@pytest.fixture(scope="module")
def ct_file(tmp_path_factory):
    image, _, _ = synthetic_abdomen(lesions=[((-40, 0, 110), 12, 50.0)])
    path = tmp_path_factory.mktemp("ct") / "abdomen.nii.gz"
    sitk.WriteImage(image, str(path))
    return path


def test_segment_writes_masks_and_volumetry(ct_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(ct_file), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)     # no temporary left
    image = sitk.ReadImage(str(ct_file))
    liver = sitk.ReadImage(str(out / "liver.nii.gz"))
    tumors = sitk.ReadImage(str(out / "tumors.nii.gz"))
    assert same_grid(liver, image) and same_grid(tumors, image)
    assert liver.GetPixelID() == sitk.sitkUInt8 and tumors.GetPixelID() == sitk.sitkUInt16
    doc = json.loads((out / "volumetry.json").read_text())
    v = doc["volumetry"]
    assert v["total_liver_ml"] > 500
    assert v["functional_liver_ml"] == pytest.approx(v["total_liver_ml"] - v["tumor_ml"])
    assert len(v["lesions"]) == 1
    lesion = v["lesions"][0]
    assert lesion["diameter_mm"] == pytest.approx(24, abs=6)     # within a 3 mm voxel a side
    assert np.allclose(lesion["centroid_lps_mm"], (-40, 0, 110), atol=2)
    # no vessels in this toy abdomen: the segments come from the landmark-plane fallback
    assert doc["segments"]["method"] == "landmark planes"
    assert lesion["segment"] == int(next(iter(doc["lesion_segments"]["1"])))
    for name in ("vessels.nii.gz", "segments.nii.gz"):
        assert same_grid(sitk.ReadImage(str(out / name)), image)
    assert sum(doc["hemiliver_volume_ml"].values()) == pytest.approx(v["total_liver_ml"], rel=0.01)
    voxel_ml = np.prod(image.GetSpacing()) / 1000
    assert v["total_liver_ml"] == pytest.approx(
        np.count_nonzero(sitk.GetArrayFromImage(liver)) * voxel_ml)
    assert doc["software"]["version"] and doc["software"]["segmenter"] == "classical"
    assert doc["input"]["series_instance_uid"] is None      # a NIfTI file has none
    assert set(doc["timings_s"]) == {"load", "liver", "lesions", "vessels", "segments",
                                     "measure"}
    assert doc["parameters"]["liver"]["coarse_spacing_mm"] == 2.0
    assert "Liver" in capsys.readouterr().out


def test_failed_vessel_stage_keeps_liver_and_lesions(ct_file, tmp_path):
    """Vessels that cannot be segmented (a scan without any enhancement inside the liver) leave
    the liver, lesions and volumetry written, say why in the warnings, and remove the vessels
    and segments of an earlier run into the same folder."""
    from liverplan.commands.segment import measure_stage, segments_stage, vessel_stage
    from liverplan.progress import Steps
    run = segment_case(ct_file)
    out = tmp_path / "out"
    write_outputs(run, out)
    assert (out / "vessels.nii.gz").exists() and (out / "segments.nii.gz").exists()
    flat = sitk.Image(run.volume.image.GetSize(), sitk.sitkInt16) + 100    # no contrast at all
    flat.CopyInformation(run.volume.image)
    run.volume = replace(run.volume, image=flat)
    run.vessels = run.segments = None
    for stage in (vessel_stage, segments_stage, measure_stage):
        stage(run, Steps(None, None))
    assert run.vessels is None and run.segments is None
    write_outputs(run, out)
    assert sorted(p.name for p in out.iterdir()) == ["liver.nii.gz", "tumors.nii.gz",
                                                      "volumetry.json"]
    doc = json.loads((out / "volumetry.json").read_text())
    assert doc["volumetry"]["total_liver_ml"] > 500 and len(doc["volumetry"]["lesions"]) == 1
    assert doc["vessels"] is None and doc["segments"] is None
    assert any(w.startswith("Vessels not segmented: No enhanced vessels") for w in doc["warnings"])


def test_cancel_leaves_no_output(ct_file, tmp_path):
    stop = threading.Event()

    def progress(fraction, message):
        if fraction > 0.3:
            stop.set()               # the user presses Stop during the liver stage

    with pytest.raises(Cancelled):
        segment_case(ct_file, progress=progress, cancel=stop)
    assert not (tmp_path / "out").exists()


def test_interrupted_write_leaves_nothing_partial(ct_file, tmp_path):
    run = segment_case(ct_file)
    run.tumors = None                # the second file cannot be written
    out = tmp_path / "out"
    with pytest.raises(Exception):
        write_outputs(run, out)
    assert list(out.iterdir()) == []


def test_liver_seed_grows_the_liver_from_the_point(ct_file, tmp_path):
    out = tmp_path / "out"
    seed = (-60.0, 10.0, 100.0)                    # in the liver, 20 mm beside the lesion
    assert main(["segment", str(ct_file), "--out", str(out), "--liver-seed=-60,10,100"]) == 0
    image, truth, _ = synthetic_abdomen(lesions=[((-40, 0, 110), 12, 50.0)])
    liver = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "liver.nii.gz"))) > 0
    assert 2 * np.count_nonzero(liver & truth) / (liver.sum() + truth.sum()) >= 0.93
    doc = json.loads((out / "volumetry.json").read_text())
    assert doc["parameters"]["liver_seed_lps_mm"] == list(seed)      # how the liver was made
    assert len(doc["volumetry"]["lesions"]) == 1          # the lesion stage ran on that liver


@pytest.mark.parametrize("text", ["-60,10", "a,b,c"])
def test_a_malformed_liver_seed_is_refused_before_any_work(ct_file, tmp_path, capsys, text):
    with pytest.raises(SystemExit) as exit_:
        main(["segment", str(ct_file), "--out", str(tmp_path / "out"), f"--liver-seed={text}"])
    assert exit_.value.code == 2 and "is not a point X,Y,Z" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("out", ["a_file", "a_file/out"])
def test_an_output_place_that_cannot_be_a_folder_is_refused_before_any_work(
        ct_file, tmp_path, capsys, out):
    (tmp_path / "a_file").write_text("kept")
    assert main(["segment", str(ct_file), "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert "part of the path is a file, not a folder" in err
    assert "%" not in err                      # no progress: the scan was not even read
    assert (tmp_path / "a_file").read_text() == "kept"


def test_a_liver_seed_outside_the_image_is_refused(ct_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(ct_file), "--out", str(out), "--liver-seed=900,0,0"]) == 2
    assert "outside the image" in capsys.readouterr().err
    assert not out.exists()


def test_mr_like_input_is_refused(tmp_path, capsys):
    image, _, _ = synthetic_abdomen()
    mr = sitk.Cast(sitk.GetImageFromArray(sitk.GetArrayFromImage(image).clip(-1000) + 1000),
                   sitk.sitkUInt16)
    mr.CopyInformation(image)
    path = tmp_path / "mr.nii.gz"
    sitk.WriteImage(mr, str(path))
    assert main(["segment", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "Hounsfield" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_scan_without_liver_is_refused(tmp_path, capsys):
    image, _, _ = synthetic_abdomen(with_liver=False, with_lungs=False)
    path = tmp_path / "pelvis.nii.gz"
    sitk.WriteImage(image, str(path))
    assert main(["segment", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "liver" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_scan_too_short_for_a_whole_liver_is_refused(tmp_path, capsys):
    image, _, _ = synthetic_abdomen()
    short = image[:, :, 20:40]                       # 60 mm of the abdomen
    path = tmp_path / "short.nii.gz"
    sitk.WriteImage(short, str(path))
    assert main(["segment", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "whole liver" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_synthetic_patient_end_to_end(synthetic_patient):
    """The headless pipeline on the synthetic patient's DICOM series against its exact truth."""
    run = segment_case(synthetic_patient.dicom_dir)
    truth_liver = sitk.ReadImage(str(synthetic_patient.truth_dir / "liver.nii.gz"))
    truth_tumors = sitk.GetArrayFromImage(
        sitk.ReadImage(str(synthetic_patient.truth_dir / "tumors.nii.gz")))
    assert same_grid(run.liver.mask, truth_liver)
    liver = sitk.GetArrayFromImage(run.liver.mask) > 0
    ref = sitk.GetArrayFromImage(truth_liver) > 0
    assert 2 * np.count_nonzero(liver & ref) / (liver.sum() + ref.sum()) >= 0.97
    truth_ml = synthetic_patient.truth["liver_volume_ml"]
    assert abs(run.volumetry.total_liver_ml - truth_ml) / truth_ml < 0.04
    found = sitk.GetArrayFromImage(run.tumors)
    for lesion in synthetic_patient.truth["lesions"]:
        if lesion["max_diameter_mm"] >= 10:
            assert found[truth_tumors == lesion["id"]].any(), f"{lesion['name']} missed"
    false_positives = [i for i in np.unique(found) if i and not truth_tumors[found == i].any()]
    assert len(false_positives) <= 2
    # Left/right: the liver's centroid lies on the patient's right of the spine (smaller LPS x).
    markers = synthetic_patient.truth["markers"]
    centroid = index_to_lps(run.liver.mask, np.argwhere(liver).mean(axis=0))[0]
    assert centroid[0] < markers["spine_centroid_lps_mm"][0] - 20
    assert np.allclose(centroid, markers["liver_centroid_lps_mm"], atol=5)
    # Couinaud segments from the automatic vessels: every segment present, the right liver on
    # the patient's right, and the large lesions placed in their true segments.
    segments = sitk.GetArrayFromImage(run.segments.segments)
    assert set(np.unique(segments[liver])) == set(range(1, 9))
    right_x = index_to_lps(run.liver.mask, np.argwhere(np.isin(segments, (5, 6, 7, 8))).mean(0))
    left_x = index_to_lps(run.liver.mask, np.argwhere(np.isin(segments, (2, 3, 4))).mean(0))
    assert right_x[0][0] < left_x[0][0]
    by_id = {lesion.id: lesion.segment for lesion in run.volumetry.lesions}
    for lesion in synthetic_patient.truth["lesions"]:
        if lesion["max_diameter_mm"] >= 10:
            ids, counts = np.unique(found[truth_tumors == lesion["id"]], return_counts=True)
            found_id = ids[ids > 0][np.argmax(counts[ids > 0])]
            assert by_id[found_id] == lesion["segment"], lesion
    # The caudate's own portal branch runs 2 mm past the IVC: it stays portal (the hepatic
    # veins' front starts from the whole IVC) and gives segment 1 its territory.
    assert not any("caudate" in w for w in run.segments.warnings), run.segments.warnings
    truth_segments = sitk.GetArrayFromImage(
        sitk.ReadImage(str(synthetic_patient.truth_dir / "segments.nii.gz")))
    s1, t1 = segments == 1, truth_segments == 1
    assert 2 * np.count_nonzero(s1 & t1) / (s1.sum() + t1.sum()) >= 0.65
