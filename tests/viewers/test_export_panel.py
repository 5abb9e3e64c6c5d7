"""The Export step on the real window: a kept plan (Plan step) exported on the synthetic patient,
a refused export after a mask edit, a bad folder, and a send to a real Orthanc."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox

from liverplan.case import LABEL_NAMES, LIVER
from liverplan.geometry import image_from_array
from liverplan.io.export_all import REPORT_DICOM_FILE, REPORT_FILE, SEG_FILE
from liverplan.planner.planfile import load_plan, plan_path
from liverplan.viewers.panels.export_panel import FOLDER_KEY, NO_PLAN
from tests.export.conftest import orthanc  # noqa: F401  (the real Orthanc fixture, reused)
from tests.viewers.conftest import open_and_wait, truth, wait_task

pytestmark = pytest.mark.gui
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def open_with_masks(qtbot, window, patient):
    case = open_and_wait(qtbot, window, patient.dicom_dir)
    for name in LABEL_NAMES:
        case.set_label(name, truth(patient, name))
    return case


def keep_right_hepatectomy(qtbot, window, name="Right hemihepatectomy"):
    """Keep a plan through the Plan step, as a surgeon would."""
    plan = window.steps.show_step("plan")
    qtbot.waitUntil(lambda: plan.ctx is not None, timeout=60_000)
    plan.preset.setCurrentIndex(plan.preset.findData("right_hemihepatectomy"))
    qtbot.waitUntil(lambda: plan.current is not None and not plan._update_soon.isActive())
    plan.plan_name.setText(name)
    return plan.keep_plan()


def run_export(qtbot, panel, folder, **checks):
    panel.folder.setText(str(folder))
    for key, on in checks.items():
        panel.checks[key].setChecked(on)
    qtbot.mouseClick(panel.export_button, Qt.LeftButton)
    assert panel.task is not None
    wait_task(qtbot, panel.task, timeout=300_000)
    qtbot.waitUntil(lambda: panel.export_button.isEnabled())


def on_disk(folder) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def error_texts(window) -> list[str]:
    return [box.text() for box in window.findChildren(QMessageBox) if box.isVisible()]


def test_export_writes_the_report_models_seg_and_plan_and_lists_them(
        window, qtbot, synthetic_patient, tmp_path, output_dir):
    case = open_with_masks(qtbot, window, synthetic_patient)
    panel = window.steps.show_step("export")
    assert panel.plan_box.count() == 0 and panel.no_plan.text() == NO_PLAN
    kept = keep_right_hepatectomy(qtbot, window)
    panel = window.steps.show_step("export")
    assert panel.plan_box.currentData() == kept.plan.name and not panel.no_plan.isVisibleTo(panel)
    folder = tmp_path / "export"
    run_export(qtbot, panel, folder, pdf=True, meshes=True, seg=True, plan_json=True,
               deidentify=False)
    assert panel.result is not None, panel.status.text()

    listed = {folder / panel.files.item(r).text() for r in range(panel.files.count())}
    assert listed == set(on_disk(folder))
    assert (folder / REPORT_FILE).read_bytes().startswith(b"%PDF")
    seg = pydicom.dcmread(folder / SEG_FILE)
    assert seg.SOPClassUID == SEG_STORAGE and seg.Modality == "SEG"
    assert seg.SeriesInstanceUID != case.info.series_instance_uid
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == case.info.series_instance_uid
    assert pydicom.dcmread(folder / REPORT_DICOM_FILE).MIMETypeOfEncapsulatedDocument == \
        "application/pdf"
    models = {p.name for p in (folder / "models").iterdir()}
    assert {"liver.stl", "remnant.stl", "scene.glb"} <= models, models
    saved = load_plan(plan_path(folder))
    assert saved.plan == kept.plan and saved.strategies == kept.strategies
    assert saved.series["series_instance_uid"] == case.info.series_instance_uid
    assert window.settings.value(FOLDER_KEY) == str(folder)
    assert f"Exported {len(listed)} file(s)" in panel.status.text()
    assert error_texts(window) == []
    status = panel.status     # the screenshot once the wrapped status has its second line
    qtbot.waitUntil(lambda: status.height() >= status.heightForWidth(status.width()))
    window.snapshot().save(str(output_dir / "viewer_10_export.png"))

    # Double-clicking a listed file asks the desktop to open the export folder (the desktop's
    # file browser is replaced by a URL handler: there is none under Xvfb).
    opened = OpenedUrls()
    QDesktopServices.setUrlHandler("file", opened, "open")
    try:
        rect = panel.files.visualItemRect(panel.files.item(0))
        # a double-click as a mouse makes it: press, release, then the second press
        qtbot.mouseClick(panel.files.viewport(), Qt.LeftButton, pos=rect.center())
        qtbot.mouseDClick(panel.files.viewport(), Qt.LeftButton, pos=rect.center())
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert opened.paths == [str(folder)]


class OpenedUrls(QObject):
    def __init__(self):
        super().__init__()
        self.paths = []

    @Slot(QUrl)
    def open(self, url):
        self.paths.append(url.toLocalFile())


def test_export_after_a_liver_edit_is_refused_and_keeps_the_earlier_files(
        window, qtbot, synthetic_patient, tmp_path):
    case = open_with_masks(qtbot, window, synthetic_patient)
    keep_right_hepatectomy(qtbot, window)
    panel = window.steps.show_step("export")
    folder = tmp_path / "export"
    run_export(qtbot, panel, folder, pdf=False, meshes=False, seg=False, plan_json=True)
    before = on_disk(folder)
    assert set(before) == {plan_path(folder)}

    # Erase the top quarter of the liver's slices: the kept plan no longer describes the masks.
    liver = sitk.GetArrayFromImage(case.label(LIVER))
    z = np.flatnonzero(liver.any(axis=(1, 2)))
    liver[z[-len(z) // 4:]] = 0
    case.set_label(LIVER, image_from_array(liver, case.image))
    run_export(qtbot, panel, folder, pdf=True, meshes=True, seg=True, plan_json=True)
    message = "the liver segmentation has changed since the plan was computed"
    assert any(message in text for text in error_texts(window))
    assert message in panel.status.text()
    assert any(level == "error" and message in text for level, text in
               window.log_panel.entries)
    assert on_disk(folder) == before
    assert panel.export_button.isEnabled()      # still usable: another try runs
    run_export(qtbot, panel, folder, pdf=False, meshes=False, seg=False, plan_json=True)
    assert message in panel.status.text()


def test_deidentified_plan_json_carries_no_identifiers(window, qtbot, synthetic_patient,
                                                       tmp_path):
    case = open_with_masks(qtbot, window, synthetic_patient)
    kept = keep_right_hepatectomy(qtbot, window)
    panel = window.steps.show_step("export")
    folder = tmp_path / "export"
    run_export(qtbot, panel, folder, pdf=False, meshes=False, seg=False, plan_json=True,
               deidentify=True)
    assert panel.result is not None, panel.status.text()
    info = case.info
    assert kept.series["patient_id"] == info.patient_id and kept.series["study_date"]
    text = plan_path(folder).read_text()
    for identifier in (info.patient_id, info.series_instance_uid, info.study_instance_uid,
                       kept.series["study_date"]):
        assert identifier not in text
    saved = load_plan(plan_path(folder))
    assert saved.series["patient_id"] == "ANONYMOUS" and "description" not in saved.series
    assert set(saved.series) == set(kept.series) - {"description"}
    assert saved.plan == kept.plan


def test_a_folder_under_a_regular_file_is_refused_naming_it(window, qtbot, synthetic_patient,
                                                              tmp_path):
    open_with_masks(qtbot, window, synthetic_patient)
    panel = window.steps.show_step("export")
    # Without a kept plan the report cannot be written: said before anything runs.
    panel.folder.setText(str(tmp_path / "export"))
    qtbot.mouseClick(panel.export_button, Qt.LeftButton)
    assert panel.task is None and error_texts(window) == [NO_PLAN]
    assert not (tmp_path / "export").exists()
    for box in window.findChildren(QMessageBox):
        box.close()
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    folder = blocker / "export"
    run_export(qtbot, panel, folder, pdf=False, meshes=True, seg=True, plan_json=False)
    assert panel.result is None
    errors = error_texts(window)
    assert len(errors) == 1 and str(folder) in errors[0] and "not a folder" in errors[0]
    assert str(folder) in panel.status.text()
    assert blocker.read_text() == "a file, not a folder"


def test_cancel_stops_the_export_and_writes_nothing(window, qtbot, synthetic_patient, tmp_path):
    open_with_masks(qtbot, window, synthetic_patient)
    panel = window.steps.show_step("export")
    folder = tmp_path / "export"
    panel.folder.setText(str(folder))
    panel.checks["pdf"].setChecked(False)          # no plan kept: SEG and models only
    panel.checks["plan_json"].setChecked(False)
    qtbot.mouseClick(panel.export_button, Qt.LeftButton)
    assert not panel.export_button.isEnabled() and panel.cancel_button.isEnabled()
    qtbot.mouseClick(panel.cancel_button, Qt.LeftButton)
    wait_task(qtbot, panel.task)
    assert "cancelled" in panel.status.text() and panel.result is None
    assert not folder.exists() or on_disk(folder) == {}
    assert panel.export_button.isEnabled() and error_texts(window) == []


@pytest.mark.pacs
def test_pacs_connection_test_and_send(window, qtbot, synthetic_patient, tmp_path,
                                       orthanc):  # noqa: F811
    case = open_with_masks(qtbot, window, synthetic_patient)
    panel = window.steps.show_step("export")
    panel.pacs.setText(f"WRONGAET@127.0.0.1:{orthanc.port}")
    wait_task(qtbot, panel.test_pacs())
    assert any("refused the connection" in text for text in error_texts(window))
    assert "refused the connection" in panel.status.text()

    panel.pacs.setText(orthanc.target)
    wait_task(qtbot, panel.test_pacs())
    assert "answered the connection test" in panel.status.text()
    run_export(qtbot, panel, tmp_path / "export", pdf=False, meshes=False, seg=True,
               plan_json=False)
    assert panel.result is not None and len(panel.result.sent) == 1, panel.status.text()
    seg = pydicom.dcmread(tmp_path / "export" / SEG_FILE)
    assert panel.result.sent == [seg.SOPInstanceUID]
    stored = {orthanc.rest(f"/instances/{oid}/simplified-tags")["SOPInstanceUID"]
              for oid in orthanc.rest("/instances")}
    assert seg.SOPInstanceUID in stored
    assert case.info.series_instance_uid == seg.ReferencedSeriesSequence[0].SeriesInstanceUID
    assert "1 object(s) sent" in panel.status.text()
