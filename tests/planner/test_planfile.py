import json

import pytest

from liverplan.errors import PlanningError
from liverplan.planner.flr import Plan, PlanningContext, evaluate
from liverplan.planner.patient import Patient
from liverplan.planner.planfile import (SCHEMA_VERSION, PlanFile, load_plan, plan_path,
                                        save_plan, series_inputs)
from liverplan.planner.resection import PlaneCut, SurfaceCut, WedgeResection, preset
from liverplan.planner.staging import rank_strategies
from tests.planner import resection_phantom as ph


@pytest.fixture(scope="module")
def planfile():
    images = ph.images()
    ctx = PlanningContext(*images)
    patient = Patient(20, 100, "F", "chemo")
    ref = images[0]
    surface = SurfaceCut.from_plane(ph.lps(ref, (20, 24, 50.5)), ph.lps_direction(ref, (0, 0, 1)), n=4)
    resections = (preset("right_hemihepatectomy"), WedgeResection(2, 5.0),
                  PlaneCut(ph.lps(ref, (20, 24, 58.5)), ph.lps_direction(ref, (0, 0, 1))), surface)
    result = evaluate(ctx, resections, patient)
    plan = Plan(resections, patient, result, "right hemi + wedge")
    info = type("Info", (), {"series_instance_uid": "1.2.3", "study_instance_uid": "1.2",
                             "frame_of_reference_uid": "1.2.9", "study_date": "20260302"})()
    return PlanFile(plan, series_inputs(info), {"portal bifurcation": (1.0, 2.0, 3.0)},
                    rank_strategies(result, resections, patient))


def test_round_trip(tmp_path, planfile):
    path = plan_path(tmp_path, "case1")
    assert path.name == "case1.liverplan.json"
    saved = save_plan(path, planfile)
    assert saved.saved_at and saved.software_version
    loaded = load_plan(path)
    assert loaded == saved
    assert loaded.plan.resections == planfile.plan.resections
    assert loaded.series["series_instance_uid"] == "1.2.3"
    d = json.loads(path.read_text())
    assert d["schema_version"] == SCHEMA_VERSION and set(d) >= {"inputs", "results", "saved_at"}
    assert [r["kind"] for r in d["inputs"]["resections"]] == ["segments", "wedge", "plane", "surface"]
    assert not list(tmp_path.glob("*.tmp*")) and len(list(tmp_path.iterdir())) == 1


def test_damaged_file_names_the_file(tmp_path, planfile):
    path = plan_path(tmp_path)
    save_plan(path, planfile)
    path.write_text(path.read_text()[:500])
    with pytest.raises(PlanningError, match="damaged") as err:
        load_plan(path)
    assert str(path) in str(err.value)


def test_incomplete_file_is_refused(tmp_path, planfile):
    path = plan_path(tmp_path)
    save_plan(path, planfile)
    d = json.loads(path.read_text())
    del d["results"]["plan"]["flr_ml"]
    path.write_text(json.dumps(d))
    with pytest.raises(PlanningError, match="incomplete or damaged"):
        load_plan(path)


@pytest.mark.parametrize("version, advice", [(0, "Re-create"), (SCHEMA_VERSION + 1, "newer LiverPlan")])
def test_other_schema_versions_are_refused(tmp_path, planfile, version, advice):
    path = plan_path(tmp_path)
    save_plan(path, planfile)
    d = json.loads(path.read_text())
    d["schema_version"] = version
    path.write_text(json.dumps(d))
    with pytest.raises(PlanningError, match=advice) as err:
        load_plan(path)
    assert f"schema version {version}" in str(err.value) and str(path) in str(err.value)


def test_not_a_plan_and_missing_file(tmp_path):
    other = tmp_path / "x.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(PlanningError, match="not a LiverPlan plan file"):
        load_plan(other)
    with pytest.raises(PlanningError, match="not found"):
        load_plan(tmp_path / "missing.liverplan.json")


def test_failed_save_keeps_the_previous_file(tmp_path, planfile):
    path = plan_path(tmp_path)
    save_plan(path, planfile)
    before = path.read_text()
    bad = PlanFile(planfile.plan, {"x": float("nan")})
    with pytest.raises(ValueError):
        save_plan(path, bad)
    assert path.read_text() == before
