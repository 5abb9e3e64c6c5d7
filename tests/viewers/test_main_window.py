"""The real window on the synthetic patient (and one real case) under Xvfb."""

from __future__ import annotations

import re
import shutil
import threading

import numpy as np
import pyvista as pv
import pytest
import SimpleITK as sitk
from PIL import Image
from PySide6.QtCore import QPoint, QRect, QThreadPool, Qt, QTimer
from PySide6.QtWidgets import QLabel, QMessageBox

from liverplan.case import LIVER, TUMORS, VESSELS
from liverplan.geometry import image_from_array
from liverplan.io import read_image
from liverplan.viewers.reslice import AXIAL, CORONAL, SAGITTAL, window_to_uint8
from liverplan.viewers.view_state import WINDOW_LIVER
from tests.viewers.conftest import (centre_on, image_pixels, open_and_wait, truth, view_pixels,
                                   wait_task)

pytestmark = pytest.mark.gui


def tinted(pixels: np.ndarray) -> np.ndarray:
    """Pixels whose colour is not grey (an overlay is drawn there)."""
    p = pixels.astype(int)
    return (np.abs(p[..., 0] - p[..., 1]) > 12) | (np.abs(p[..., 1] - p[..., 2]) > 12)


def image_area(view) -> np.ndarray:
    """Boolean (h, w) mask of the widget pixels covered by the image, without the crosshair."""
    rows, cols = view.state.volume.slice_shape(view.plane)
    top_left, bottom_right = view.display_to_widget(-0.5, -0.5), view.display_to_widget(
        cols - 0.5, rows - 0.5)
    area = np.zeros((view.height(), view.width()), bool)
    area[int(top_left.y()) + 2:int(bottom_right.y()) - 2,
         int(top_left.x()) + 2:int(bottom_right.x()) - 2] = True
    c = view.lps_to_widget(view.state.cursor_lps)
    area[max(int(c.y()) - 2, 0):int(c.y()) + 3, :] = False
    area[:, max(int(c.x()) - 2, 0):int(c.x()) + 3] = False
    return area


def test_open_shows_the_middle_axial_slice_with_radiological_labels(window, qtbot,
                                                                    synthetic_patient, output_dir):
    case = open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    axial = window.views[AXIAL]
    n = case.image.GetSize()[2]
    assert abs(axial.slice_index() - (n - 1) / 2) <= 0.5
    labels = window.state.volume.screen_labels(AXIAL)
    assert (labels.left, labels.right, labels.top, labels.bottom) == ("R", "L", "A", "P")
    coronal = window.state.volume.screen_labels(CORONAL)
    assert (coronal.left, coronal.top) == ("R", "S")
    sagittal = window.state.volume.screen_labels(SAGITTAL)
    assert (sagittal.left, sagittal.top) == ("A", "S")
    # The patient information reached the Load panel and the title.
    texts = [label.text() for label in window.steps.panels["load"].findChildren(QLabel)]
    assert case.info is not None and any(case.info.patient_name in t for t in texts)
    assert synthetic_patient.dicom_dir.name in window.windowTitle()
    window.snapshot().save(str(output_dir / "viewer_1_open.png"))


def test_liver_overlay_is_coloured_where_the_mask_is_on_the_patients_right(
        window, qtbot, synthetic_patient, output_dir):
    case = open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    liver = truth(synthetic_patient, "liver")
    case.set_label(LIVER, liver)
    centre_on(window, liver)
    axial = window.views[AXIAL]
    pixels = view_pixels(axial)
    coloured = tinted(pixels) & image_area(axial)
    # Area check: coloured widget pixels match the mask's voxels on this slice, scaled.
    mask_slice = window.state.labels[LIVER].slice(AXIAL, axial.slice_index())
    scale = axial._transform()[0]
    dx, dy = window.state.volume.pixel_spacing(AXIAL)
    expected = np.count_nonzero(mask_slice) * dx * dy * scale ** 2
    assert coloured.sum() == pytest.approx(expected, rel=0.1)
    # The liver lies on the patient's right: on the left half of the radiological view.
    centre_x = axial.display_to_widget(mask_slice.shape[1] / 2 - 0.5, 0).x()
    assert np.argwhere(coloured)[:, 1].mean() < centre_x
    window.snapshot().save(str(output_dir / "viewer_2_liver_overlay.png"))
    # Opacity 0 hides the overlay; outline mode keeps only the border.
    window.state.set_opacity(0.0)
    assert (tinted(view_pixels(axial)) & image_area(axial)).sum() < 0.01 * coloured.sum()
    window.state.set_outline(True)
    outline = tinted(view_pixels(axial)) & image_area(axial)
    assert 0 < outline.sum() < 0.5 * coloured.sum()


def test_click_sets_one_lps_point_in_all_views_and_the_readout_shows_its_hu(
        window, qtbot, synthetic_patient, output_dir):
    case = open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    axial = window.views[AXIAL]
    pos = QPoint(int(axial.width() * 0.4), int(axial.height() * 0.6))
    clicked = window.state.volume.lps_to_index(axial.widget_to_lps(pos))
    qtbot.mouseClick(axial, Qt.LeftButton, pos=pos)
    point = window.state.cursor_lps
    # The crosshair sits on the centre of the clicked voxel.
    ijk = window.state.volume.lps_to_index(point)
    assert np.allclose(ijk, np.rint(clicked), atol=1e-6)
    # The coronal view now shows the clicked row and the sagittal view the clicked column.
    assert window.views[CORONAL].slice_index() == round(ijk[1])
    assert window.views[SAGITTAL].slice_index() == round(ijk[0])
    for view in window.views.values():
        c = view.lps_to_widget(point)
        assert view.widget_to_lps(c) == pytest.approx(point, abs=1e-6)
        pixel = view_pixels(view)[int(c.y()) - 20, int(c.x())]     # on the vertical hair
        assert pixel[0] > 150 and pixel[1] > 120 and pixel[2] < 120, view.plane
    # HU under the cursor: the original image's value at that voxel.
    qtbot.mouseMove(axial, pos)
    qtbot.waitUntil(lambda: "HU" in window.readout.text())
    hu = int(re.match(r"(-?\d+) HU", window.readout.text()).group(1))
    index = case.image.TransformPhysicalPointToIndex(tuple(float(v) for v in point))
    assert hu == case.image.GetPixel(index)
    window.snapshot().save(str(output_dir / "viewer_3_crosshair.png"))


def test_window_preset_changes_the_rendered_grey_values(window, qtbot, synthetic_patient):
    open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    axial = window.views[AXIAL]
    before = view_pixels(axial)
    window.actions_by_name["window_liver"].trigger()
    assert window.state.window == WINDOW_LIVER
    after = view_pixels(axial)
    assert np.count_nonzero(np.abs(before.astype(int) - after.astype(int)).sum(axis=2) > 10) > \
        0.05 * before.shape[0] * before.shape[1]
    # The centre voxel shows exactly the liver-window grey of its HU value.
    rows, cols = window.state.volume.slice_shape(AXIAL)
    y, x = rows // 2, cols // 2
    hu = window.state.volume.slice(AXIAL, axial.slice_index())[y, x]
    rendered = window.state.render(AXIAL, axial.slice_index())
    grey = int(window_to_uint8(np.array([hu]), *WINDOW_LIVER)[0])
    assert rendered[y, x] == 0xFF000000 | grey * 0x010101


def test_3d_view_has_actors_for_the_loaded_structures(window, qtbot, synthetic_patient,
                                                       output_dir):
    case = open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    for name in (LIVER, TUMORS, VESSELS):
        case.set_label(name, truth(synthetic_patient, name))
    qtbot.waitUntil(lambda: {"liver", "lesions", "portal", "hepatic"} <= set(window.view3d.actors),
                    timeout=120_000)
    for view in ("Anterior", "Laparoscopic"):
        window.view3d.standard_view(view)
        shot = window.view3d.screenshot(output_dir / f"viewer_4_3d_{view.lower()}.png")
        assert shot.is_file()
    # Hiding a structure hides its actor; the liver is semi-transparent.
    window.steps.panels["display"].checks["portal"].setChecked(False)
    assert not window.view3d.actors["portal"].GetVisibility()
    assert window.view3d.actors["liver"].GetProperty().GetOpacity() < 0.5
    # The window screenshot (F12) shows the 3-D view as rendered: grab() alone cannot read its
    # OpenGL surface (noise there under Xvfb)
    snapshot = window.snapshot()
    snapshot.save(str(output_dir / "viewer_4_window_3d.png"))
    widget = window.view3d.plotter.interactor
    corner = widget.mapTo(window, QPoint(0, 0))
    region = image_pixels(snapshot.copy(QRect(corner, widget.size())))
    rendered = image_pixels(window.view3d.image())
    assert region.shape == rendered.shape and np.array_equal(region, rendered)
    liver = np.abs(rendered.astype(int) - [30, 30, 36]).sum(axis=2) > 60     # not background
    assert 0.05 < liver.mean() < 0.9
    # F12 and the 3-D picture are written through a temporary file: a failure is shown, not
    # logged as saved, and leaves what was there
    f12 = window.save_picture(output_dir / "viewer_4_f12.png", "screenshot", window._write_snapshot)
    assert Image.open(f12).size == (window.width(), window.height())
    blocked = output_dir / "viewer_4_not_a_folder"
    blocked.write_text("kept")
    for what, write in (("screenshot", window._write_snapshot),
                        ("3-D screenshot", window.view3d.screenshot)):
        assert window.save_picture(blocked / "shot.png", what, write) is None
        level, message = window.log_panel.entries[-1]
        assert level == "error" and f"The {what} was not saved" in message and "folder" in message
    assert blocked.read_text() == "kept"
    # A computed surface (a cut, an ICG map) shows beside the structures and goes away again.
    window.view3d.standard_view("Anterior")

    def greens() -> int:
        shot = np.asarray(Image.open(window.view3d.screenshot(output_dir / "viewer_4_extra.png")))
        g = shot[..., :3].astype(int)
        return np.count_nonzero((g[..., 1] > g[..., 0] + 80) & (g[..., 1] > g[..., 2] + 80))
    before = greens()
    centre = np.array(window.view3d.plotter.bounds).reshape(3, 2).mean(axis=1)
    window.view3d.show_mesh("test_sphere", pv.Sphere(radius=60, center=centre), color="lime")
    assert greens() > before + 500
    window.view3d.remove_mesh("test_sphere")
    assert greens() == before


def test_saved_case_reopens_with_equal_labels(make_window, qtbot, synthetic_patient, tmp_path):
    window = make_window()
    case = open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    case.set_label(LIVER, truth(synthetic_patient, "liver"))
    case.set_label(TUMORS, truth(synthetic_patient, "tumors"))
    assert window.dirty
    wait_task(qtbot, window.save_to(tmp_path / "patient.liverplan"))
    assert not window.dirty and window.case_file == tmp_path / "patient.liverplan"
    other = make_window()
    reopened = open_and_wait(qtbot, other, tmp_path / "patient.liverplan")
    for name in (LIVER, TUMORS):
        assert np.array_equal(sitk.GetArrayFromImage(reopened.labels[name]),
                              sitk.GetArrayFromImage(case.labels[name]))
    assert np.array_equal(sitk.GetArrayFromImage(reopened.image),
                          sitk.GetArrayFromImage(case.image))
    assert not other.dirty


def test_cancelled_load_leaves_the_previous_case(window, qtbot, synthetic_patient):
    case = open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    task = window.load_series(synthetic_patient.dicom_dir)
    # Cancel at once, while the series loads (waiting for a progress report to cancel from
    # raced the worker: a fast load had reported everything before the test connected)
    assert task.running and window.progress.current() is task
    with qtbot.waitSignal(task.cancelled, timeout=60_000):
        window.progress.cancel_button.click()
    assert window.case is case and window.state.volume.source is case.image
    assert any("cancelled" in message for _, message in window.log_panel.entries)


def test_loader_warnings_appear_in_the_log(window, qtbot, synthetic_patient, tmp_path,
                                           output_dir):
    folder = tmp_path / "with_broken_file"
    shutil.copytree(synthetic_patient.dicom_dir, folder)
    first = sorted(p for p in folder.iterdir() if p.is_file())[0]
    (folder / "broken.dcm").write_bytes(first.read_bytes()[:300])
    open_and_wait(qtbot, window, folder)
    warnings = [m for level, m in window.log_panel.entries if level == "warning"]
    assert any("broken.dcm" in m for m in warnings)
    assert window.notice.isVisible() and "skipped" in window.notice.text.text()
    window.snapshot().save(str(output_dir / "viewer_5_warnings.png"))


def test_closing_with_unsaved_changes_asks(window, qtbot, synthetic_patient, tmp_path):
    case = open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    case.set_label(LIVER, truth(synthetic_patient, "liver"))
    assert window.dirty and window.windowTitle().count("*") == 1

    def answer(button):
        QTimer.singleShot(0, lambda: window.question.button(button).click())

    answer(QMessageBox.Cancel)
    assert window.close() is False and window.isVisible()
    # Save, but the case's folder cannot be written: the window stays open with its changes,
    # and says why
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("kept")
    window.case_file = blocked / "case.liverplan"
    answer(QMessageBox.Save)
    assert window.close() is False and window.isVisible() and window.dirty
    level, message = window.log_panel.entries[-1]
    assert level == "error" and "was not saved" in message and "not a folder" in message
    assert blocked.read_text() == "kept"
    answer(QMessageBox.Discard)
    assert window.close() is True


def test_a_task_still_running_when_the_window_closes_is_cancelled_and_reports_nothing(
        window, qtbot):
    from liverplan.viewers.workers import Task
    release, results = threading.Event(), []

    def slow(progress, cancel):
        release.wait(30)
        return "late"
    task = window.run_task(Task("Slow work", slow), results.append)
    window.dirty = False
    assert window.close()
    assert task.cancel_flag.is_set()
    release.set()
    wait_task(qtbot, task)      # `done` comes after any outcome, in order
    assert results == [] and not window._running


def test_a_closed_window_builds_no_more_surfaces(window, qtbot, synthetic_patient):
    """The 3-D surfaces being built when the window closes are dropped and no new round
    starts on the released plotter."""
    case = open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    case.set_label(LIVER, truth(synthetic_patient, "liver"))
    task = window.view3d._task
    assert task is not None and task.running
    window.dirty = False
    assert window.close()
    wait_task(qtbot, task)
    assert window.view3d._task is None


def test_a_closed_window_no_longer_follows_its_case(window, qtbot, synthetic_patient):
    """The case outlives the window: its later edits reach neither the views nor the 3-D
    view's released plotter, and do not mark the closed window as changed."""
    case = open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    window.dirty = False
    assert window.close()
    case.set_label(LIVER, truth(synthetic_patient, "liver"))
    assert LIVER not in window.state.labels and LIVER not in window.view3d.labels
    assert not window.dirty


def test_a_tasks_picture_is_rendered_on_the_ui_thread(window, qtbot):
    """Off-screen rendering in a task while the 3-D view renders corrupted memory now and
    then; a task's picture is drawn on the UI thread, and comes back to the task."""
    from liverplan import rendering
    from liverplan.viewers.workers import Task
    threads, results = [], []

    def draw(plotter):
        threads.append(threading.current_thread())
        plotter.add_mesh(pv.Sphere())
    task = window.run_task(Task("Picture", lambda progress, cancel: rendering.picture(
        (64, 48), draw)), results.append)
    wait_task(qtbot, task)
    assert threads == [threading.main_thread()]
    assert results[0].shape == (48, 64, 3) and results[0].max() > 100


def test_a_task_waiting_for_its_picture_does_not_hold_up_the_closing_window(window, qtbot):
    """The window waits for its cancelled tasks without handling events: a task waiting for
    the UI thread to draw its picture stops waiting, and the picture is never drawn."""
    from liverplan import rendering
    from liverplan.viewers.workers import Task
    asked, drawn, results = threading.Event(), [], []

    def work(progress, cancel):
        asked.set()
        return rendering.picture((64, 48), drawn.append)
    task = window.run_task(Task("Picture", work), results.append)
    assert asked.wait(30)
    window.dirty = False
    assert window.close()
    assert QThreadPool.globalInstance().waitForDone(30_000)
    wait_task(qtbot, task)          # the picture request is handled now: abandoned
    assert drawn == [] and results == [] and task.cancel_flag.is_set()


def test_autosave_is_offered_after_a_crash(make_window, qtbot, synthetic_patient, tmp_path):
    recovery = tmp_path / "recovery"
    window = make_window(recovery)
    case = open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    liver = truth(synthetic_patient, "liver")
    case.set_label(LIVER, liver)
    wait_task(qtbot, window.autosave())
    # The first window never closes (as after a crash): a new one finds the copy.
    other = make_window(recovery)
    folder = other.recovery_available()
    assert folder is not None
    from liverplan.io.casefile import open_case
    restored, _ = open_case(folder)
    assert np.array_equal(sitk.GetArrayFromImage(restored.labels[LIVER]),
                          sitk.GetArrayFromImage(liver))
    # A clean close removes the copy.
    window.dirty = False
    window.close()
    assert other.recovery_available() is None


@pytest.mark.realdata
def test_real_case_liver_shows_on_the_screen_left(window, qtbot, shared_data, output_dir):
    """3D-IRCADb-01: the liver is on the patient's right, so on the left of the axial view."""
    case = open_and_wait(qtbot, window, shared_data / "ircadb-01" / "PATIENT_DICOM")
    labels = read_image(shared_data / "ircadb-01" / "labels.nii.gz")
    liver = image_from_array((sitk.GetArrayViewFromImage(labels) > 0).astype(np.uint8), case.image)
    case.set_label(LIVER, liver)
    centre_on(window, liver)
    axial = window.views[AXIAL]
    coloured = tinted(view_pixels(axial)) & image_area(axial)
    assert coloured.sum() > 1000
    assert np.argwhere(coloured)[:, 1].mean() < axial.width() / 2
    window.snapshot().save(str(output_dir / "viewer_realdata_ircadb.png"))


def test_series_browser_lists_each_series_with_a_thumbnail(window, qtbot, synthetic_patient,
                                                           tmp_path, output_dir):
    from liverplan.io.dicom_write import write_series

    folder = tmp_path / "two_series"
    shutil.copytree(synthetic_patient.dicom_dir, folder / "portal")
    small = sitk.GetImageFromArray(np.full((6, 32, 32), 40, np.int16))
    small.SetSpacing((2.0, 2.0, 5.0))
    write_series(small, folder / "scout", patient_name="Phantom^Hepar",
                 series_description="Low-dose scout")
    window.open_path(folder)
    qtbot.waitUntil(lambda: getattr(window, "series_browser", None) is not None
                    and window.series_browser.isVisible(), timeout=60_000)
    browser = window.series_browser
    assert browser.table.rowCount() == 2
    descriptions = {browser.table.item(r, 4).text() for r in range(2)}
    assert "Low-dose scout" in descriptions
    assert all(not browser.table.item(r, 0).icon().isNull() for r in range(2))
    # The largest series is preselected; opening it loads that series.
    chosen = browser.selected()
    assert chosen.n_images == max(s.n_images for s in browser.series)
    browser.grab().save(str(output_dir / "viewer_6_series_browser.png"))
    browser.accept()
    qtbot.waitUntil(lambda: window.case is not None, timeout=60_000)
    assert window.case.info.series_instance_uid == chosen.series_instance_uid


def test_distance_measurement_in_mm(window, qtbot, synthetic_patient):
    open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    window.actions_by_name["measure"].trigger()
    axial = window.views[AXIAL]
    rows, cols = window.state.volume.slice_shape(AXIAL)
    dx, dy = window.state.volume.pixel_spacing(AXIAL)
    a = axial.display_to_widget(cols / 2 - 30, rows / 2)
    b = axial.display_to_widget(cols / 2 + 10, rows / 2 + 30)
    cursor_before = window.state.cursor_lps.copy()
    with qtbot.waitSignal(axial.measured) as signal:
        qtbot.mouseClick(axial, Qt.LeftButton, pos=a.toPoint())
        qtbot.mouseClick(axial, Qt.LeftButton, pos=b.toPoint())
    # The clicks land on whole widget pixels: allow one widget pixel of error per click.
    mm_per_widget_pixel = dx / axial._transform()[0]
    assert signal.args[0] == pytest.approx(np.hypot(40 * dx, 30 * dy), abs=2 * mm_per_widget_pixel)
    assert np.array_equal(window.state.cursor_lps, cursor_before)   # measuring moves no cursor
    assert "mm" in window.statusBar().currentMessage()


def test_keyboard_scrolls_and_switches_the_window(window, qtbot, synthetic_patient):
    open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    axial = window.views[AXIAL]
    axial.setFocus()
    start = axial.slice_index()
    qtbot.keyClick(axial, Qt.Key_PageUp)
    qtbot.keyClick(axial, Qt.Key_PageUp)
    assert axial.slice_index() == start + 2
    qtbot.keyClick(axial, Qt.Key_PageDown)
    assert axial.slice_index() == start + 1
    qtbot.keyClick(axial, Qt.Key_2, Qt.ControlModifier)
    assert window.state.window == WINDOW_LIVER
    qtbot.keyClick(axial, Qt.Key_O)
    assert window.state.overlays_on is False


def test_no_two_actions_share_a_shortcut(window):
    """Qt triggers neither of two actions with the same key: every step's keys must differ."""
    from PySide6.QtGui import QAction, QShortcut

    owners: dict[str, list[str]] = {}
    for action in window.findChildren(QAction):
        for key in action.shortcuts():
            owners.setdefault(key.toString(), []).append(action.text())
    for shortcut in window.findChildren(QShortcut):
        if shortcut.context() != Qt.WidgetShortcut:
            owners.setdefault(shortcut.key().toString(), []).append(shortcut.objectName())
    clashes = {key: names for key, names in owners.items() if key and len(names) > 1}
    assert not clashes
    assert len(owners) > 20                     # the steps' keys are all there


def test_window_layout_is_remembered(make_window, qtbot):
    window = make_window()
    window.log_dock.hide()
    window.resize(760, 560)           # fits the test display
    window.close()
    again = make_window(resize=False)
    assert not again.log_dock.isVisible()
    # Without a window manager (Xvfb) the restored frame may differ by a few pixels.
    assert abs(again.width() - 760) <= 4 and abs(again.height() - 560) <= 4


def test_volumetry_table_follows_the_masks(window, qtbot, synthetic_patient, output_dir):
    case = open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    panel = window.steps.panels["volumetry"]
    for name in (LIVER, TUMORS, "segments"):
        case.set_label(name, truth(synthetic_patient, name))
    qtbot.waitUntil(lambda: panel.table.rowCount() > 0 and panel.task is not None
                    and not panel.task.running and not panel._soon.isActive(), timeout=60_000)
    cells = {panel.table.item(r, 0).text(): panel.table.item(r, 1).text()
             for r in range(panel.table.rowCount())}
    assert float(cells["Total liver"]) == pytest.approx(
        synthetic_patient.truth["liver_volume_ml"], rel=0.01)
    assert sum(name.startswith("Segment ") for name in cells) == 8
    assert sum(name.startswith("Lesion ") for name in cells) == len(synthetic_patient.truth["lesions"])
    # Clicking a lesion row puts the crosshair on that lesion.
    row = next(iter(panel.lesion_rows))
    panel.table.cellClicked.emit(row, 0)
    assert np.allclose(window.state.cursor_lps, panel.lesion_rows[row])
    window.steps.setCurrentWidget(panel)
    window.snapshot().save(str(output_dir / "viewer_8_volumetry.png"))
    # Removing the lesions updates the table.
    empty = image_from_array(np.zeros_like(sitk.GetArrayViewFromImage(case.labels[TUMORS])),
                             case.image)
    case.set_label(TUMORS, empty)
    qtbot.waitUntil(lambda: not any(panel.table.item(r, 0).text().startswith("Lesion")
                                    for r in range(panel.table.rowCount())), timeout=60_000)


def test_3d_view_settles_when_a_structure_is_empty(window, qtbot, synthetic_patient):
    """An empty label (all lesions deleted) is meshed once, not rebuilt in a loop."""
    case = open_and_wait(qtbot, window, synthetic_patient.dicom_dir)
    case.set_label(LIVER, truth(synthetic_patient, LIVER))
    case.set_label(TUMORS, image_from_array(
        np.zeros(sitk.GetArrayViewFromImage(case.image).shape, np.uint16), case.image))
    qtbot.waitUntil(lambda: "liver" in window.view3d.actors and window.view3d._task is None,
                    timeout=120_000)
    assert window.view3d.meshes["lesions"].n_points == 0 and "lesions" not in window.view3d.actors
    assert window.view3d.wanted() == []        # nothing left to build: no rebuild loop
