import json

import pydicom
import pytest

from liverplan.cli import main
from liverplan.io.images import write_image

from .conftest import _free_port


@pytest.fixture(scope="module")
def masks_dir(small_case, tmp_path_factory):
    folder = tmp_path_factory.mktemp("masks")
    for name, mask in small_case.labels.items():
        write_image(mask, folder / f"{name}.nii.gz")
    return folder


@pytest.fixture(scope="module")
def plan_file(small_plan, small_loaded_case, tmp_path_factory):
    """A real plan file, as `liverplan plan` writes it."""
    from liverplan.planner.planfile import PlanFile, plan_path, save_plan, series_inputs
    from liverplan.planner.staging import rank_strategies

    strategies = rank_strategies(small_plan.result, small_plan.resections, small_plan.patient)
    path = plan_path(tmp_path_factory.mktemp("plan"))
    save_plan(path, PlanFile(small_plan, series_inputs(small_loaded_case.info),
                             strategies=strategies))
    return path


def test_seg_and_models_from_a_dicom_folder_and_masks(small_case, masks_dir, tmp_path, capsys):
    code = main(["export", str(small_case.dicom_dir), "--masks", str(masks_dir), "--seg",
                 "--meshes", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "segmentation.dcm" in out and "models/liver.stl" in out
    assert (tmp_path / "segmentation.dcm").is_file() and (tmp_path / "models" / "scene.glb").is_file()
    assert not (tmp_path / "report.pdf").exists()


@pytest.mark.pacs
def test_plan_report_deidentified_and_sent_to_the_pacs(small_case, masks_dir, plan_file, orthanc,
                                                      tmp_path, capsys):
    code = main(["export", str(plan_file), "--ct", str(small_case.dicom_dir), "--masks",
                 str(masks_dir), "--pdf", "--seg", "--deidentify", "--pseudonym", "LP-0099",
                 "--send", orthanc.target, "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    assert "Sent 2 object(s)" in capsys.readouterr().out
    sent = {pydicom.dcmread(tmp_path / n).SOPInstanceUID for n in ("segmentation.dcm", "report.dcm")}
    stored = {}
    for oid in orthanc.rest("/instances"):
        tags = orthanc.rest(f"/instances/{oid}/simplified-tags")
        stored[tags["SOPInstanceUID"]] = tags
    assert sent <= set(stored)
    for uid in sent:
        assert stored[uid]["PatientID"] == "LP-0099" and stored[uid]["PatientName"] == "LP-0099"
        assert stored[uid]["PatientIdentityRemoved"] == "YES"


def test_missing_segmentation_is_a_clear_error(small_case, tmp_path, capsys):
    code = main(["export", str(small_case.dicom_dir), "--seg", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "no segmentation to export" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_report_without_a_plan_is_a_clear_error(small_case, masks_dir, tmp_path, capsys):
    code = main(["export", str(small_case.dicom_dir), "--masks", str(masks_dir), "--pdf",
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert "needs a resection plan" in capsys.readouterr().err


def test_unreachable_pacs_keeps_the_files(small_case, masks_dir, tmp_path, capsys):
    code = main(["export", str(small_case.dicom_dir), "--masks", str(masks_dir), "--seg",
                 "--send", f"NOBODY@127.0.0.1:{_free_port()}", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "could not reach the PACS" in err and "files are complete" in err
    assert pydicom.dcmread(tmp_path / "segmentation.dcm").Modality == "SEG"


def test_damaged_plan_file_is_explained(small_case, masks_dir, tmp_path, capsys):
    bad = tmp_path / "bad.liverplan.json"
    bad.write_text("{not json")
    code = main(["export", str(bad), "--ct", str(small_case.dicom_dir), "--masks", str(masks_dir),
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert "plan file is damaged" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_plan_file_needs_its_ct(plan_file, tmp_path, capsys):
    assert main(["export", str(plan_file), "--out", str(tmp_path / "out")]) == 2
    assert "--ct" in capsys.readouterr().err


def test_a_plan_is_never_exported_over_another_series(plan_file, small_case, masks_dir, tmp_path,
                                                      capsys):
    other = json.loads(plan_file.read_text())
    other["inputs"]["series"]["series_instance_uid"] = "1.2.3.4.5"
    wrong = tmp_path / "other.liverplan.json"
    wrong.write_text(json.dumps(other))
    code = main(["export", str(wrong), "--ct", str(small_case.dicom_dir), "--masks",
                 str(masks_dir), "--out", str(tmp_path / "out")])
    assert code == 2
    assert "made on series 1.2.3.4.5" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
