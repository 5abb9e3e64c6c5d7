"""The Review & correct step on the synthetic patient: real window, real mouse events."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from PySide6.QtCore import QPoint, Qt
from scipy import ndimage as ndi

from liverplan.case import LIVER, SEGMENTS, TUMORS, VESSELS
from liverplan.geometry import image_from_array, index_to_lps
from liverplan.io.casefile import open_case, save_case
from liverplan.viewers.reslice import AXIAL, CORONAL
from liverplan.volumetry.segments import (LANDMARK_PLANES, PORTAL_TERRITORIES, assignments_at,
                                          automatic_landmarks, branch_segments,
                                          couinaud_segments, typical_landmarks)
from liverplan.volumetry.vessels import analyse_vessels
from tests.viewers.conftest import centre_on, open_and_wait, truth, wait_task

pytestmark = pytest.mark.gui


def array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def open_with(qtbot, window, patient, labels: dict):
    case = open_and_wait(qtbot, window, patient.dicom_dir)
    for name, image in labels.items():
        case.set_label(name, image)
    panel = window.steps.show_step("review")
    return case, panel


def use_tool(qtbot, panel, key: str) -> None:
    qtbot.mouseClick(panel.tool_buttons[key], Qt.LeftButton)
    assert panel.active is not None and panel.active.key == key


def widget_point(view, point_lps) -> QPoint:
    return view.lps_to_widget(point_lps).toPoint()


def total_liver_ml(qtbot, window) -> float:
    """The Total liver cell of the Volumetry table once it matches the current masks."""
    panel = window.steps.panels["volumetry"]
    qtbot.waitUntil(lambda: panel.table.rowCount() > 0 and panel.task is not None
                    and not panel.task.running and not panel._soon.isActive(), timeout=60_000)
    cells = {panel.table.item(r, 0).text(): panel.table.item(r, 1).text()
             for r in range(panel.table.rowCount())}
    return float(cells["Total liver"])


def deep_point(liver: np.ndarray, avoid: np.ndarray, spacing_zyx) -> np.ndarray:
    """(z, y, x) of the liver voxel farthest from both the capsule and `avoid`."""
    inside = ndi.distance_transform_edt(liver, sampling=spacing_zyx)
    away = ndi.distance_transform_edt(~avoid, sampling=spacing_zyx)
    return np.array(np.unravel_index(np.argmax(np.minimum(inside, away)), liver.shape))


def ball(shape, centre_zyx, radius_mm, spacing_zyx) -> np.ndarray:
    zyx = np.indices(shape, dtype=np.float32)
    return sum(((zyx[i] - centre_zyx[i]) * spacing_zyx[i]) ** 2 for i in range(3)) \
        <= radius_mm ** 2


def test_include_seed_clicked_in_a_hole_fills_it_and_the_volume_grows(
        window, qtbot, synthetic_patient):
    liver_truth = truth(synthetic_patient, LIVER)
    reference = array(liver_truth) > 0
    other = (array(truth(synthetic_patient, TUMORS)) > 0) | (
        array(truth(synthetic_patient, VESSELS)) > 0)
    sp = liver_truth.GetSpacing()[::-1]
    centre = deep_point(reference, other, sp)
    hole = ball(reference.shape, centre, 6.0, sp) & reference
    holed = reference & ~hole
    case, panel = open_with(qtbot, window, synthetic_patient,
                            {LIVER: image_from_array(holed.astype(np.uint8), liver_truth)})
    before_ml = total_liver_ml(qtbot, window)
    point = index_to_lps(liver_truth, centre)[0]
    window.state.set_cursor(point)
    use_tool(qtbot, panel, "include")
    cursor = window.state.cursor_lps.copy()
    axial = window.views[AXIAL]
    qtbot.mouseClick(axial, Qt.LeftButton, pos=widget_point(axial, point))
    liver = array(case.labels[LIVER]) > 0
    assert liver[hole].mean() > 0.95                       # the hole is filled
    assert np.count_nonzero(liver & ~reference) < 0.05 * hole.sum()   # and little else
    assert np.array_equal(window.state.cursor_lps, cursor)  # a tool click moves no crosshair
    qtbot.waitUntil(lambda: total_liver_ml(qtbot, window) > before_ml + 0.5, timeout=60_000)
    assert "liver +" in panel.status.text() and "mL" in panel.status.text()


def test_brush_and_eraser_change_the_mask_where_painted_in_the_coronal_view(
        window, qtbot, synthetic_patient, output_dir):
    liver_truth = truth(synthetic_patient, LIVER)
    case, panel = open_with(qtbot, window, synthetic_patient, {LIVER: liver_truth})
    centre_on(window, liver_truth)
    coronal = window.views[CORONAL]
    vol = window.state.volume
    rows, cols = vol.slice_shape(CORONAL)
    before = array(case.labels[LIVER])
    use_tool(qtbot, panel, "brush")
    panel.radius.setValue(4.0)
    # A stroke in the upper left quarter of the coronal image: the patient's right, cranial.
    a = coronal.display_to_widget(cols * 0.15, rows * 0.2).toPoint()
    b = coronal.display_to_widget(cols * 0.3, rows * 0.3).toPoint()
    m = (a + b) / 2                       # rounded to a pixel: the stroke bends slightly there
    qtbot.mousePress(coronal, Qt.LeftButton, pos=a)
    qtbot.mouseMove(coronal, m)
    qtbot.mouseMove(coronal, b)
    window.snapshot().save(str(output_dir / "viewer_review_brush.png"))
    qtbot.mouseRelease(coronal, Qt.LeftButton, pos=b)
    after = array(case.labels[LIVER])
    painted = np.argwhere((after > 0) & (before == 0))
    assert len(painted) > 20 and not np.any((after == 0) & (before > 0))
    # All in the shown coronal slice (one LPS y), on the screen-left (patient right, -x) and
    # upper (superior, +z) side of the volume's centre.
    lps = index_to_lps(case.image, painted)
    middle = vol.center_lps()
    y = coronal.widget_to_lps(a)[1]
    assert np.allclose(lps[:, 1], y, atol=case.image.GetSpacing()[1] / 2 + 1e-6)
    assert np.all(lps[:, 0] < middle[0]) and np.all(lps[:, 2] > middle[2])
    # Within the brush radius of the drawn stroke (a -> m -> b).
    def to_segment(p, q):
        t = np.clip((lps - p) @ (q - p) / np.dot(q - p, q - p), 0, 1)
        return np.linalg.norm(lps - (p + t[:, None] * (q - p)), axis=1)
    pa, pm, pb = (coronal.widget_to_lps(x) for x in (a, m, b))
    assert np.minimum(to_segment(pa, pm), to_segment(pm, pb)).max() <= 4.0 + 1e-6

    # The eraser through the liver's middle removes liver only there, in that slice.
    use_tool(qtbot, panel, "eraser")
    panel.radius.setValue(6.0)
    before = after
    centre = window.state.cursor_lps
    c = widget_point(coronal, centre)
    d = c + QPoint(40, 0)
    qtbot.mousePress(coronal, Qt.LeftButton, pos=c)
    qtbot.mouseMove(coronal, d)
    qtbot.mouseRelease(coronal, Qt.LeftButton, pos=d)
    after = array(case.labels[LIVER])
    erased = np.argwhere((after == 0) & (before > 0))
    assert len(erased) > 50 and not np.any((after > 0) & (before == 0))
    lps = index_to_lps(case.image, erased)
    assert np.allclose(lps[:, 1], coronal.widget_to_lps(c)[1],
                       atol=case.image.GetSpacing()[1] / 2 + 1e-6)
    pc, pd = coronal.widget_to_lps(c), coronal.widget_to_lps(d)
    assert pd[0] > pc[0]                         # dragging to the screen right goes to the left
    assert lps[:, 0].min() >= pc[0] - 6.0 - 1e-6 and lps[:, 0].max() <= pd[0] + 6.0 + 1e-6


def test_undo_and_redo_restore_exact_masks_across_a_liver_and_a_lesion_edit(
        window, qtbot, synthetic_patient):
    tumors_truth = truth(synthetic_patient, TUMORS)
    case, panel = open_with(qtbot, window, synthetic_patient,
                            {LIVER: truth(synthetic_patient, LIVER), TUMORS: tumors_truth})
    liver0, tumors0 = array(case.labels[LIVER]), array(case.labels[TUMORS])
    assert panel.lesion_list.count() == len(synthetic_patient.truth["lesions"])
    axial = window.views[AXIAL]
    # A liver edit: the eraser across the liver's middle in the axial view.
    centre_on(window, case.labels[LIVER])
    use_tool(qtbot, panel, "eraser")
    c = widget_point(axial, window.state.cursor_lps)
    qtbot.mousePress(axial, Qt.LeftButton, pos=c)
    qtbot.mouseRelease(axial, Qt.LeftButton, pos=c)
    liver1 = array(case.labels[LIVER])
    assert not np.array_equal(liver1, liver0)
    # A lesion edit: remove the lesion under a click.
    lesion = synthetic_patient.truth["lesions"][0]
    window.state.set_cursor(lesion["centroid_lps_mm"])
    use_tool(qtbot, panel, "remove_lesion")
    qtbot.mouseClick(axial, Qt.LeftButton, pos=widget_point(axial, lesion["centroid_lps_mm"]))
    tumors1 = array(case.labels[TUMORS])
    assert len(np.unique(tumors1)) == len(np.unique(tumors0)) - 1
    assert panel.lesion_list.count() == len(synthetic_patient.truth["lesions"]) - 1
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier)             # undo the lesion edit
    assert np.array_equal(array(case.labels[TUMORS]), tumors0)
    assert np.array_equal(array(case.labels[LIVER]), liver1)
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier)             # undo the liver edit
    assert np.array_equal(array(case.labels[LIVER]), liver0)
    assert not panel.undo_action.isEnabled()
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)   # redo
    assert np.array_equal(array(case.labels[LIVER]), liver1)
    qtbot.keyClick(axial, Qt.Key_Y, Qt.ControlModifier)             # redo
    assert np.array_equal(array(case.labels[TUMORS]), tumors1)
    assert np.array_equal(array(case.labels[LIVER]), liver1)
    assert not panel.redo_action.isEnabled()
    # Shown in the views too.
    assert np.array_equal(window.state.labels[TUMORS].source is case.labels[TUMORS], True)


def test_click_adds_a_missed_lesion_close_to_the_truth_and_the_list_edits_it(
        window, qtbot, synthetic_patient):
    tumors_truth = array(truth(synthetic_patient, TUMORS))
    lesion = max((x for x in synthetic_patient.truth["lesions"] if not x["rim"]),
                 key=lambda x: x["diameter_mm"])
    reference = tumors_truth == lesion["id"]
    missed = np.where(reference, 0, tumors_truth).astype(np.uint16)
    liver = truth(synthetic_patient, LIVER)
    case, panel = open_with(qtbot, window, synthetic_patient,
                            {LIVER: liver, TUMORS: image_from_array(missed, liver)})
    n = panel.lesion_list.count()
    window.state.set_cursor(lesion["centroid_lps_mm"])
    use_tool(qtbot, panel, "add_lesion")
    axial = window.views[AXIAL]
    qtbot.mouseClick(axial, Qt.LeftButton, pos=widget_point(axial, lesion["centroid_lps_mm"]))
    wait_task(qtbot, panel.task)
    tumors = array(case.labels[TUMORS])
    new_id = tumors[tuple(np.argwhere(reference).mean(axis=0).round().astype(int))]
    assert new_id > 0
    found = tumors == new_id
    dice = 2 * np.count_nonzero(found & reference) / (found.sum() + reference.sum())
    assert dice > 0.7
    assert panel.lesion_list.count() == n + 1
    # A second click on it is refused and said: no sliver of it becomes another lesion.
    qtbot.mouseClick(axial, Qt.LeftButton, pos=widget_point(axial, lesion["centroid_lps_mm"]))
    wait_task(qtbot, panel.task)
    assert np.array_equal(array(case.labels[TUMORS]), tumors)
    assert panel.lesion_list.count() == n + 1
    assert any(level == "error" and f"inside lesion {new_id}" in message
               for level, message in window.log_panel.entries)
    # Select that lesion in the list and delete it: the map is back to the one without it.
    item = next(panel.lesion_list.item(r) for r in range(panel.lesion_list.count())
                if panel.lesion_list.item(r).data(Qt.UserRole)[0] == new_id)
    panel.lesion_list.setCurrentItem(item)
    qtbot.mouseClick(panel.delete_button, Qt.LeftButton)
    assert np.array_equal(array(case.labels[TUMORS]) > 0, missed > 0)


def test_on_mr_a_click_adds_a_bright_lesion_and_refuses_a_vessel(window, qtbot,
                                                                 synthetic_patient, tmp_path):
    """An MR image with the contrasts of T2 or diffusion (the synthetic CT reversed, in arbitrary
    signal units): metastases brighter than the liver, vessels darker. Add lesion delineates
    the clicked metastasis; a click on a vessel adds nothing and says why."""
    from liverplan.io import load, write_image
    ct = load(synthetic_patient.dicom_dir).image
    mr = write_image(4000.0 - 3.0 * sitk.Cast(ct, sitk.sitkFloat32), tmp_path / "mr.nii.gz")
    case = open_and_wait(qtbot, window, mr)
    liver = truth(synthetic_patient, LIVER)
    case.set_label(LIVER, liver)
    case.set_label(TUMORS, image_from_array(np.zeros(array(liver).shape, np.uint16), liver))
    panel = window.steps.show_step("review")
    lesion = max((x for x in synthetic_patient.truth["lesions"] if not x["rim"]),
                 key=lambda x: x["diameter_mm"])
    reference = array(truth(synthetic_patient, TUMORS)) == lesion["id"]
    window.state.set_cursor(lesion["centroid_lps_mm"])
    use_tool(qtbot, panel, "add_lesion")
    axial = window.views[AXIAL]
    qtbot.mouseClick(axial, Qt.LeftButton, pos=widget_point(axial, lesion["centroid_lps_mm"]))
    wait_task(qtbot, panel.task)
    found = array(case.labels[TUMORS]) > 0
    assert 2 * np.count_nonzero(found & reference) / (found.sum() + reference.sum()) > 0.75
    assert panel.lesion_list.count() == 1
    # a portal vein in the liver: dark, as the lesions on CT, but long and thin
    portal = np.argwhere((ndi.distance_transform_edt(
        array(truth(synthetic_patient, VESSELS)) == 1, sampling=liver.GetSpacing()[::-1]) >= 3.0)
        & (array(liver) > 0))
    point = index_to_lps(liver, portal[len(portal) // 2].astype(float))[0]
    window.state.set_cursor(point)
    qtbot.mouseClick(axial, Qt.LeftButton, pos=widget_point(axial, point))
    wait_task(qtbot, panel.task)
    assert panel.lesion_list.count() == 1
    assert any(level == "error" and "long and thin" in message
               for level, message in window.log_panel.entries)


def open_with_true_vessels(qtbot, window, patient):
    """(case, panel, liver, vessels) with the patient's true liver, vessels and segments."""
    liver, vessels = truth(patient, LIVER), truth(patient, VESSELS)
    case, panel = open_with(qtbot, window, patient, {
        LIVER: liver, VESSELS: vessels, SEGMENTS: truth(patient, SEGMENTS)})
    return case, panel, liver, vessels


def portal_core(liver: sitk.Image, vessels: sitk.Image) -> np.ndarray:
    """(z, y, x) of the portal voxels in the liver at least 1.5 mm inside the vessel (a click
    there hits the vessel whatever the rounding to widget pixels)."""
    portal = array(vessels) == 1
    core = ndi.distance_transform_edt(portal, sampling=liver.GetSpacing()[::-1]) >= 1.5
    return np.argwhere(core & (array(liver) > 0))


def test_without_vessels_the_landmarks_are_placed_by_hand_for_the_segments(
        window, qtbot, synthetic_patient):
    """MR or unenhanced CT: no vessels, so the landmarks start at their typical places in the
    liver and the user places them; the segments then come from the landmark planes."""
    liver = truth(synthetic_patient, LIVER)
    case, panel = open_with(qtbot, window, synthetic_patient, {LIVER: liver})
    assert not panel.recompute_button.isEnabled()
    use_tool(qtbot, panel, "landmark")
    assert panel.landmarks == typical_landmarks(liver) and "typical places" in panel.status.text()
    assert panel.recompute_button.isEnabled()
    # place the portal bifurcation where the patient has it (a click with it chosen)
    bif = tuple(synthetic_patient.truth["markers"]["portal_bifurcation_lps_mm"])
    panel.landmark.setCurrentIndex(panel.landmark.findData("portal_bifurcation_lps_mm"))
    window.state.set_cursor(bif)
    axial = window.views[AXIAL]
    qtbot.mouseClick(axial, Qt.LeftButton, pos=widget_point(axial, bif))
    placed = panel.landmarks.portal_bifurcation_lps_mm
    assert np.linalg.norm(np.subtract(placed, bif)) < 2.0
    wait_task(qtbot, panel.recompute())
    segments = array(case.labels[SEGMENTS])
    assert set(np.unique(segments[array(liver) > 0])) == set(range(1, 9))
    expected = couinaud_segments(liver, None, landmarks=panel.landmarks)
    assert np.array_equal(segments, array(expected.segments))
    # the five left where they started are named, here and in the method the report prints,
    # not passed off as placed
    assert case.segments_method == (
        "landmark planes, landmarks moved by hand: portal bifurcation, landmarks at their typical "
        "places: IVC (hepatic vein confluence), right hepatic vein, middle hepatic vein, left "
        "hepatic vein, umbilical fissure")
    warning = next(m for level, m in window.log_panel.entries
                   if level == "warning" and "typical places" in m)
    assert "IVC" in warning and "umbilical fissure" in warning and "bifurcation" not in warning


def test_vessel_branch_flips_and_a_moved_landmark_changes_the_segments(
        window, qtbot, synthetic_patient, output_dir):
    case, panel, liver, vessels_truth = open_with_true_vessels(qtbot, window, synthetic_patient)
    axial = window.views[AXIAL]
    # Landmarks from the vessel trees, shown as markers; drag the middle hepatic vein's.
    use_tool(qtbot, panel, "landmark")
    wait_task(qtbot, panel.task)
    original = panel.landmarks
    assert original is not None and axial.markers
    mhv = np.asarray(original.middle_hepatic_vein_lps_mm)
    window.state.set_cursor(mhv)
    start = widget_point(axial, mhv)
    end = start + QPoint(30, 0)
    qtbot.mousePress(axial, Qt.LeftButton, pos=start)
    qtbot.mouseMove(axial, end)
    qtbot.mouseRelease(axial, Qt.LeftButton, pos=end)
    moved = panel.landmarks.middle_hepatic_vein_lps_mm
    assert panel.landmark.currentData() == "middle_hepatic_vein_lps_mm"
    assert np.allclose(moved, axial.widget_to_lps(end))
    assert moved[0] > mhv[0] + 10                       # to the patient's left
    assert panel.method.currentData() == LANDMARK_PLANES
    window.snapshot().save(str(output_dir / "viewer_review_landmarks.png"))
    task = panel.recompute()
    wait_task(qtbot, task)
    segments = array(case.labels[SEGMENTS])
    expected = couinaud_segments(liver, panel._vessels, landmarks=panel.landmarks,
                                 method=LANDMARK_PLANES)
    before = couinaud_segments(liver, panel._vessels, landmarks=original,
                               method=LANDMARK_PLANES)
    assert np.array_equal(segments, array(expected.segments))
    assert np.count_nonzero(segments != array(before.segments)) > 1000
    assert panel.edits.moved == ("middle_hepatic_vein_lps_mm",)
    assert case.segments_method == "landmark planes, landmarks moved by hand: middle hepatic vein"
    # a landmark not moved by hand follows the trees: one shown where older trees had it
    # (before a vessel correction) is read again from them at the next recompute
    automatic = automatic_landmarks(panel._vessels, [])
    stale = tuple(np.add(automatic.ivc_lps_mm, (0.0, 20.0, 0.0)))
    panel._set_edits(landmarks=replace(panel.landmarks, ivc_lps_mm=stale))
    wait_task(qtbot, panel.recompute())
    assert panel.landmarks == replace(automatic, middle_hepatic_vein_lps_mm=moved)
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier)        # undo that recompute
    assert panel.landmarks.ivc_lps_mm == stale

    # A peripheral portal branch clicked with the hepatic tool becomes hepatic.
    v = array(vessels_truth)
    portal = v == 1
    candidates = portal_core(liver, vessels_truth)
    bif = np.asarray(synthetic_patient.truth["markers"]["portal_bifurcation_lps_mm"])
    far = candidates[np.argmax(np.linalg.norm(index_to_lps(liver, candidates) - bif, axis=1))]
    point = index_to_lps(liver, far)[0]
    window.state.set_cursor(point)
    use_tool(qtbot, panel, "hepatic")
    qtbot.mouseClick(axial, Qt.LeftButton, pos=widget_point(axial, point))
    wait_task(qtbot, panel.task)
    after = array(case.labels[VESSELS])
    assert after[tuple(far)] == 2
    changed = after != v
    assert changed.any() and np.all(v[changed] == 1) and np.all(after[changed] == 2)
    assert changed.sum() < 0.2 * portal.sum()           # one branch, not the tree
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier)
    assert np.array_equal(array(case.labels[VESSELS]), v)


def test_a_portal_branch_assigned_to_another_segment_moves_its_territory(
        window, qtbot, synthetic_patient, output_dir, tmp_path):
    case, panel, liver, vessels = open_with_true_vessels(qtbot, window, synthetic_patient)
    axial = window.views[AXIAL]
    # the middle of a segment-3 branch of the vessels' own tree (the largest one below the
    # first: segment 3 keeps other branches), on a portal voxel well inside
    tree = analyse_vessels(vessels, liver)
    three = [b for b, s in branch_segments(tree).items() if s == 3]
    top = max(three, key=lambda b: len(tree.subtree(b)))
    first = max((b for b in three if b != top), key=lambda b: len(tree.subtree(b)))
    middle = np.asarray(tree.branches[first].points_lps_mm[
        len(tree.branches[first].points_lps_mm) // 2])
    points = index_to_lps(liver, portal_core(liver, vessels))
    point = points[np.argmin(np.linalg.norm(points - middle, axis=1))]
    window.state.set_cursor(point)
    use_tool(qtbot, panel, "branch_segment")
    panel.branch_segment.setCurrentIndex(panel.branch_segment.findData(4))
    qtbot.mouseClick(axial, Qt.LeftButton, pos=widget_point(axial, point))
    assert [s for _, s in panel.branch_points] == [4]
    assert [m.text for m in axial.markers] == ["S4"]
    window.snapshot().save(str(output_dir / "viewer_review_branch_segment.png"))
    wait_task(qtbot, panel.recompute())
    after = array(case.labels[SEGMENTS])
    assigned, _ = assignments_at(panel._vessels, panel.branch_points)
    assert set(assigned.values()) == {4} and first in assigned
    expected = couinaud_segments(liver, panel._vessels, assignments=assigned)
    assert expected.method == PORTAL_TERRITORIES
    assert np.array_equal(after, array(expected.segments))
    assert case.segments_method == "portal territories, 1 branch assignment(s) by hand"
    # against the territories without the assignment: only segment 3 gave, to segment 4
    plain = array(couinaud_segments(liver, panel._vessels).segments)
    changed = after != plain
    assert np.count_nonzero(changed) > 2000
    assert np.all(plain[changed] == 3) and np.all(after[changed] == 4)
    # undo takes the assignment back (markers too); the next recompute gives the old territories
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier)     # the recompute
    assert case.segments_method is None                     # the truth's, made elsewhere
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier)     # the assignment
    assert panel.branch_points == () and axial.markers == []
    wait_task(qtbot, panel.recompute())
    assert np.array_equal(array(case.labels[SEGMENTS]), plain)
    assert case.segments_method == PORTAL_TERRITORIES
    # clicked again, the correction goes with the case: saved and reopened, the panel has it
    qtbot.mouseClick(axial, Qt.LeftButton, pos=widget_point(axial, point))
    clicks = panel.branch_points
    assert [s for _, s in clicks] == [4] and case.segment_edits.branch_points == clicks
    window.set_case(open_case(save_case(case, tmp_path / "edited"))[0])
    assert window.case is not case and panel.branch_points == clicks
    assert [m.text for m in axial.markers] == ["S4"]
    # a click beside a thin branch counts (within 2 mm); one in the parenchyma does not
    v, sp = array(vessels), liver.GetSpacing()[::-1]
    beside = np.argwhere(ndi.binary_dilation(v == 1) & (v == 0) & (array(liver) > 0))
    near = index_to_lps(liver, beside[np.argmin(np.linalg.norm(
        index_to_lps(liver, beside) - point, axis=1))])[0]
    far = index_to_lps(liver, deep_point(array(liver) > 0, v > 0, sp))[0]
    window.state.set_cursor(far)
    qtbot.mouseClick(axial, Qt.LeftButton, pos=widget_point(axial, far))
    assert len(panel.branch_points) == 1
    assert panel.status.text().startswith("No portal vein at the click")
    window.state.set_cursor(near)
    qtbot.mouseClick(axial, Qt.LeftButton, pos=widget_point(axial, near))
    assert len(panel.branch_points) == 2


def test_a_liver_neither_mode_finds_is_drawn_from_nothing_with_seeds_and_the_brush(
        window, qtbot, synthetic_patient):
    """Both segmentation modes failed (or were not run): the Review step opens with the image
    alone, include seeds and the brush start the liver, and the tools that need a liver follow."""
    case = open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    assert LIVER not in case.labels
    index = window.steps.steps.index(next(s for s in window.steps.steps if s.key == "review"))
    assert window.steps.isItemEnabled(index)
    panel = window.steps.show_step("review")
    enabled = {k for k, a in panel.tool_actions.items() if a.isEnabled()}
    assert enabled == {"include", "brush"}
    liver_truth = truth(synthetic_patient, LIVER)
    reference = array(liver_truth) > 0
    other = (array(truth(synthetic_patient, TUMORS)) > 0) | (
        array(truth(synthetic_patient, VESSELS)) > 0)
    centre = deep_point(reference, other, liver_truth.GetSpacing()[::-1])
    point = index_to_lps(liver_truth, centre)[0]
    window.state.set_cursor(point)
    use_tool(qtbot, panel, "include")
    axial = window.views[AXIAL]
    qtbot.mouseClick(axial, Qt.LeftButton, pos=widget_point(axial, point))
    liver = case.labels[LIVER]
    assert liver.GetPixelID() == sitk.sitkUInt8           # a mask like a segmented liver's
    drawn = array(liver) > 0
    assert drawn.sum() * np.prod(liver.GetSpacing()) > 1000.0     # > 1 mL around the click
    assert np.count_nonzero(drawn & ~reference) < 0.02 * drawn.sum()
    assert total_liver_ml(qtbot, window) > 1.0
    # the tools that need a liver now work, and the eraser takes the drawing away again
    assert all(panel.tool_actions[k].isEnabled() for k in ("eraser", "exclude", "add_lesion"))
    use_tool(qtbot, panel, "brush")
    panel.radius.setValue(3.0)
    c = widget_point(axial, point)
    qtbot.mousePress(axial, Qt.LeftButton, pos=c + QPoint(0, 30))
    qtbot.mouseRelease(axial, Qt.LeftButton, pos=c + QPoint(0, 30))
    assert np.count_nonzero(array(case.labels[LIVER])) > drawn.sum()
    panel.undo()
    panel.undo()
    assert LIVER not in case.labels                        # undone to the image alone
    assert not panel.tool_actions["eraser"].isEnabled()
