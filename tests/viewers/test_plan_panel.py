"""The Plan step on the synthetic patient (truth masks on the case), against the planner."""

from __future__ import annotations

import numpy as np
import pytest
from vtkmodules.vtkCommonCore import vtkCommand

from liverplan.case import LABEL_NAMES
from liverplan.planner.flr import PlanningContext, evaluate, plan
from liverplan.planner.followup import follow_up
from liverplan.planner.patient import Patient
from liverplan.planner.resection import PlaneCut, WedgeResection, preset
from liverplan.planner.staging import rank_strategies
from liverplan.viewers.panels.plan_panel import CUT_KEY, RESECTED_KEY
from tests.viewers.conftest import open_and_wait, truth, wait_task

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def reference(synthetic_patient):
    """An independent planning context on the truth masks (what the panel must agree with)."""
    return PlanningContext(*(truth(synthetic_patient, name) for name in
                             ("liver", "tumors", "segments", "vessels")))


def planning(window, qtbot, synthetic_patient):
    """The synthetic patient with its truth masks, the Plan step shown and ready."""
    case = open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    for name in LABEL_NAMES:
        case.set_label(name, truth(synthetic_patient, name))
    panel = window.steps.show_step("plan")
    qtbot.waitUntil(lambda: panel.ctx is not None, timeout=60_000)
    return case, panel


def choose_preset(qtbot, panel, key):
    panel.preset.setCurrentIndex(panel.preset.findData(key))
    qtbot.waitUntil(lambda: panel.current is not None and not panel._update_soon.isActive())


def test_preset_shows_the_planners_figures_and_patient_size_changes_the_sflr(
        window, qtbot, synthetic_patient, reference, output_dir):
    case, panel = planning(window, qtbot, synthetic_patient)
    # Prefilled from the DICOM tags of the phantom.
    assert panel.weight.value() == synthetic_patient.truth["weight_kg"]
    assert panel.height_cm.value() == synthetic_patient.truth["height_cm"]
    assert panel.sex.currentData() == synthetic_patient.truth["sex"]
    choose_preset(qtbot, panel, "right_hemihepatectomy")
    assert panel.checked_segments() == [5, 6, 7, 8]
    patient = Patient.from_series(case.info)
    expected = plan(reference, [preset("right_hemihepatectomy")], patient).result
    assert panel.figures["flr_ml"].text() == f"{expected.flr_ml:.0f} mL"
    assert panel.figures["flr_percent"].text() == f"{expected.flr_percent:.1f} %"
    assert panel.figures["sflr"].text() == f"{expected.sflr_percent:.1f} %"
    assert panel.figures["flr_bw"].text() == f"{expected.flr_bw_percent:.2f} %"
    assert f">{expected.verdict.upper()}<" in panel.verdict.text()
    assert "≥ 20 %" in panel.thresholds["sflr"].text()
    rows = {panel.margin_table.item(r, 0).text().split(" ")[0]: panel.margin_table.item(r, 1).text()
            for r in range(panel.margin_table.rowCount())}
    assert rows == {str(x.lesion_id): x.status for x in expected.lesions}

    # A lighter, shorter patient: smaller TELV, so a larger sFLR; the case keeps the patient.
    panel.weight.setValue(60.0)
    panel.height_cm.setValue(160.0)
    qtbot.waitUntil(lambda: not panel._update_soon.isActive())
    lighter = Patient(60.0, 160.0, patient.sex)
    assert case.patient == lighter
    again = evaluate(reference, [preset("right_hemihepatectomy")], lighter)
    assert panel.figures["sflr"].text() == f"{again.sflr_percent:.1f} %"
    assert again.sflr_percent > expected.sflr_percent
    assert panel.figures["flr_ml"].text() == f"{expected.flr_ml:.0f} mL"   # same remnant
    # Cirrhosis raises the threshold to 40 %.
    panel.quality.setCurrentIndex(panel.quality.findData("cirrhosis"))
    qtbot.waitUntil(lambda: "≥ 40 %" in panel.thresholds["sflr"].text())

    qtbot.waitUntil(lambda: {CUT_KEY, RESECTED_KEY} <= set(window.view3d.extra_actors),
                    timeout=60_000)
    window.snapshot().save(str(output_dir / "viewer_9_plan.png"))
    window.view3d.standard_view("Anterior")
    window.view3d.screenshot(output_dir / "viewer_9_plan_3d.png")


def test_dragging_the_cut_plane_updates_the_flr_like_the_planner(
        window, qtbot, synthetic_patient, reference, output_dir):
    case, panel = planning(window, qtbot, synthetic_patient)
    panel.use_plane.setChecked(True)
    widget = window.view3d.cut_plane
    assert widget is not None
    qtbot.waitUntil(lambda: panel.current is not None and not panel._update_soon.isActive())
    patient = Patient.from_series(case.info)
    origin, normal = panel.plane
    first = evaluate(reference, [PlaneCut(origin, normal)], patient)
    assert panel.figures["flr_ml"].text() == f"{first.flr_ml:.0f} mL"
    # A drag: the widget moves and tilts, VTK calls the panel at every step of the drag.
    moved = np.asarray(origin) + (15.0, 5.0, 0.0)
    tilted = np.array([-1.0, 0.2, 0.1]) / np.linalg.norm([-1.0, 0.2, 0.1])
    widget.SetOrigin(*moved)
    widget.SetNormal(*tilted)
    widget.InvokeEvent(vtkCommand.StartInteractionEvent)
    widget.InvokeEvent(vtkCommand.InteractionEvent)
    assert panel._update_soon.isActive()           # coalesced: shown when the loop is free
    qtbot.waitUntil(lambda: not panel._update_soon.isActive())
    o, n = panel.plane
    assert np.allclose(o, moved, atol=1e-6) and np.allclose(n, tilted, atol=1e-6)
    second = evaluate(reference, [PlaneCut(o, n)], patient)
    assert panel.figures["flr_ml"].text() == f"{second.flr_ml:.0f} mL"
    assert panel.figures["sflr"].text() == f"{second.sflr_percent:.1f} %"
    # Moved 15 mm to the patient's left: more of the right liver is removed.
    assert second.flr_ml < first.flr_ml
    assert panel.change_to_shown_ms > 0
    # Flipping the side removes the other part.
    panel.flip.setChecked(True)
    qtbot.waitUntil(lambda: not panel._update_soon.isActive())
    flipped = evaluate(reference, [PlaneCut(o, n, "against_normal")], patient)
    assert panel.figures["flr_ml"].text() == f"{flipped.flr_ml:.0f} mL"
    # Letting go shows the cut surface and the resected part in 3-D.
    widget.InvokeEvent(vtkCommand.EndInteractionEvent)
    qtbot.waitUntil(lambda: {CUT_KEY, RESECTED_KEY} <= set(window.view3d.extra_actors),
                    timeout=60_000)
    window.view3d.standard_view("Anterior")
    window.view3d.screenshot(output_dir / "viewer_9_plan_plane_3d.png")
    window.snapshot().save(str(output_dir / "viewer_9_plan_plane.png"))


def test_wedge_margin_is_at_least_the_chosen_margin_and_kept_plans_survive_the_case_file(
        make_window, qtbot, synthetic_patient, reference, tmp_path, output_dir):
    window = make_window()
    case, panel = planning(window, qtbot, synthetic_patient)
    lesion = max(reference.lesions.values(), key=lambda x: x.diameter_mm).lesion_id
    panel.set_wedge(lesion, True, 8.0)
    qtbot.waitUntil(lambda: panel.current is not None and not panel._update_soon.isActive())
    assert panel.current.resections == (WedgeResection(lesion, 8.0),)
    row = next(r for r in range(panel.margin_table.rowCount())
               if panel.margin_table.item(r, 0).text().startswith(f"{lesion} "))
    assert panel.margin_table.item(row, 1).text() == "resected"
    # The planner's wedge margin is the chosen one within half a voxel diagonal (the cut runs
    # between voxel centres), as tests/planner/test_margins.py asserts.
    half_diagonal_mm = 0.5 * np.linalg.norm(reference.spacing_zyx)
    shown = float(panel.margin_table.item(row, 2).text())
    assert shown == pytest.approx(8.0, abs=half_diagonal_mm)
    assert shown == pytest.approx(panel.current.result.lesion(lesion).margin_mm, abs=0.05)
    assert panel.margin_table.item(row, 3).text() == "yes"

    # Keep it together with a right hemihepatectomy; the strategy table shows rank_strategies.
    choose_preset(qtbot, panel, "right_hemihepatectomy")
    panel.plan_name.setText("right + wedge")
    panel.keep_button.click()
    assert [p.plan.name for p in case.plans] == ["right + wedge"]
    kept = case.plans[0]
    strategies = rank_strategies(kept.plan.result, kept.plan.resections, kept.plan.patient)
    assert kept.strategies == strategies
    table = [panel.strategy_table.item(r, 1).text()
             for r in range(panel.strategy_table.rowCount())]
    assert table == [s.name for s in strategies]
    ranks = [panel.strategy_table.item(r, 0).text() for r in range(len(strategies))]
    assert ranks == [str(s.rank) if s.applicable else "—" for s in strategies]
    assert panel.plan_list.count() == 1 and "right + wedge" in panel.plan_list.item(0).text()
    panel.tabs.setCurrentIndex(2)
    window.snapshot().save(str(output_dir / "viewer_9_plan_strategies.png"))

    wait_task(qtbot, window.save_to(tmp_path / "planned.liverplan"))
    other = make_window()
    reopened = open_and_wait(qtbot, other, tmp_path / "planned.liverplan")
    assert reopened.plans == case.plans
    # Reselecting the kept plan in the reopened case shows the same figures.
    panel2 = other.steps.show_step("plan")
    qtbot.waitUntil(lambda: panel2.ctx is not None, timeout=60_000)
    assert panel2.plan_list.count() == 1
    panel2.plan_list.setCurrentRow(0)
    panel2.show_button.click()
    qtbot.waitUntil(lambda: panel2.current is not None and not panel2._update_soon.isActive())
    assert panel2.current.resections == kept.plan.resections
    assert panel2.figures["flr_ml"].text() == f"{kept.plan.result.flr_ml:.0f} mL"
    panel2.remove_button.click()
    assert reopened.plans == [] and panel2.plan_list.count() == 0


def test_followup_scan_shows_the_growth_of_the_remnant(window, qtbot, synthetic_patient,
                                                       reference, output_dir):
    case, panel = planning(window, qtbot, synthetic_patient)
    choose_preset(qtbot, panel, "right_hemihepatectomy")
    fu = synthetic_patient.followup
    task = panel.open_followup(fu.dicom_dir, labels={name: truth(fu, name)
                                                     for name in LABEL_NAMES})
    wait_task(qtbot, task)
    qtbot.waitUntil(lambda: panel.followup is not None)
    after = PlanningContext(*(truth(fu, name) for name in
                              ("liver", "tumors", "segments", "vessels")),
                            info=panel.followup_scan.context.info)
    before = PlanningContext(*(truth(synthetic_patient, name) for name in
                               ("liver", "tumors", "segments", "vessels")), info=case.info)
    expected = follow_up(before, after, [preset("right_hemihepatectomy")],
                         Patient.from_series(case.info))
    assert expected.weeks == pytest.approx(fu.truth["weeks_after_pve"], abs=1 / 7)
    text = panel.followup_text.text()
    assert f"{expected.kgr_percent_per_week:.2f} %/week" in text
    assert f"{expected.before.flr_ml:.0f} mL → {expected.after.flr_ml:.0f} mL" in text
    assert f"{expected.dh_points:+.1f} points" in text
    # The phantom's left liver grew: a positive degree of hypertrophy.
    assert expected.dh_points > 0 and expected.after.flr_ml > expected.before.flr_ml
    panel.tabs.setCurrentIndex(3)
    window.snapshot().save(str(output_dir / "viewer_9_plan_followup.png"))
    # Keeping the plan carries the follow-up into the plan file.
    assert panel.keep_plan().followup == panel.followup
