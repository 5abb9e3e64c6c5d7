import contextlib
import io
import json
import shutil

import numpy as np
import pytest
import pyvista as pv
import SimpleITK as sitk
from PIL import Image

from liverplan.cli import build_parser, main
from liverplan.planner.icg import SURFACE_ARRAY, IcgParameters, IcgResult
from liverplan.planner.planfile import load_plan


def test_plan_command_on_the_synthetic_patient(synthetic_patient, tmp_path, capsys):
    out = tmp_path / "plan"
    # lesion 1 (segment 7) touches the caudate, which the right hemihepatectomy keeps: a wedge
    # takes the caudate around it
    code = main(["plan", str(synthetic_patient.dicom_dir), "--resection", "right_hemihepatectomy",
                 "--wedge", "3:10", "--wedge", "5", "--wedge", "1",
                 "--masks", str(synthetic_patient.truth_dir), "--quality", "chemo",
                 "--out", str(out)])
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
    assert all(r.lesion(k).status == "resected" for k in (1, 3, 5))
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
    saved = json.loads((out / "plan.liverplan.json").read_text())
    assert saved["inputs"]["resections"][1] == {"kind": "wedge", "lesion_id": 3, "margin_mm": 10.0}
    assert saved["results"]["icg"] is None and plan.icg is None     # only with --icg
    assert not list(out.glob("icg_*")) and "ICG" not in text


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
    (masks / "segments.nii.gz").unlink()
    (masks / "tumors.nii.gz").unlink()
    code = main(["plan", str(synthetic_patient.dicom_dir), "--segments", "5,6,7,8", "--icg",
                 "--masks", str(masks), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "needs the lesion mask" in err and "tumors.nii.gz" in err
    code = main(["plan", str(synthetic_patient.dicom_dir), "--segments", "5,6,7,8", "--icg",
                 "--icg-rim-mm", "9", "--masks", str(masks), "--out", str(tmp_path)])
    assert code == 2 and "rim thickness must be 0.5-5.0 mm" in capsys.readouterr().err
    assert not list(tmp_path.glob("icg_*"))


def test_icg_options_default_to_the_model_defaults():
    args = build_parser().parse_args(["plan", "ct", "--segments", "5", "--out", "x"])
    d = IcgParameters()
    assert not args.icg
    assert (args.icg_rim_mm, args.icg_tbr, args.icg_depth_mm) == (
        d.rim_thickness_mm, d.tbr, d.detection_depth_mm)


@pytest.fixture(scope="module")
def icg_plan(synthetic_patient, tmp_path_factory):
    """One `plan --icg` run with every ICG parameter overridden: (folder, printed text)."""
    out = tmp_path_factory.mktemp("icg")
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        code = main(["plan", str(synthetic_patient.dicom_dir), "--resection",
                     "right_hemihepatectomy", "--wedge", "3:10",
                     "--masks", str(synthetic_patient.truth_dir), "--icg", "--icg-rim-mm", "3",
                     "--icg-tbr", "9", "--icg-depth-mm", "10", "--out", str(out)])
    assert code == 0
    return out, text.getvalue()


def test_icg_files_are_written(icg_plan, output_dir):
    out, _ = icg_plan
    names = ("icg_surface.vtp", "icg_view.png", "icg_transection.vtp", "icg_cavity.png")
    assert all((out / n).is_file() for n in names)
    surface = pv.read(out / "icg_surface.vtp")
    intensity = np.asarray(surface[SURFACE_ARRAY])
    assert surface.n_points > 1000 and intensity.shape == (surface.n_points,)
    assert np.isfinite(intensity).all() and intensity.min() >= 1.0      # background 1
    assert (intensity >= load_plan(out / "plan.liverplan.json").icg.surface.threshold).any()
    for name in ("icg_view.png", "icg_cavity.png"):
        image = np.asarray(Image.open(out / name).convert("RGB")).astype(int)
        r, g, b = image[..., 0], image[..., 1], image[..., 2]
        assert image.shape[0] >= 480 and image.shape[1] >= 640
        assert ((r > 60) | (g > 60)).sum() > 0.05 * r.size                # a liver is drawn
        assert ((g > r + 40) & (g > b + 40)).sum() > 20                    # and some NIR green
        shutil.copy(out / name, output_dir / f"plan_command_{name}")


def test_icg_table_in_the_plan_file(icg_plan, synthetic_patient):
    out, _ = icg_plan
    path = out / "plan.liverplan.json"
    d = json.loads(path.read_text())["results"]["icg"]
    icg = load_plan(path).icg
    assert icg == IcgResult.from_dict(d)
    p = icg.surface.parameters
    assert (p.rim_thickness_mm, p.tbr, p.detection_depth_mm) == (3.0, 9.0, 10.0)
    assert d["surface"]["parameters"]["tbr"] == 9.0
    truth = {x["id"]: x for x in synthetic_patient.truth["lesions"]}
    rows = {r.lesion_id: r for r in icg.surface.lesions}
    assert set(rows) == set(truth) == {r.lesion_id for r in icg.transection.lesions}
    superficial = [i for i, x in truth.items() if x["depth_mm"] < 5]
    deep = [i for i, x in truth.items() if x["depth_mm"] > 25]
    assert superficial and deep
    assert all(rows[i].visible for i in superficial) and not any(rows[i].visible for i in deep)
    cut = {r.lesion_id: r for r in icg.transection.lesions}
    assert cut[3].status == "resected" and cut[3].margin_mm == pytest.approx(10.0, abs=1.5)
    # one margin in the code base: the ICG table shows the planner's, and its flags follow R0/R1
    planned = {o.lesion_id: o for o in load_plan(path).plan.result.lesions}
    assert set(planned) == set(cut)
    for i, row in cut.items():
        assert row.status == planned[i].status
        assert row.margin_mm == (None if planned[i].margin_mm is None
                                 else round(planned[i].margin_mm, 2))
        if planned[i].r0 is not None:
            assert ("false positive" in row.flag) == (planned[i].r0 and row.nir_positive)
            assert ("NIR- expected" in row.flag) == (not planned[i].r0 and not row.nir_positive)
    # a lesion left in the remnant is stated as such, never as a margin flag
    left = [i for i, o in planned.items() if o.status == "left in place"]
    assert left
    for i in left:
        assert cut[i].flag.startswith("Left in place in the remnant")
        assert "false positive" not in cut[i].flag
    # the files are named relative to the plan's folder
    assert icg.files == ("icg_surface.vtp", "icg_view.png", "icg_transection.vtp",
                         "icg_cavity.png")
    assert all(p.is_file() for p in icg.paths(out))
    assert all("nir_positive" in row for row in d["transection"]["lesions"])
    assert any("sensitivity 60%" in line for line in d["transection"]["evidence"])
    # a plan file saved before the ICG section existed still loads
    del d
    older = json.loads(path.read_text())
    del older["results"]["icg"]
    path.write_text(json.dumps(older))
    assert load_plan(path).icg is None


def test_icg_summary_shows_every_parameter_and_the_mimic_figures(icg_plan):
    _, text = icg_plan
    for expected in ("rim 3 mm (assumed)", "TBR 9", "background 1", "effective attenuation",
                     "detection depth 10 mm", "threshold intensity",
                     "sensitivity 60%, specificity 90%, PPV 54%, NPV 92% (AUROC 0.751)",
                     "87.4% to 92.4%", "below the capsule", "NIR", "icg_view.png"):
        assert expected in text
    # the planner's lesion line and the ICG line print the same margin
    out, _ = icg_plan
    plan = load_plan(out / "plan.liverplan.json")
    for les in plan.plan.result.lesions:
        if les.margin_mm is not None:
            assert f"{les.lesion_id}: segment" in text
            assert f"margin {les.margin_mm:.1f} mm (" in text
            assert f"lesion {les.lesion_id} ({les.status}): margin {les.margin_mm:.1f} mm" in text
    assert f"wrote {out / 'icg_view.png'}" in text
