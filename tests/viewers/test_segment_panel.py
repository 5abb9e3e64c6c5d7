"""Images not in HU (MR) in the real window: shown with a window fitted to them, and the
Segment step's seeded mode (the liver grown from the crosshair), which also serves a CT with
the rest of the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from PySide6.QtCore import Qt
from scipy import ndimage as ndi

from liverplan.case import LIVER, TUMORS, VESSELS
from liverplan.geometry import index_to_lps
from liverplan.io import load, write_image
from liverplan.viewers.panels.segment_panel import segment_image
from liverplan.viewers.reslice import AXIAL
from liverplan.viewers.view_state import WINDOW_ABDOMEN, WINDOW_LIVER
from tests.viewers.conftest import open_and_wait, truth, view_pixels, wait_task

pytestmark = pytest.mark.gui


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def _deep_liver_point(patient) -> tuple:
    """The point of the true liver farthest from its surface (LPS mm)."""
    liver = truth(patient, LIVER)
    depth = ndi.distance_transform_edt(sitk.GetArrayFromImage(liver) > 0,
                                       sampling=liver.GetSpacing()[::-1])
    return tuple(index_to_lps(liver, np.array(np.unravel_index(np.argmax(depth),
                                                               depth.shape)))[0])


def test_seeded_mode_grows_the_liver_of_an_mr_image_from_the_crosshair(window, qtbot,
                                                                      synthetic_patient,
                                                                      tmp_path):
    ct = load(synthetic_patient.dicom_dir).image
    mr = sitk.Cast(ct, sitk.sitkFloat32) * 3.0 + 3500.0          # arbitrary signal units
    path = write_image(mr, tmp_path / "mr.nii.gz")
    case = open_and_wait(qtbot, window, path)
    # shown with a window fitted to its signal: the CT window showed every tissue pure white
    assert window.state.window != WINDOW_ABDOMEN
    pixels = view_pixels(window.views[AXIAL])
    assert np.mean(pixels.min(axis=2) >= 250) < 0.05
    panel = window.steps.show_step("segment")

    # The automatic mode refuses it and points to the seeded mode.
    wait_task(qtbot, panel.run())
    assert LIVER not in case.labels
    assert any(level == "error" and "Liver from the crosshair" in message
               for level, message in window.log_panel.entries)

    # A click inside the liver puts the crosshair there; the button grows the liver from it.
    point = _deep_liver_point(synthetic_patient)
    window.state.set_cursor(point)
    axial = window.views[AXIAL]
    qtbot.mouseClick(axial, Qt.LeftButton, pos=axial.lps_to_widget(point).toPoint())
    assert np.linalg.norm(window.state.cursor_lps - point) < 2.0
    wait_task(qtbot, panel.run_seeded())
    reference = sitk.GetArrayFromImage(truth(synthetic_patient, LIVER)) > 0
    assert _dice(sitk.GetArrayFromImage(case.labels[LIVER]) > 0, reference) >= 0.93
    # HU-based stages are not run on it, and the user is told so
    assert TUMORS not in case.labels and VESSELS not in case.labels
    assert any(level == "warning" and "only the liver" in message
               for level, message in window.log_panel.entries)
    assert "0 lesion(s)" in panel.result.text()


def test_seeded_mode_on_ct_runs_the_lesion_stage_on_the_grown_liver(synthetic_patient):
    ct = load(synthetic_patient.dicom_dir).image
    result = segment_image(ct, with_vessels=False,
                           liver_seed_lps=_deep_liver_point(synthetic_patient))
    reference = sitk.GetArrayFromImage(truth(synthetic_patient, LIVER)) > 0
    assert _dice(sitk.GetArrayFromImage(result.labels[LIVER]) > 0, reference) >= 0.93
    found = sitk.GetArrayFromImage(result.labels[TUMORS])
    true_lesions = sitk.GetArrayFromImage(truth(synthetic_patient, TUMORS))
    for lesion in synthetic_patient.truth["lesions"]:
        assert np.any(found[true_lesions == lesion["id"]]), f"lesion {lesion['id']} missed"


def test_the_window_follows_the_kind_of_image(window, qtbot, synthetic_patient):
    """A CT keeps the window the user chose; an image not in HU gets one fitted to it; the
    next CT the CT window again."""
    ct = load(synthetic_patient.dicom_dir).image
    state = window.state
    state.set_image(ct)
    state.set_window(*WINDOW_LIVER)
    state.set_image(ct)
    assert state.window == WINDOW_LIVER
    mr = sitk.Cast(ct, sitk.sitkFloat32) * 3.0 + 3500.0
    state.set_image(mr)
    low, high = state.window[1] - state.window[0] / 2, state.window[1] + state.window[0] / 2
    liver = sitk.GetArrayFromImage(truth(synthetic_patient, LIVER)) > 0
    assert low < np.median(sitk.GetArrayFromImage(mr)[liver]) < high
    state.set_image(ct)
    assert state.window == WINDOW_ABDOMEN
