"""The whole workflow a surgeon follows, in one real window on the synthetic patient: open,
segment automatically, correct the liver with a seed, plan a right hemihepatectomy, see the
planner's FLR in the panel, predict and toggle ICG, save, and reopen the case elsewhere.
A screenshot of each step goes to the test output folder (workflow_*.png)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from scipy import ndimage as ndi

from liverplan.case import LIVER, SEGMENTS, TUMORS, VESSELS
from liverplan.geometry import image_from_array, index_to_lps
from liverplan.planner.flr import PlanningContext, plan
from liverplan.planner.patient import Patient
from liverplan.planner.resection import preset
from liverplan.viewers.reslice import AXIAL
from tests.viewers.conftest import open_and_wait, truth, wait_task

pytestmark = pytest.mark.gui
RIGHT = "right_hemihepatectomy"


def array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def test_open_segment_correct_plan_icg_save_and_reopen(make_window, qtbot, synthetic_patient,
                                                        output_dir, tmp_path):
    window = make_window()

    def shot(name: str) -> None:
        QApplication.processEvents()          # pending layout requests: what a person sees
        window.snapshot().save(str(output_dir / f"workflow_{name}.png"))

    case = open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    shot("1_open")

    # Segment: liver, lesions, vessels and segments from the automatic pipeline.
    segment = window.steps.show_step("segment")
    wait_task(qtbot, segment.run(), timeout=600_000)
    assert {LIVER, TUMORS, VESSELS, SEGMENTS} <= set(case.labels)
    reference = array(truth(synthetic_patient, LIVER)) > 0
    assert dice(array(case.labels[LIVER]) > 0, reference) > 0.95
    true_lesions = array(truth(synthetic_patient, TUMORS))
    found = array(case.labels[TUMORS])
    for lesion in synthetic_patient.truth["lesions"]:
        assert np.any(found[true_lesions == lesion["id"]]), f"lesion {lesion['id']} missed"
    assert set(np.unique(array(case.labels[SEGMENTS]))) == set(range(9))
    assert case.segments_method == "portal territories"       # for the report
    n_lesions = len(np.unique(found)) - 1
    assert f"{n_lesions} lesion(s)" in segment.result.text() and window.dirty
    assert {LIVER, TUMORS, VESSELS, SEGMENTS} <= set(window.state.labels)    # shown
    shot("2_segmented")

    # Review & correct: a gap in the liver mask (as a poorly enhancing area leaves) is filled
    # by one include seed clicked in it (a local update, done at the click).
    auto = array(case.labels[LIVER]) > 0
    sp = case.image.GetSpacing()[::-1]
    keep_off = (found > 0) | (array(case.labels[VESSELS]) > 0)
    depth = np.minimum(ndi.distance_transform_edt(auto, sampling=sp),
                       ndi.distance_transform_edt(~keep_off, sampling=sp))
    centre = np.unravel_index(np.argmax(depth), auto.shape)
    zyx = np.indices(auto.shape, dtype=np.float32)
    gap = sum(((zyx[i] - centre[i]) * sp[i]) ** 2 for i in range(3)) <= 6.0 ** 2
    case.set_label(LIVER, image_from_array((auto & ~gap).astype(np.uint8), case.labels[LIVER]))
    review = window.steps.show_step("review")
    point = index_to_lps(case.image, np.array(centre))[0]
    window.state.set_cursor(point)
    qtbot.mouseClick(review.tool_buttons["include"], Qt.LeftButton)
    axial = window.views[AXIAL]
    qtbot.mouseClick(axial, Qt.LeftButton, pos=axial.lps_to_widget(point).toPoint())
    corrected = array(case.labels[LIVER]) > 0
    assert np.count_nonzero(gap & corrected) > 0.95 * np.count_nonzero(gap)
    assert np.count_nonzero(corrected & ~auto) < 0.05 * np.count_nonzero(gap)   # nothing else
    shot("3_corrected")
    window.steps.show_step("volumetry")
    volumetry = window.steps.panels["volumetry"]
    qtbot.waitUntil(lambda: volumetry.table.rowCount() > 0 and not volumetry.task.running
                    and not volumetry._soon.isActive(), timeout=60_000)
    shot("4_volumetry")

    # Plan: the right hemihepatectomy; the panel shows the planner's figures for these masks.
    planner = window.steps.show_step("plan")
    qtbot.waitUntil(lambda: planner.ctx is not None, timeout=120_000)   # of the corrected masks
    planner.preset.setCurrentIndex(planner.preset.findData(RIGHT))
    qtbot.waitUntil(lambda: planner.current is not None and not planner._update_soon.isActive())
    expected = plan(PlanningContext.from_case(case), [preset(RIGHT)],
                    Patient.from_series(case.info)).result
    assert planner.figures["flr_ml"].text() == f"{expected.flr_ml:.0f} mL"
    assert planner.figures["sflr"].text() == f"{expected.sflr_percent:.1f} %"
    assert f">{expected.verdict.upper()}<" in planner.verdict.text()
    kept = planner.keep_plan()
    assert case.plans == [kept]
    shot("5_plan")

    # ICG: predicted on the kept plan's transection; G toggles the overlay in the 3-D view.
    icg = window.steps.show_step("icg")
    icg.plan_box.setCurrentIndex(icg.plan_box.findText(kept.plan.name))
    qtbot.mouseClick(icg.predict_button, Qt.LeftButton)
    wait_task(qtbot, icg.task)
    assert icg.show_action.isChecked() and not window.state.visible["liver"]
    shot("6_icg")
    qtbot.keyClick(axial, Qt.Key_G)
    assert not icg.show_action.isChecked() and window.state.visible["liver"]
    qtbot.keyClick(axial, Qt.Key_G)
    assert icg.show_action.isChecked()
    stored = case.plans[0].icg
    assert stored is not None and stored.transection is not None

    # Saved and reopened in another window: masks, the plan and its ICG prediction come back.
    wait_task(qtbot, window.save_to(tmp_path / "patient.liverplan"))
    assert not window.dirty
    other = make_window()
    reopened = open_and_wait(qtbot, other, tmp_path / "patient.liverplan")
    for name in (LIVER, TUMORS, VESSELS, SEGMENTS):
        assert np.array_equal(array(reopened.labels[name]), array(case.labels[name]))
    assert reopened.segments_method == "portal territories"
    assert [p.plan.name for p in reopened.plans] == [kept.plan.name]
    assert reopened.plans[0].plan.result.flr_ml == pytest.approx(expected.flr_ml)
    assert reopened.plans[0].icg == stored
    other.steps.show_step("plan")
    other.snapshot().save(str(output_dir / "workflow_7_reopened.png"))
