import json
import shutil

import pytest
import SimpleITK as sitk

from liverplan.cli import main
from liverplan.planner.planfile import load_plan


def test_plan_command_on_the_synthetic_patient(synthetic_patient, tmp_path, capsys):
    out = tmp_path / "plan"
    code = main(["plan", str(synthetic_patient.dicom_dir), "--resection", "right_hemihepatectomy",
                 "--wedge", "3:10", "--wedge", "5", "--masks", str(synthetic_patient.truth_dir),
                 "--quality", "chemo", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    plan = load_plan(out / "plan.liverplan.json")
    r = plan.plan.result
    truth = synthetic_patient.truth
    # Weight and height come from the DICOM tags.
    assert plan.plan.patient.weight_kg == pytest.approx(truth["weight_kg"])
    assert plan.plan.patient.height_cm == pytest.approx(truth["height_cm"])
    assert r.driving == "sFLR" and r.sflr_min_percent == 30
    assert r.liver_volume_ml == pytest.approx(truth["liver_volume_ml"], rel=1e-3)
    assert r.lesion(3).status == "resected" and r.lesion(5).status == "resected"
    assert r.lesion(3).margin_mm == pytest.approx(10.0, abs=1.5)
    assert plan.series["series_instance_uid"]
    ranked = [s.key for s in plan.strategies if s.applicable]
    if r.sflr_percent >= 30:
        assert ranked == ["one_stage"]
    else:   # the wedges clear the future remnant: two-stage, unless growth must be fast
        assert ranked[0] in ("two_stage", "alpps") and "one_stage" not in ranked
        assert "FLR too small" in text
    for expected in ("sFLR = FLR / TELV", "minimum sFLR 30%", "VERDICT:", "Strategies:",
                     "consensus", "Lesions:"):
        assert expected in text
    assert json.loads((out / "plan.liverplan.json").read_text())["inputs"]["resections"][1] == {
        "kind": "wedge", "lesion_id": 3, "margin_mm": 10.0}


def test_plan_command_refuses_missing_masks_and_bad_arguments(synthetic_patient, tmp_path, capsys):
    code = main(["plan", str(synthetic_patient.dicom_dir), "--segments", "5,6,7,8",
                 "--out", str(tmp_path)])
    assert code == 2 and "no liver mask" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["plan", str(synthetic_patient.dicom_dir), "--segments", "5,9", "--out", str(tmp_path)])
    assert "segments must be numbers 1-8" in capsys.readouterr().err
    masks = tmp_path / "masks"
    shutil.copytree(synthetic_patient.truth_dir, masks)
    moved = synthetic_patient.mask("segments")
    moved.SetOrigin([o + 5.0 for o in moved.GetOrigin()])     # another series' grid
    sitk.WriteImage(moved, str(masks / "segments.nii.gz"))
    code = main(["plan", str(synthetic_patient.dicom_dir), "--segments", "5,6,7,8",
                 "--masks", str(masks), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "not on the CT's grid" in err and "segments.nii.gz" in err
