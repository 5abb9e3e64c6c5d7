"""Saved cases: round trip, writes only what changed, refuses damaged or newer cases."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from liverplan.case import LIVER, TUMORS, Case
from liverplan.errors import InputError
from liverplan.geometry import image_from_array
from liverplan.io.casefile import (MANIFEST, SCHEMA_VERSION, case_path, is_case, open_case,
                                   read_manifest, save_case)
from liverplan.io.dicom_scan import SeriesInfo


def small_case() -> Case:
    ct = sitk.GetImageFromArray(np.arange(6 * 7 * 8, dtype=np.int16).reshape(6, 7, 8) - 100)
    ct.SetSpacing((0.8, 0.9, 2.5))
    ct.SetOrigin((-3.0, 4.0, 10.0))
    ct.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    info = SeriesInfo(key="1.2.3", series_instance_uid="1.2.3", study_instance_uid="1.2",
                      frame_of_reference_uid="1.2.4", patient_name="Doe^Jane", patient_id="P1",
                      patient_sex="F", study_date="20260101", modality="CT", description="PV",
                      n_images=6, rows=7, columns=8, pixel_spacing_mm=(0.9, 0.8),
                      slice_spacing_mm=2.5, phase_hint="portal", weight_kg=70.0, height_cm=170.0,
                      files=("a", "b"))
    case = Case(image=ct, info=info, warnings=["slice gap filled"])
    liver = np.zeros((6, 7, 8), np.uint8)
    liver[1:5, 2:6, 2:7] = 1
    case.set_label(LIVER, image_from_array(liver, ct))
    tumors = np.zeros((6, 7, 8), np.uint16)
    tumors[2, 3, 3], tumors[3, 4, 5] = 1, 2
    case.set_label(TUMORS, image_from_array(tumors, ct))
    return case


def arrays_equal(a: sitk.Image, b: sitk.Image) -> bool:
    return (np.array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b))
            and a.GetPixelID() == b.GetPixelID())


def test_round_trip_keeps_image_labels_geometry_and_series(tmp_path):
    case = small_case()
    folder = save_case(case, tmp_path / "patient", source="/data/dicom", view={"window": [150, 90]})
    assert folder.name == "patient.liverplan" and is_case(folder)
    opened, manifest = open_case(folder)
    assert arrays_equal(opened.image, case.image)
    assert opened.image.GetDirection() == case.image.GetDirection()
    assert np.allclose(opened.image.GetSpacing(), case.image.GetSpacing())
    assert np.allclose(opened.image.GetOrigin(), case.image.GetOrigin())
    assert set(opened.labels) == {LIVER, TUMORS}
    for name in opened.labels:
        assert arrays_equal(opened.labels[name], case.labels[name])
    assert opened.info == case.info
    assert opened.warnings == ["slice gap filled"]
    assert manifest["source"] == "/data/dicom" and manifest["view"] == {"window": [150, 90]}
    assert manifest["schema_version"] == SCHEMA_VERSION


def test_resave_writes_only_what_changed_and_removes_stale_files(tmp_path):
    case = small_case()
    folder = save_case(case, tmp_path / "c.liverplan")
    first = read_manifest(folder)
    image_inode = (folder / first["image"]).stat().st_ino
    liver = sitk.GetArrayFromImage(case.labels[LIVER])
    liver[0, 0, 0] = 1
    case.set_label(LIVER, image_from_array(liver, case.image))
    save_case(case, folder)
    second = read_manifest(folder)
    assert second["image"] == first["image"]
    assert (folder / second["image"]).stat().st_ino == image_inode     # not rewritten
    assert second["labels"][TUMORS] == first["labels"][TUMORS]
    assert second["labels"][LIVER] != first["labels"][LIVER]
    assert not (folder / first["labels"][LIVER]).exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [MANIFEST, second["image"], *second["labels"].values()])
    assert sitk.GetArrayFromImage(open_case(folder)[0].labels[LIVER])[0, 0, 0] == 1


def test_newer_schema_is_refused_with_advice(tmp_path):
    folder = save_case(small_case(), tmp_path / "c")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["schema_version"] = SCHEMA_VERSION + 1
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="newer LiverPlan"):
        open_case(folder)


def test_label_off_the_image_grid_is_refused(tmp_path):
    folder = save_case(small_case(), tmp_path / "c")
    manifest = read_manifest(folder)
    moved = sitk.ReadImage(str(folder / manifest["labels"][LIVER]))
    moved.SetOrigin((0.0, 0.0, 0.0))
    sitk.WriteImage(moved, str(folder / manifest["labels"][LIVER]))
    with pytest.raises(InputError, match="grid"):
        open_case(folder)


def test_not_a_case(tmp_path):
    with pytest.raises(InputError, match="not a saved LiverPlan case"):
        open_case(tmp_path)
    assert case_path(tmp_path / "x") == tmp_path / "x.liverplan"
    assert case_path(tmp_path / "x.liverplan") == tmp_path / "x.liverplan"


def test_patient_and_plans_survive_save_and_open(tmp_path):
    from liverplan.planner.flr import PlanningContext, plan
    from liverplan.planner.patient import Patient
    from liverplan.planner.planfile import PlanFile
    from liverplan.planner.resection import PlaneCut

    case = small_case()
    case.set_patient(Patient(weight_kg=70.0, height_cm=170.0, quality="chemo"))
    ctx = PlanningContext(case.labels[LIVER], case.labels[TUMORS])
    cut = PlaneCut(point_mm=(0.0, 0.0, 17.5), normal=(0.0, 0.0, 1.0))
    first = PlanFile(plan(ctx, [cut], case.patient, name="cranial half"))
    assert case.put_plan(first) == 0
    assert case.put_plan(PlanFile(plan(ctx, [cut], case.patient, name="other"))) == 1
    assert case.put_plan(first) == 0 and len(case.plans) == 2      # same name: replaced
    opened, _ = open_case(save_case(case, tmp_path / "p"))
    assert opened.patient == case.patient
    assert [p.plan.name for p in opened.plans] == ["cranial half", "other"]
    assert opened.plans[0].plan.result.flr_ml == pytest.approx(first.plan.result.flr_ml)
    assert 0 < first.plan.result.flr_ml < first.plan.result.liver_volume_ml


def test_damaged_plan_in_case_is_refused_naming_the_file(tmp_path):
    folder = save_case(small_case(), tmp_path / "p")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["plans"] = [{"inputs": {}}]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="plans.*damaged") as err:
        open_case(folder)
    assert MANIFEST in str(err.value)


def test_segment_corrections_survive_save_and_open(tmp_path):
    from liverplan.volumetry.segments import Landmarks, SegmentEdits

    case = small_case()
    marks = Landmarks(*[(float(k), -2.5 * k, 10.0 + k) for k in range(6)])
    case.segment_edits = SegmentEdits(marks, (((-40.0, 5.5, 12.25), 4), ((3.0, -1.0, 2.0), 0)),
                                      ("umbilical_fissure_lps_mm",))
    case.segments_method = "portal territories, 2 branch assignment(s) by hand"
    opened, _ = open_case(save_case(case, tmp_path / "p"))
    assert opened.segment_edits == case.segment_edits
    assert opened.segments_method == case.segments_method
    plain, _ = open_case(save_case(small_case(), tmp_path / "q"))
    assert plain.segment_edits is None and plain.segments_method is None


@pytest.mark.parametrize("damage", [
    {"landmarks": {"ivc_lps_mm": [0, 0, 0]}, "branch_points": []},      # landmarks missing
    {"landmarks": None, "branch_points": [[[1.0, 2.0], 4]]},            # a point without z
    {"landmarks": None, "branch_points": [[[1.0, 2.0, 3.0], 9]]},       # no segment 9
    {"landmarks": None, "branch_points": [], "moved": ["gallbladder"]},  # no such landmark
    {"segments_method": 3},                                             # not a text
])
def test_damaged_segment_corrections_are_refused_naming_the_file(tmp_path, damage):
    folder = save_case(small_case(), tmp_path / "p")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest.update(damage if "segments_method" in damage else {"segment_edits": damage})
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="segment corrections.*damaged") as err:
        open_case(folder)
    assert MANIFEST in str(err.value)
