"""The ICG step on the real window: parameters, the per-lesion table against the core, the green
overlay in the 3-D view, the plan's stored prediction and the simulated NIR view."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from liverplan import evidence
from liverplan.case import LIVER, SEGMENTS, TUMORS, VESSELS
from liverplan.planner.flr import PlanningContext, plan, resected_image
from liverplan.planner.icg import IcgParameters, surface_fluorescence, transection_fluorescence
from liverplan.planner.patient import Patient
from liverplan.planner.planfile import PlanFile, series_inputs
from liverplan.planner.resection import preset
from liverplan.viewers.panels.icg_panel import NO_PLAN, short_flag
from tests.viewers.conftest import open_and_wait, truth, wait_task

pytestmark = pytest.mark.gui
PLAN_NAME = "Right hemihepatectomy"


def open_planned(qtbot, window, patient):
    """The synthetic patient with its truth masks and a right hemihepatectomy kept as a plan."""
    case = open_and_wait(qtbot, window, patient.dicom_dir)
    for name in (LIVER, TUMORS, VESSELS, SEGMENTS):
        case.set_label(name, truth(patient, name))
    ctx = PlanningContext.from_case(case)
    planned = plan(ctx, [preset("right_hemihepatectomy")], Patient.from_series(case.info),
                   name=PLAN_NAME)
    case.put_plan(PlanFile(planned, series_inputs(case.info)))
    return case, ctx, planned


def table(panel) -> dict[int, list[str]]:
    """Lesion id -> the texts of its row, as the user reads them."""
    t = panel.table
    return {int(t.item(r, 0).text()): [t.item(r, c).text() for c in range(2, t.columnCount())]
            for r in range(t.rowCount())}


def predict(qtbot, panel):
    qtbot.mouseClick(panel.predict_button, Qt.LeftButton)
    wait_task(qtbot, panel.task)
    assert panel.prediction is not None


def greens(window, path) -> int:
    shot = np.asarray(Image.open(window.view3d.screenshot(path)))[..., :3].astype(int)
    return int(np.count_nonzero((shot[..., 1] > shot[..., 0] + 40) &
                                (shot[..., 1] > shot[..., 2] + 40)))


def test_every_model_parameter_has_a_spin_box_with_unit_range_and_source(window):
    panel = window.steps.panels["icg"]
    wanted = {f.name for f in fields(IcgParameters)} - {"lesion_patterns"}
    assert set(panel.spins) == wanted
    assert panel.parameters() == IcgParameters()           # defaults shown
    rim = panel.spins["rim_thickness_mm"]
    assert (rim.minimum(), rim.maximum()) == (0.5, 5.0) and rim.suffix() == " mm"
    assert "ASSUMPTION" in rim.toolTip()
    assert evidence.ICG_TBR.source in panel.spins["tbr"].toolTip()
    assert evidence.ICG_DETECTION_DEPTH_MM.source in panel.spins["detection_depth_mm"].toolTip()
    assert "MIMIC" in panel.mimic.text() and "NPV 92%" in panel.mimic.text()


def test_surface_prediction_table_equals_the_core_and_shows_green_in_3d(
        window, qtbot, synthetic_patient, output_dir):
    case, _, _ = open_planned(qtbot, window, synthetic_patient)
    panel = window.steps.show_step("icg")
    assert panel.plan_box.currentText() == NO_PLAN
    window.view3d.standard_view("Anterior")
    qtbot.waitUntil(lambda: "liver" in window.view3d.actors, timeout=60_000)
    plain = greens(window, output_dir / "viewer_icg_3d_plain.png")
    predict(qtbot, panel)

    _, core = surface_fluorescence(case.label(LIVER), case.label(TUMORS), IcgParameters())
    rows = table(panel)
    assert set(rows) == {r.lesion_id for r in core.lesions}
    for r in core.lesions:
        assert rows[r.lesion_id][:3] == [f"{r.depth_mm:.1f}", "yes" if r.visible else "no",
                                          f"{r.peak_intensity:.2f}"]
    # The synthetic patient's truth: superficial lesions glow, deep ones do not.
    depth = {int(x["id"]): x["depth_mm"] for x in synthetic_patient.truth["lesions"]}
    detection = IcgParameters().detection_depth_mm
    assert [i for i in depth if depth[i] < detection - 2]
    assert all(rows[i][1] == "yes" for i in depth if depth[i] < detection - 2)
    assert all(rows[i][1] == "no" for i in depth if depth[i] > detection + 2)

    # The 3-D view: green where fluorescence is expected, the plain liver hidden meanwhile.
    assert panel.show_action.isChecked() and not window.state.visible["liver"]
    shown = greens(window, output_dir / "viewer_icg_3d.png")
    assert shown > plain + 300
    window.snapshot().save(str(output_dir / "viewer_9_icg.png"))
    panel.show_action.trigger()               # the "Show ICG" toggle (shortcut G)
    assert not panel.show_action.isChecked() and window.state.visible["liver"]
    assert greens(window, output_dir / "viewer_icg_3d_off.png") <= plain + 20

    # Thicker rim and brighter rim: more signal; dimmer rim: less (peak of each lesion).
    def peaks():
        return {i: float(row[2]) for i, row in table(panel).items()}
    base = peaks()
    panel.spins["rim_thickness_mm"].setValue(4.0)
    predict(qtbot, panel)
    thicker = peaks()
    panel.reset_parameters()
    panel.spins["tbr"].setValue(2.0)
    predict(qtbot, panel)
    dimmer = peaks()
    deep = max(depth, key=depth.get)
    for i in base:
        if i != deep:                                   # the deepest gives background only
            assert thicker[i] > base[i] > dimmer[i]
    _, dim = surface_fluorescence(case.label(LIVER), case.label(TUMORS), IcgParameters(tbr=2.0))
    assert {i: row[1] for i, row in table(panel).items()} == {
        r.lesion_id: "yes" if r.visible else "no" for r in dim.lesions}
    assert sum(r.visible for r in dim.lesions) <= sum(r.visible for r in core.lesions)


def test_transection_prediction_is_stored_in_the_plan_and_survives_save(
        make_window, qtbot, synthetic_patient, output_dir, tmp_path):
    window = make_window()
    case, ctx, planned = open_planned(qtbot, window, synthetic_patient)
    panel = window.steps.show_step("icg")
    panel.plan_box.setCurrentIndex(panel.plan_box.findText(PLAN_NAME))
    panel.spins["rim_thickness_mm"].setValue(2.5)
    predict(qtbot, panel)

    params = IcgParameters(rim_thickness_mm=2.5)
    _, core = transection_fluorescence(case.label(LIVER), case.label(TUMORS),
                                       resected_image(ctx, planned.resections), params,
                                       outcomes=planned.result.lesions)
    rows = table(panel)
    for r in core.lesions:
        margin = "—" if r.margin_mm is None else f"{r.margin_mm:.1f}"
        assert rows[r.lesion_id][3:] == [margin, "NIR+" if r.nir_positive else "NIR−",
                                         short_flag(r)]
        if r.flag:
            assert r.flag in panel.notes.text()
    stored = case.plans[0].icg
    assert stored is not None and stored.transection.lesions == core.lesions
    assert stored.surface.parameters == params
    window.snapshot().save(str(output_dir / "viewer_9_icg_transection.png"))
    window.view3d.screenshot(output_dir / "viewer_icg_3d_transection.png")

    # The simulated NIR laparoscope picture, saved for the OR.
    qtbot.mouseClick(panel.nir_button, Qt.LeftButton)
    wait_task(qtbot, panel.nir_task)
    qtbot.waitUntil(lambda: panel.dialog is not None and panel.dialog.isVisible())
    saved = panel.dialog.save(output_dir / "viewer_icg_nir.png")
    assert panel.dialog.save(saved / "inside_a_file.png") is None      # shown, not raised
    assert window.log_panel.entries[-1][0] == "error"
    image = np.asarray(Image.open(saved))
    assert image.shape[:2] == (768, 1024)
    g = image[..., :3].astype(int)
    # green where a superficial lesion faces the laparoscope (the red liver has none)
    assert np.count_nonzero((g[..., 1] > g[..., 0] + 40) & (g[..., 1] > g[..., 2] + 40)) > 50
    panel.dialog.grab().save(str(output_dir / "viewer_9_icg_nir_dialog.png"))

    # Saved with the case, reopened with it; choosing the plan brings its parameters back.
    wait_task(qtbot, window.save_to(tmp_path / "patient.liverplan"))
    other = make_window()
    reopened = open_and_wait(qtbot, other, tmp_path / "patient.liverplan")
    assert reopened.plans[0].icg == stored
    other_panel = other.steps.show_step("icg")
    other_panel.plan_box.setCurrentIndex(other_panel.plan_box.findText(PLAN_NAME))
    other_panel.plan_box.activated.emit(other_panel.plan_box.currentIndex())
    assert other_panel.parameters() == params
