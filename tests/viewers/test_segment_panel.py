"""The Segment step's seeded mode: the liver grown from the crosshair, in the real window, on an
image the automatic mode refuses (MR-like signal), and on CT with the rest of the pipeline."""

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
from tests.viewers.conftest import open_and_wait, truth, wait_task

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
