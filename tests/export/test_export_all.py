import shutil
import subprocess

import numpy as np
import pydicom
import pytest
import pyvista as pv
import SimpleITK as sitk

from liverplan.case import LIVER, SEGMENTS, TUMORS, Case
from liverplan.errors import ExportError
from liverplan.io import load
from liverplan.io.deidentify import Deidentifier
from liverplan.io.export_all import export_case
from liverplan.planner.flr import PlanningContext, resected_image
from liverplan.io.seg import read_seg
from liverplan.planner.planfile import PlanFile, load_plan, plan_path, series_inputs

from .conftest import _free_port, dciodvfy_errors


def pdf_text(path):
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture(scope="module")
def exported(small_loaded_case, small_plan, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    return export_case(small_loaded_case, out, planfile=PlanFile(small_plan))


def test_everything_is_written(exported):
    names = {p.relative_to(exported.folder).as_posix() for p in exported.files}
    assert {"segmentation.dcm", "report.pdf", "report.dcm", "models/scene.glb",
            "models/liver.stl", "models/remnant.stl", "models/resected.stl",
            "models/cut_surface.ply", "models/models.json"} <= names
    assert not [p for p in exported.folder.rglob(".*")]       # no temporary files left


def test_seg_loads_back_with_our_loader_onto_the_source(exported, small_case):
    """liverplan.io.read_seg puts every segment back exactly on the source CT grid."""
    masks = read_seg(exported.folder / "segmentation.dcm", load(small_case.dicom_dir))
    labels = {k: sitk.GetArrayFromImage(v) for k, v in small_case.labels.items()}
    assert np.array_equal(sitk.GetArrayViewFromImage(masks["Liver"]), labels[LIVER] != 0)
    assert np.array_equal(sitk.GetArrayViewFromImage(masks["Lesion 1"]), labels[TUMORS] == 1)
    for n in range(1, 9):
        assert np.array_equal(sitk.GetArrayViewFromImage(masks[f"Segment {n}"]),
                              labels[SEGMENTS] == n), n
    assert dciodvfy_errors(exported.folder / "segmentation.dcm") == []


def test_report_pdf_content(exported, small_plan, output_dir):
    shutil.copy(exported.folder / "report.pdf", output_dir / "export_report_small_case.pdf")
    text = pdf_text(exported.folder / "report.pdf")
    for expected in ("Decision support only", "Doe, Jane", "PAT-0042", "2026-01-05",
                     "NOT FEASIBLE" if small_plan.result.verdict == "not feasible"
                     else small_plan.result.verdict.upper(),
                     "Standardized FLR", "FLR / body weight", ">= 0.5%", "Volumetry",
                     "Segment 8", "Couinaud segments: landmark planes.", "Lesions",
                     "Key axial slices", "3D views", "LiverPlan 0.1.0"):
        assert expected in text, expected
    assert f"{small_plan.result.sflr_percent:.1f}%" in text
    images = subprocess.run(["pdfimages", "-list", str(exported.folder / "report.pdf")],
                            capture_output=True, text=True, check=True).stdout.splitlines()[2:]
    assert len(images) >= 4 + 2        # 4 snapshots (anterior, posterior, resection, ICG) + slices


def test_encapsulated_report_is_valid_and_in_the_study(exported, small_case):
    doc = pydicom.dcmread(exported.folder / "report.dcm")
    ct = pydicom.dcmread(small_case.files[0])
    assert doc.StudyInstanceUID == ct.StudyInstanceUID
    seg = pydicom.dcmread(exported.folder / "segmentation.dcm")
    assert doc.SourceInstanceSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID
    assert dciodvfy_errors(exported.folder / "report.dcm") == []


def test_models_follow_the_plan(exported, small_loaded_case, small_plan):
    resected = resected_image(PlanningContext.from_case(small_loaded_case), small_plan.resections)
    expected_ml = np.count_nonzero(sitk.GetArrayViewFromImage(resected)) * np.prod(
        resected.GetSpacing()) / 1000
    mesh = pv.read(exported.folder / "models" / "resected.stl")
    assert mesh.n_open_edges == 0
    assert mesh.volume / 1000 == pytest.approx(expected_ml, rel=0.08)
    assert expected_ml == pytest.approx(small_plan.result.resected_volume_ml, rel=1e-6)


def test_deidentified_export_carries_no_identity(small_loaded_case, small_plan, tmp_path):
    deid = Deidentifier(pseudonym="LP-CASE-7", date_shift_days=-30)
    export_case(small_loaded_case, tmp_path, meshes=False, deidentify=deid, plan_json=True,
                planfile=PlanFile(small_plan, series_inputs(small_loaded_case.info)))
    text = pdf_text(tmp_path / "report.pdf")
    assert "LP-CASE-7" in text and "Doe" not in text and "PAT-0042" not in text
    assert "2026-01-05" not in text and "2025-12-06 (shifted)" in text
    ct = pydicom.dcmread(small_loaded_case.info.files[0])
    for name in ("segmentation.dcm", "report.dcm"):
        ds = pydicom.dcmread(tmp_path / name)
        if "EncapsulatedDocument" in ds:   # compressed PDF bytes: checked as text above
            del ds.EncapsulatedDocument
        header = str(ds)
        assert "Doe" not in header and "PAT-0042" not in header and "20260105" not in header
        assert ct.StudyInstanceUID not in header and ct.SeriesInstanceUID not in header
        assert dciodvfy_errors(tmp_path / name) == []
    seg, doc = pydicom.dcmread(tmp_path / "segmentation.dcm"), pydicom.dcmread(tmp_path / "report.dcm")
    assert seg.StudyInstanceUID == doc.StudyInstanceUID == deid.uid(ct.StudyInstanceUID)
    assert doc.SourceInstanceSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID
    # The plan file: the same plan, pointing at the de-identified series.
    text = plan_path(tmp_path).read_text()
    assert "Doe" not in text and "PAT-0042" not in text and "20260105" not in text
    assert ct.StudyInstanceUID not in text and ct.SeriesInstanceUID not in text
    saved = load_plan(plan_path(tmp_path))
    assert saved.plan.result == small_plan.result
    assert saved.series["series_instance_uid"] == seg.ReferencedSeriesSequence[0].SeriesInstanceUID
    assert saved.series["patient_id"] == "LP-CASE-7" and saved.series["study_date"] == "20251206"


def test_a_plan_that_removes_the_whole_liver_still_exports_its_report(small_loaded_case,
                                                                     tmp_path):
    """No remnant, so no cut surface: the transection's ICG map is left out with a warning;
    the export of a non-feasible plan used to fail as a whole."""
    from liverplan.planner.flr import plan
    from liverplan.planner.resection import SegmentResection
    everything = plan(PlanningContext.from_case(small_loaded_case),
                      [SegmentResection(tuple(range(1, 9)))])
    assert everything.result.verdict == "not feasible"
    out = export_case(small_loaded_case, tmp_path, meshes=False,
                      planfile=PlanFile(everything, series_inputs(small_loaded_case.info)))
    assert (tmp_path / "report.pdf").is_file() and (tmp_path / "segmentation.dcm").is_file()
    assert any("No ICG map of the transection" in w for w in out.warnings)


def test_unreachable_pacs_keeps_every_file_and_the_plan(small_loaded_case, small_plan, tmp_path):
    planfile = PlanFile(small_plan, series_inputs(small_loaded_case.info))
    with pytest.raises(ExportError,
                       match=f"is running\\. The exported files are complete in {tmp_path}"):
        export_case(small_loaded_case, tmp_path, meshes=False, pdf=False, plan_json=True,
                    planfile=planfile, send=f"NOBODY@127.0.0.1:{_free_port()}")
    assert load_plan(plan_path(tmp_path)).plan.result == small_plan.result
    assert (tmp_path / "segmentation.dcm").is_file()


def test_no_segmentation_is_refused(small_loaded_case, tmp_path):
    empty = Case(image=small_loaded_case.image, info=small_loaded_case.info)
    with pytest.raises(ExportError, match="no liver segmentation"):
        export_case(empty, tmp_path / "out", pdf=False)
    assert not (tmp_path / "out").exists()


def test_report_without_a_plan_is_refused(small_loaded_case, tmp_path):
    with pytest.raises(ExportError, match="needs a resection plan"):
        export_case(small_loaded_case, tmp_path / "out", pdf=True)
    with pytest.raises(ExportError, match="plan JSON needs a resection plan"):
        export_case(small_loaded_case, tmp_path / "out", pdf=False, plan_json=True)
    assert not (tmp_path / "out").exists()


def test_unwritable_folder_is_explained(small_loaded_case, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="could not write") as info:
        export_case(small_loaded_case, blocker / "out", pdf=False)
    assert info.value.path == blocker / "out"


def test_cancel_keeps_what_was_finished_and_nothing_partial(small_loaded_case, tmp_path):
    import threading

    from liverplan.errors import Cancelled

    cancel = threading.Event()

    def progress(fraction, message):
        if message.startswith("Surface of Lesion"):   # the SEG is done, the models are under way
            cancel.set()

    with pytest.raises(Cancelled):
        export_case(small_loaded_case, tmp_path, pdf=False, progress=progress, cancel=cancel)
    assert pydicom.dcmread(tmp_path / "segmentation.dcm").Modality == "SEG"
    assert (tmp_path / "models" / "liver.stl").is_file()
    assert (tmp_path / "models" / "lesion_1.stl").is_file()      # finished before the check
    assert not (tmp_path / "models" / "lesion_2.stl").exists()
    assert not [p for p in tmp_path.rglob(".*")]


def test_a_plan_made_on_other_masks_is_refused(small_loaded_case, small_plan, tmp_path):
    edited = Case(image=small_loaded_case.image, info=small_loaded_case.info)
    for name, mask in small_loaded_case.labels.items():
        edited.set_label(name, mask)
    liver = sitk.Image(small_loaded_case.label(LIVER))
    liver[:, :, 0:3] = 0                               # the liver was edited after planning
    edited.set_label(LIVER, liver)
    with pytest.raises(ExportError, match="liver segmentation has changed since the plan"):
        export_case(edited, tmp_path / "out", planfile=PlanFile(small_plan))
    assert not (tmp_path / "out").exists()
