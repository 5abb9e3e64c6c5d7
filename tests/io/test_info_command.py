"""`liverplan info`: the table, the JSON document and the exit code for a folder without DICOM."""

from __future__ import annotations

import json

import pytest
from pydicom.uid import SegmentationStorage

from liverplan.cli import main
from liverplan.io import write_image
from tests.io.dicom_cases import non_image, ramp_volume, write


def _two_series(root):
    write(ramp_volume(), root / "a", series_uid="1.2.3.1", series_description="Abdomen arterial",
          patient_name="Müller^Jürgen", patient_id="P1", study_date="20240301")
    files = write(ramp_volume(size=(12, 10, 6)), root / "b", series_uid="1.2.3.2",
                  series_description="Abdomen PV", patient_name="Müller^Jürgen", patient_id="P1",
                  study_date="20240301")
    files[2].unlink()
    non_image(root / "seg", SegmentationStorage, "SEG")


def test_table_lists_series_warnings_and_skipped_files(tmp_path, capsys):
    _two_series(tmp_path)
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    header, rule, *rows = out.splitlines()[:4]
    for column in ("key", "modality", "date", "description", "images", "matrix", "spacing mm",
                   "phase", "patient"):
        assert column in header
    assert set(rule) <= {"-", " "}
    assert rows[0].split()[:4] == ["1.2.3.1", "CT", "20240301", "Abdomen"]
    assert "arterial" in rows[0] and "12x10" in rows[0] and "0.80x0.70x2.50" in rows[0]
    assert "Müller, Jürgen (P1)" in rows[0]
    assert "portal venous" in rows[1] and " 5 " in rows[1]
    assert "warning: 1.2.3.2: gap of 5.00 mm" in out
    assert f"{tmp_path / 'seg'}: Segmentation Storage" in out


def test_json_document(tmp_path, capsys):
    _two_series(tmp_path)
    assert main(["info", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["key"] for s in doc["series"]] == ["1.2.3.1", "1.2.3.2"]
    second = doc["series"][1]
    assert second["n_images"] == 5 and second["slice_spacing_mm"] == 2.5
    assert second["patient_name"] == "Müller, Jürgen" and second["phase_hint"] == "portal venous"
    assert any("gap of 5.00 mm" in w for w in second["warnings"])
    assert doc["skipped"] == [{"path": str(tmp_path / "seg"), "kind": "Segmentation Storage",
                               "reason": "Segmentation Storage: not an image (a non-image "
                                         "object); skipped"}]


def test_one_dicom_file_stands_for_its_series(tmp_path, capsys):
    """As when it is opened: `info` of one slice describes the series it belongs to (it said
    '1 image, a 3-D volume needs a series of slices', while `segment` loaded all of them)."""
    _two_series(tmp_path)
    one = sorted((tmp_path / "b").iterdir())[0]
    assert main(["info", str(one), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(s["key"], s["n_images"]) for s in doc["series"]] == [("1.2.3.2", 5)]
    (tmp_path / "b" / "notes.txt").write_text("no image")        # beside a series: says why
    assert main(["info", str(tmp_path / "b" / "notes.txt")]) == 0
    assert f"Skipped 1 file(s):\n  {tmp_path / 'b' / 'notes.txt'}: " in capsys.readouterr().out
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("no image")        # alone: as when it is opened
    assert main(["info", str(tmp_path / "c" / "notes.txt")]) == 2
    assert "notes.txt: cannot load this file: it is neither a DICOM image" in capsys.readouterr().err


def test_folder_without_dicom_exits_2_with_a_message(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("no images here")
    assert main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {tmp_path}: no DICOM image series found (found only: not DICOM)" in err


def test_image_file(tmp_path, capsys):
    path = write_image(ramp_volume(), tmp_path / "ct.nii.gz")
    assert main(["info", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["size"] == [12, 10, 8] and doc["spacing_mm"] == pytest.approx([0.8, 0.7, 2.5])
